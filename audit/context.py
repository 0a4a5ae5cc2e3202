"""What every audit event written while serving a request carries from it: the request's id
(``X-Request-ID``; see ``audit.middleware``), which log lines carry too, and ``via``, how the
actor acts when not through the pages (``"api:<token name>"``). A module of its own, importing
nothing of Handoff's or of Django's models, so the log formatter can read it during start-up."""

import contextvars

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# "" for the pages and commands; "api:<token name>" for a request made with an API token.
via: contextvars.ContextVar[str] = contextvars.ContextVar("via", default="")
