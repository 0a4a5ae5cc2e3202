"""The id of the request being served (``X-Request-ID``; see ``audit.middleware``), which every
audit event and log line written while serving it carries. A module of its own, importing
nothing of Handoff's or of Django's models, so the log formatter can read it during start-up."""

import contextvars

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
