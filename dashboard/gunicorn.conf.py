"""gunicorn's configuration for Handoff's web server:
``gunicorn -c dashboard/gunicorn.conf.py dashboard.wsgi`` (what ``make serve`` runs).

Environment: ``PORT`` (default 8000) on every interface, or ``HANDOFF_WEB_BIND`` (``host:port``,
``unix:/path``); ``HANDOFF_WEB_WORKERS`` (else ``WEB_CONCURRENCY``, else 2) processes of
``HANDOFF_WEB_THREADS`` threads (default 4); ``HANDOFF_WEB_TIMEOUT`` seconds a request may take
(default 60: the SDK's own requests wait up to ``HANDOFF_GEMINI_TIMEOUT_MS``, and a page that
starts a run only queues it); ``HANDOFF_LOG_FORMAT=json`` for JSON log lines.
"""

import os
import sys
from pathlib import Path

# gunicorn loads this file by path: the project folder must be importable for dashboard.logs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import logs  # noqa: E402

bind = [os.environ.get("HANDOFF_WEB_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("HANDOFF_WEB_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2)
# Threads, so a slow request (an export download, a large run) does not hold a whole process; a
# fixed number of them, so HANDOFF_CONN_MAX_AGE can keep one database connection per thread.
threads = int(os.environ.get("HANDOFF_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("HANDOFF_WEB_TIMEOUT", "60"))
# On SIGTERM (a deploy, honcho stopping), workers finish the requests they hold for this long.
graceful_timeout = int(os.environ.get("HANDOFF_WEB_GRACEFUL_TIMEOUT", "30"))
# Seconds an idle keep-alive connection is held open: above a load balancer's idle timeout it
# would close connections the balancer still thinks open.
keepalive = int(os.environ.get("HANDOFF_WEB_KEEPALIVE", "5"))
# Workers are replaced after this many requests (spread by the jitter), so a slow leak stays small.
max_requests = int(os.environ.get("HANDOFF_WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10

# gunicorn's control socket (gunicornc) is not used; one default path per user would be shared
# by every gunicorn on the machine.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
# The combined log format, the time taken (microseconds) and the request's id, as on its audit
# events and in its X-Request-ID header.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus request_id=%({x-request-id}o)s'

if logs.json_enabled():
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        # Django's LOGGING puts a JSON handler on the root logger once the application loads.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
        "handlers": {
            "error": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "formatters": {
            "json": {"()": logs.Formatter},
            "access": {"()": logs.AccessFormatter},
        },
    }


def child_exit(server, worker):
    # prometheus-client's multiprocess mode keeps a dead process's live gauges unless told.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
