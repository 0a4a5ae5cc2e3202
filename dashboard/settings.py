"""Django settings for Handoff.

Every deploy-specific value comes from the environment. Without any, Handoff runs on embedded
defaults: a SQLite file and a filesystem Celery broker in ``data/`` (no server needed).
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("HANDOFF_DATA_DIR", BASE_DIR / "data"))


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for a local run).")
    SECRET_KEY = "insecure-local-only-key"
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

# --- Deployment: HTTPS, cookies, headers ------------------------------------------------------
# HANDOFF_HTTPS=1 once the site is reached over HTTPS only (the README's production environment):
# session and CSRF cookies travel over HTTPS only, plain HTTP is redirected to HTTPS, and browsers
# are told to use nothing else for HANDOFF_HSTS_SECONDS (HSTS). Off by default so `make run`
# works over plain HTTP on 127.0.0.1.
_https = env_bool("HANDOFF_HTTPS")
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
# A proxy that redirects to HTTPS itself may be left to do it (HANDOFF_SSL_REDIRECT=0).
SECURE_SSL_REDIRECT = env_bool("HANDOFF_SSL_REDIRECT", _https)
SECURE_HSTS_SECONDS = int(os.environ.get("HANDOFF_HSTS_SECONDS", "31536000" if _https else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HANDOFF_HSTS_INCLUDE_SUBDOMAINS", _https)
# Asking to be on browsers' preload list is hard to undo (removal takes months), so it is never a
# default: set HANDOFF_HSTS_PRELOAD=1 when every subdomain is served over HTTPS for good.
SECURE_HSTS_PRELOAD = env_bool("HANDOFF_HSTS_PRELOAD")
if env_bool("HANDOFF_PROXY_SSL_HEADER"):
    # Only behind a proxy that sets X-Forwarded-Proto itself and drops the client's: otherwise a
    # client could claim HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and scrapers reach the processes directly, over plain HTTP: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Origins (scheme://host[:port], comma-separated) allowed to POST when the browser's Origin is not
# the host Django sees, e.g. a proxy that rewrites Host.
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("HANDOFF_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# Content-Security-Policy (django-csp): scripts and styles from Handoff's own static files only.
# No template carries an inline script, style or event handler; htmx's own indicator <style> is
# switched off in base.html's htmx-config, and images the model sent are served decoded from
# Handoff's own URLs (runs:step_image, runs:sent_image), so img-src needs no data:.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "axes",
    "csp",
    "django_htmx",
    "template_partials",
    # django-ninja's app: its Swagger UI's scripts and styles, served from here (no CDN).
    "ninja",
    "audit",
    "runs",
    "approvals",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files are answered here, before sessions, CSRF or sign-in run (WhiteNoise's place).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "audit.middleware.RequestIdMiddleware",
    "audit.middleware.AccessDeniedMiddleware",
    # A retried API POST with the same Idempotency-Key gets the first answer (dashboard.idempotency).
    "dashboard.idempotency.IdempotencyMiddleware",
    # Last, as django-axes asks: it turns a sign-in refused during a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.navigation",
            ],
        },
    },
]

DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'handoff.sqlite3'}",
        # Seconds a connection is kept for the thread's next request. 0, Django's default, closes
        # it as each request ends: runserver serves every keep-alive client on a thread of its
        # own, so any other value holds one connection per idle browser (42 of them exhausted
        # PostgreSQL's max_connections). Raise it only under a fixed number of threads, such as
        # gunicorn's sync workers; a kept connection is checked before it is reused.
        conn_max_age=int(os.environ.get("HANDOFF_CONN_MAX_AGE", "0")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default is shared by the web server and the worker processes: WAL lets
    # readers go on during a write, IMMEDIATE takes the write lock at BEGIN so two writers
    # queue on the busy timeout instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Every query Handoff runs is a short, indexed one: PostgreSQL's JIT compiler (on by default
    # above a plan cost of 100,000) spent 6-20 ms compiling a run-list search that then ran in
    # under 1 ms.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
    # Seconds to wait for a connection (libpq waits for ever by default), so a database that is
    # unreachable fails a request, and /readyz, instead of hanging it. A URL's own wins.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", int(os.environ.get("HANDOFF_DB_CONNECT_TIMEOUT", "5")))

if os.environ.get("HANDOFF_TEST_DATABASE_NAME"):
    # One test database per test session, so two sessions on one server never clobber each other.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["HANDOFF_TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first, so a locked-out sign-in is refused before the password is checked; then
# ModelBackend, with the roles the pages check loaded along with the signed-in user.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "approvals.backends.RoleBackend"]
# Sign-in throttling (django-axes): after HANDOFF_LOGIN_FAILURE_LIMIT wrong passwords in a row for
# one username from one address, that pair is refused (429, even with the right password) until
# HANDOFF_LOGIN_COOLOFF_MINUTES have passed since the last try. Keyed on the pair, not on the
# username alone, so a guesser cannot lock a colleague out from another machine. Behind a proxy,
# every client has the proxy's address (REMOTE_ADDR): the lock is then per username in effect.
AXES_FAILURE_LIMIT = int(os.environ.get("HANDOFF_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("HANDOFF_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "dashboard.views.sign_in_locked"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where collectstatic puts the files WhiteNoise serves (the web server reads them at start-up).
STATIC_ROOT = Path(os.environ.get("HANDOFF_STATIC_ROOT", DATA_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns at start-up about a missing one
# With DEBUG off and collectstatic run (``make serve`` runs it), templates link hashed names
# (``handoff.3f2a….css``) from collectstatic's manifest, and WhiteNoise serves them gzip- and
# Brotli-compressed with a year's caching, so a browser fetches each file once per version.
# Without a manifest (the test suite, which runs with DEBUG off; `manage.py check`; a first start
# before collectstatic) the manifest storage would fail every page that links a static file
# ("Missing staticfiles manifest entry"), so templates link the plain names and WhiteNoise serves
# them from the source folders through the finders, cached for a minute. `manage.py
# collectstatic` always uses the manifest storage, so it writes the manifest.
STATIC_MANIFEST = STATIC_ROOT / "staticfiles.json"
_collecting_static = sys.argv[1:2] == ["collectstatic"]
STATIC_HASHED = not DEBUG and (_collecting_static or STATIC_MANIFEST.exists())
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_HASHED else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
WHITENOISE_USE_FINDERS = not STATIC_HASHED

# HANDOFF_LOG_FORMAT=json: one JSON object per line (dashboard/logs.py), with the request's id
# while a request is served; the Celery worker's and gunicorn's own lines too (dashboard/celery.py,
# dashboard/gunicorn.conf.py). Lines go to standard error either way.
LOG_JSON = os.environ.get("HANDOFF_LOG_FORMAT", "").strip().lower() == "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "dashboard.logs.Formatter"},
        # Level and logger on every line, so an INFO line reads as one beside Celery's own.
        "text": {"format": "[%(asctime)s: %(levelname)s/%(name)s] %(message)s"},
    },
    "filters": {"client_errors": {"()": "dashboard.logs.ClientErrors"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_JSON else "text"}},
    **({"root": {"handlers": ["console"], "level": "INFO"}} if LOG_JSON else {}),
    "loggers": {
        # Not propagated: with a handler on the root logger too (JSON lines, or a Celery worker's
        # own) each line would be written twice.
        "runs": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "approvals": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "dashboard": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "audit": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Django logs every 500 here with its traceback (exc_info); its default configuration sends
        # them to ADMINS by email only, or to the console only with DEBUG on, so they were lost.
        # A refusal (403) is one line with its reason and no traceback; a 404 only the access
        # log's line (dashboard.logs.ClientErrors).
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False,
                           "filters": ["client_errors"]},
        # Lockouts, with the username and address.
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# --- Celery -----------------------------------------------------------------------------------
# The default names a host, though the filesystem broker has none: without one kombu warns "No
# hostname was supplied" on every connection it makes (kombu.connection.Connection._info).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Seconds between looks at the queue folder: short, so an approval reaches the worker
        # about as fast as with Redis.
        "polling_interval": 0.1,
    }
    # kombu's filesystem transport does not create its folders.
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Seconds before Redis hands the unacknowledged task of a worker that died to another worker.
    # kombu's default, one hour, left an approved call stranded that long. It must stay above the
    # longest countdown or ETA a task is given (the sending lease, 90 s by default; polls and
    # re-checks wait 60 s at most), or the task is delivered again while it waits (harmless,
    # every task is idempotent, but wasted).
    # The periodic sweeps pick up stranded work sooner still (HANDOFF_STRANDED_AFTER).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": float(os.environ.get("HANDOFF_BROKER_VISIBILITY_TIMEOUT", "300")),
    }
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("HANDOFF_TASK_QUEUE", "handoff")
# Tasks are idempotent (see runs/execution.py), so a task is acknowledged only once it has run:
# a worker killed mid-task gets its task redelivered instead of lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Seconds a prefork worker process keeps its database connection from one task to the next (it
# runs one task at a time, so one connection per process), checked before reuse like a web
# request's (dashboard/celery.py). Celery's Django fixup otherwise closes and reopens it around
# every task: under 50 reviewers that connect was a fifth of the worker's time and the backlog
# grew (benchmarks/approval_desk.py). 0 closes it after each task.
WORKER_CONN_MAX_AGE = float(os.environ.get("HANDOFF_WORKER_CONN_MAX_AGE", "60"))
# The fixup's own reuse count (tasks per forced reconnect): high, as dashboard/celery.py closes
# connections by their age and health instead.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULE = {
    "enforce-approval-deadlines": {
        "task": "approvals.tasks.enforce_deadlines",
        "schedule": float(os.environ.get("HANDOFF_DEADLINE_CHECK_SECONDS", "30")),
    },
    "seal-audit-chain": {"task": "audit.tasks.seal_audit_chain", "schedule": 60.0},
    "checkpoint-audit-chain": {
        "task": "audit.tasks.checkpoint_audit_chain",
        "schedule": float(os.environ.get("HANDOFF_AUDIT_CHECKPOINT_SECONDS", "300")),
    },
    "prune-idempotency-keys": {"task": "dashboard.tasks.prune_idempotency_keys", "schedule": 3600.0},
    "recover-stalled-interactions": {
        "task": "runs.tasks.recover_stalled_interactions",
        "schedule": float(os.environ.get("HANDOFF_RECOVERY_CHECK_SECONDS", "60")),
    },
}

# --- Gemini Interactions API ------------------------------------------------------------------
# The SDK reads GEMINI_API_KEY and GOOGLE_GEMINI_BASE_URL itself; Handoff only sets how long one
# HTTP request may take and how it retries.
GEMINI_TIMEOUT_MS = int(os.environ.get("HANDOFF_GEMINI_TIMEOUT_MS", "60000"))
# Transient API errors are retried by the Celery task (with backoff and jitter) rather than by the
# SDK, so retries are not stacked on the SDK's own five attempts.
GEMINI_TASK_MAX_RETRIES = int(os.environ.get("HANDOFF_GEMINI_MAX_RETRIES", "5"))
# A worker that claimed a send and then vanished is given up on after the request timeout plus
# this margin (seconds); the send is then recorded as of unknown outcome, never repeated.
SENDING_LEASE_MARGIN = float(os.environ.get("HANDOFF_SENDING_LEASE_MARGIN", "30"))
# A worker that claimed a function call's execution and vanished: after this many seconds (more
# than a task may run) the call is settled with an "outcome unknown" error, never run again.
EXECUTION_LEASE = float(os.environ.get("HANDOFF_EXECUTION_LEASE", str(CELERY_TASK_TIME_LIMIT + 60)))
# Work stranded by a worker lost between two steps (an approved call never executed, a result
# recorded but not settled, an intent never sent) is picked up by the periodic sweep once it is
# this many seconds old.
STRANDED_AFTER = float(os.environ.get("HANDOFF_STRANDED_AFTER", "60"))
# Polling a background interaction: the first GET after POLL_INITIAL_DELAY seconds, then the delay
# doubles up to POLL_MAX_DELAY, so a run of T seconds costs O(log T) requests up to the cap.
POLL_INITIAL_DELAY = float(os.environ.get("HANDOFF_POLL_INITIAL_DELAY", "1"))
POLL_MAX_DELAY = float(os.environ.get("HANDOFF_POLL_MAX_DELAY", "60"))
# A poll answered 200 with a body that is not an interaction (no status, say) proves nothing
# about the job: the body is kept and the poll retried with backoff, and the run fails once this
# many polls in a row got no interaction.
POLL_MALFORMED_LIMIT = int(os.environ.get("HANDOFF_POLL_MALFORMED_LIMIT", "5"))
# Raw request and response payloads are kept only when this is on; the redacted request manifest,
# output text and usage are always kept.
CAPTURE_RAW_PAYLOADS = env_bool("HANDOFF_CAPTURE_RAW_PAYLOADS")
# Estimated cost on the run page: USD per 1M tokens, paid tier, standard service, prompts up to
# 200k tokens (https://ai.google.dev/gemini-api/docs/pricing). Thought tokens are billed as output
# and cached input at the cached rate; long prompts, batch/flex tiers, grounding and media output
# are billed otherwise, so the page calls it an estimate. A model missing here shows no cost.
GEMINI_PRICES = {
    "gemini-3-flash-preview": {"input": "0.50", "output": "3.00", "cached_input": "0.05"},
    "gemini-3.1-pro-preview": {"input": "2.00", "output": "12.00", "cached_input": "0.20"},
    "gemini-2.5-flash": {"input": "0.30", "output": "2.50", "cached_input": "0.03"},
    "gemini-2.5-pro": {"input": "1.25", "output": "10.00", "cached_input": "0.125"},
}

# --- Health and metrics -----------------------------------------------------------------------
# Seconds /readyz waits for the database and the broker each, so a probe answers in bounded time.
HANDOFF_READY_TIMEOUT = float(os.environ.get("HANDOFF_READY_TIMEOUT", "2"))
# /metrics: open like most exporters when unset (keep it off the public side at the proxy);
# when set, a scrape must send ``Authorization: Bearer <token>``.
HANDOFF_METRICS_TOKEN = os.environ.get("HANDOFF_METRICS_TOKEN", "")

# --- Audit signing ----------------------------------------------------------------------------
# The Ed25519 key that signs audit checkpoints and evidence bundles (PEM, PKCS#8). It lives outside
# the database, so whoever owns the database cannot sign; created with mode 0600 on first use
# when missing. Back it up apart from the database: checkpoints signed by a key that is lost or
# replaced no longer verify, and verify_audit says so.
HANDOFF_AUDIT_SIGNING_KEY_FILE = Path(
    os.environ.get("HANDOFF_AUDIT_SIGNING_KEY_FILE", DATA_DIR / "audit-signing-key.pem")
)
# Every checkpoint is appended to this file as well (JSON lines), so deleting the newest
# checkpoints from the database shows. Empty: audit-checkpoints.jsonl next to the key.
HANDOFF_AUDIT_CHECKPOINT_LOG = os.environ.get("HANDOFF_AUDIT_CHECKPOINT_LOG", "")

# --- Notifications ----------------------------------------------------------------------------
# Links in emails and webhooks point here.
HANDOFF_BASE_URL = os.environ.get("HANDOFF_BASE_URL", "http://127.0.0.1:8000")

# The API's rate limit per token (dashboard.api.TokenRateThrottle): requests per s, m, h or d.
HANDOFF_API_RATE = os.environ.get("HANDOFF_API_RATE", "600/m")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # The API's rate counts, shared by every web process: a table of the database (dashboard's
    # migration 0003 creates it with createcachetable).
    "api": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "handoff_api_cache"},
}

# The modules that register tools and their policies (approvals.tools), comma-separated import
# paths, imported at start-up by every process; a module that cannot be loaded stops it. `make
# run` and `make test` load the order-support demo (approvals.demo); production loads only these.
HANDOFF_TOOL_MODULES = [m.strip() for m in os.environ.get("HANDOFF_TOOL_MODULES", "").split(",") if m.strip()]
# Unless DJANGO_EMAIL_BACKEND names a backend that sends (e.g. Django's SMTP one), messages are
# not sent: each is kept in a file in EMAIL_FILE_PATH and logged as one INFO line (dashboard/mail.py).
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "dashboard.mail.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("DJANGO_EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "handoff@localhost")
HANDOFF_WEBHOOK_URL = os.environ.get("HANDOFF_WEBHOOK_URL", "")
HANDOFF_WEBHOOK_SECRET = os.environ.get("HANDOFF_WEBHOOK_SECRET", "")
if HANDOFF_WEBHOOK_URL and not HANDOFF_WEBHOOK_SECRET:
    raise RuntimeError("Set HANDOFF_WEBHOOK_SECRET to sign the webhook HANDOFF_WEBHOOK_URL receives.")
