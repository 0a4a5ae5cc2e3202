# Handoff: `make run` starts everything locally; `make test` runs the whole suite; `make serve`
# runs the production processes (gunicorn, worker, beat) against DATABASE_URL and CELERY_BROKER_URL.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
EMULATOR_PORT ?= 8765
# The data folder, as dashboard/settings.py finds it.
DATA_DIR := $(or $(HANDOFF_DATA_DIR),$(CURDIR)/data)

# The suite runs on PostgreSQL with a Redis broker (local servers, trust auth).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/handoff
TEST_BROKER_URL ?= redis://127.0.0.1:6379/0

# With no API key, the bundled emulator is started and the SDK pointed at it through its own
# environment variables; with GEMINI_API_KEY set, the SDK talks to Google (or to
# GOOGLE_GEMINI_BASE_URL) and no emulator runs.
ifeq ($(strip $(GEMINI_API_KEY)),)
RUN_ENV := GEMINI_API_KEY=local-emulator GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:$(EMULATOR_PORT)
PROCFILE := Procfile.emulator
else
RUN_ENV :=
PROCFILE := Procfile.dev
endif
# The order-support demo's tools (approvals.demo) are loaded unless HANDOFF_TOOL_MODULES names others.
LOCAL_ENV := PATH=$(CURDIR)/$(BIN):$$PATH DJANGO_DEBUG=$${DJANGO_DEBUG:-1} PORT=$(PORT) EMULATOR_PORT=$(EMULATOR_PORT) \
	HANDOFF_BASE_URL=http://127.0.0.1:$(PORT) HANDOFF_TOOL_MODULES=$${HANDOFF_TOOL_MODULES:-approvals.demo} $(RUN_ENV)

# Production: DEBUG off; every process writes its metrics into one folder that /metrics reads
# (emptied at each start, as prometheus-client's multiprocess mode requires).
SERVE_ENV := PATH=$(CURDIR)/$(BIN):$$PATH DJANGO_DEBUG=0 PORT=$(PORT) HANDOFF_DATA_DIR=$(DATA_DIR)
METRICS_DIR := $(DATA_DIR)/prometheus

.PHONY: install run serve test services chromium postgres redis lock clean

$(BIN)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	touch $@

install: $(BIN)/.installed

# Ctrl-C: honcho sends SIGTERM to every process and SIGKILL to those still running KILL_WAIT
# seconds after the first one stopped. Five seconds (honcho's own) is less than a Celery worker on
# the filesystem broker takes for a warm shutdown: it looks for the stop every 2 s between polls,
# then stops its timer (1 s ticks) and its pool. The trap: the shell waits for honcho to end, then
# exits 0 where honcho answers a Ctrl-C with 130 (make printed "Error 130").
# `make serve` waits longer: gunicorn's graceful_timeout (30 s, dashboard/gunicorn.conf.py) lets
# requests in flight finish.
honcho = import sys, honcho.command, honcho.manager; honcho.manager.KILL_WAIT = $(1); sys.exit(honcho.command.main())
HONCHO := $(call honcho,15)

run: install
	$(LOCAL_ENV) $(BIN)/python manage.py migrate --no-input
	@echo "Demo users (local only):"
	@$(LOCAL_ENV) $(BIN)/python manage.py seed_demo
	@echo
	@echo "Handoff: http://127.0.0.1:$(PORT)/  (sign in as alice / handoff-demo)"
	@echo
	@trap 'exit 0' INT; $(LOCAL_ENV) $(BIN)/python -c '$(HONCHO)' --no-prefix start -f $(PROCFILE)

serve: install
	@test -n "$$DATABASE_URL" || { echo "make serve: set DATABASE_URL (e.g. postgres://handoff@db:5432/handoff)." >&2; exit 1; }
	@test -n "$$CELERY_BROKER_URL" || { echo "make serve: set CELERY_BROKER_URL (e.g. redis://redis:6379/0)." >&2; exit 1; }
	@test -n "$$DJANGO_SECRET_KEY" || { echo "make serve: set DJANGO_SECRET_KEY (see README.md, Production)." >&2; exit 1; }
	@test -n "$$GEMINI_API_KEY" || echo "make serve: GEMINI_API_KEY is unset: runs fail until it is set (no emulator in production)." >&2
	$(SERVE_ENV) $(BIN)/python manage.py migrate --no-input
	$(SERVE_ENV) $(BIN)/python manage.py collectstatic --no-input -v 0
	rm -rf $(METRICS_DIR) && mkdir -p $(METRICS_DIR)
	$(SERVE_ENV) PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR) exec $(BIN)/python -c '$(call honcho,35)' \
		$(if $(filter json,$(HANDOFF_LOG_FORMAT)),--no-prefix) start -f Procfile

# What the suite needs beyond Python packages: Debian's chromium (browser tests), and PostgreSQL
# and Redis on the local ports unless TEST_DATABASE_URL / TEST_BROKER_URL name other servers.
# Installed or started when missing (as root, with apt and Debian's service scripts); otherwise
# one line says what to start.
services: chromium $(if $(filter file,$(origin TEST_DATABASE_URL)),postgres) $(if $(filter file,$(origin TEST_BROKER_URL)),redis)

chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the browser tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "make test: install Debian's chromium (sudo apt-get install chromium) for the browser tests." >&2; exit 1; fi; }

postgres:
	@pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
			pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql | sort -V | tail -n 1)" main start; \
		else echo "make test: start PostgreSQL on 127.0.0.1:5432 with trust auth, or set TEST_DATABASE_URL." >&2; exit 1; fi; }

redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
		if command -v redis-server >/dev/null; then \
			mkdir -p /tmp/handoff-redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
				--save "" --appendonly no --dir /tmp/handoff-redis --logfile /tmp/handoff-redis/redis.log; \
		else echo "make test: start Redis on 127.0.0.1:6379, or set TEST_BROKER_URL." >&2; exit 1; fi; }

# HANDOFF_STATIC_ROOT: a folder collectstatic never fills, so a manifest that `make serve` left
# in data/ cannot change what the suite's pages link (STATIC_HASHED in dashboard/settings.py).
# The suite loads the order-support demo's tools (approvals.demo), as `make run` does.
test: install services
	$(BIN)/lint-imports --no-cache
	DJANGO_SECRET_KEY=test-only DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	HANDOFF_STATIC_ROOT=$(CURDIR)/test-artifacts/no-static HANDOFF_TOOL_MODULES=approvals.demo \
	HANDOFF_CONN_MAX_AGE=0 HANDOFF_TEST_DATABASE_NAME=test_handoff_$$$$ $(BIN)/python -m pytest $(PYTEST_ARGS)

# Re-resolve the locked dependencies after editing pyproject.toml.
lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) data
