# Handoff: `make run` starts everything locally; `make test` runs the whole suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
EMULATOR_PORT ?= 8765

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
PROCFILE := Procfile
endif
LOCAL_ENV := PATH=$(CURDIR)/$(BIN):$$PATH DJANGO_DEBUG=$${DJANGO_DEBUG:-1} PORT=$(PORT) EMULATOR_PORT=$(EMULATOR_PORT) \
	HANDOFF_BASE_URL=http://127.0.0.1:$(PORT) $(RUN_ENV)

.PHONY: install run test lock clean

$(BIN)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	touch $@

install: $(BIN)/.installed

run: install
	$(LOCAL_ENV) $(BIN)/python manage.py migrate --no-input
	@echo "Demo users (local only):"
	@$(LOCAL_ENV) $(BIN)/python manage.py seed_demo
	@echo
	@echo "Handoff: http://127.0.0.1:$(PORT)/  (sign in as alice / handoff-demo)"
	@echo
	$(LOCAL_ENV) exec $(BIN)/honcho --no-prefix start -f $(PROCFILE)

test: install
	DJANGO_SECRET_KEY=test-only DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	HANDOFF_CONN_MAX_AGE=0 HANDOFF_TEST_DATABASE_NAME=test_handoff_$$$$ $(BIN)/python -m pytest $(PYTEST_ARGS)

# Re-resolve the locked dependencies after editing pyproject.toml.
lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) data
