"""Django settings for Handoff.

Every deploy-specific value comes from the environment. Without any, Handoff runs on embedded
defaults: a SQLite file and a filesystem Celery broker in ``data/`` (no server needed).
"""

import os
from pathlib import Path

import dj_database_url

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

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "runs",
    "approvals",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "approvals.audit.RequestIdMiddleware",
    "approvals.audit.AccessDeniedMiddleware",
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
        conn_max_age=int(os.environ.get("HANDOFF_CONN_MAX_AGE", "60")),
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

if os.environ.get("HANDOFF_TEST_DATABASE_NAME"):
    # One test database per test session, so two sessions on one server never clobber each other.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["HANDOFF_TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# ModelBackend, with the roles the pages check loaded along with the signed-in user.
AUTHENTICATION_BACKENDS = ["approvals.backends.RoleBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "runs": {"handlers": ["console"], "level": "INFO"},
        "approvals": {"handlers": ["console"], "level": "INFO"},
    },
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
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
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")) and os.environ.get("HANDOFF_BROKER_VISIBILITY_TIMEOUT"):
    # Seconds before Redis hands the unacknowledged task of a worker that died to another worker
    # (kombu's default: one hour). Keep it above the longest countdown or ETA a task is given,
    # or the task is delivered again while it waits. Tests that kill workers shorten it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": float(os.environ["HANDOFF_BROKER_VISIBILITY_TIMEOUT"]),
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
CELERY_BEAT_SCHEDULE = {
    "enforce-approval-deadlines": {
        "task": "approvals.tasks.enforce_deadlines",
        "schedule": float(os.environ.get("HANDOFF_DEADLINE_CHECK_SECONDS", "30")),
    },
    "seal-audit-chain": {"task": "approvals.tasks.seal_audit_chain", "schedule": 60.0},
    "recover-stalled-interactions": {"task": "runs.tasks.recover_stalled_interactions", "schedule": 60.0},
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
# Polling a background interaction: the first GET after POLL_INITIAL_DELAY seconds, then the delay
# doubles up to POLL_MAX_DELAY, so a run of T seconds costs O(log T) requests up to the cap.
POLL_INITIAL_DELAY = float(os.environ.get("HANDOFF_POLL_INITIAL_DELAY", "1"))
POLL_MAX_DELAY = float(os.environ.get("HANDOFF_POLL_MAX_DELAY", "60"))
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

# --- Notifications ----------------------------------------------------------------------------
# Links in emails and webhooks point here.
HANDOFF_BASE_URL = os.environ.get("HANDOFF_BASE_URL", "http://127.0.0.1:8000")
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "handoff@localhost")
HANDOFF_WEBHOOK_URL = os.environ.get("HANDOFF_WEBHOOK_URL", "")
HANDOFF_WEBHOOK_SECRET = os.environ.get("HANDOFF_WEBHOOK_SECRET", "")
if HANDOFF_WEBHOOK_URL and not HANDOFF_WEBHOOK_SECRET:
    raise RuntimeError("Set HANDOFF_WEBHOOK_SECRET to sign the webhook HANDOFF_WEBHOOK_URL receives.")
