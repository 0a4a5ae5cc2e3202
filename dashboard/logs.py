"""Log lines as JSON (``HANDOFF_LOG_FORMAT=json``) for the web server, the workers and gunicorn.

One object per line with ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
request's id (``request_id``, as kept on audit events and sent back in ``X-Request-ID``) while a
request is served, the Celery task (``task_id``, ``task_name``) while a task runs, ``exc_info``
with the traceback when there is one, and any ``extra`` fields the call passed.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from audit import context

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


def json_enabled() -> bool:
    return os.environ.get("HANDOFF_LOG_FORMAT", "").strip().lower() == "json"


def _task() -> Any:
    state = sys.modules.get("celery._state")
    return state.get_current_task() if state is not None else None


class Formatter(JsonFormatter):
    """python-json-logger's formatter with Handoff's field names and context (module docstring).

    Times are UTC with microseconds (``2025-01-31T12:00:00.123456+00:00``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("fmt", FIELDS)
        kwargs.setdefault("rename_fields", RENAMED)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat()

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        request_id = getattr(record, "request_id", "") or context.request_id.get()
        if request_id:
            log_record["request_id"] = request_id
        task = _task()
        if task is not None and getattr(task, "request", None) is not None and task.request.id:
            log_record.setdefault("task_id", task.request.id)
            log_record.setdefault("task_name", task.name)


class AccessFormatter(Formatter):
    """gunicorn's access log as JSON: one line per request with ``method``, ``path``, ``query``,
    ``status``, ``bytes``, ``duration_ms``, ``remote_addr``, ``user_agent`` and the
    ``request_id`` Handoff answered with (its ``X-Request-ID`` response header). gunicorn passes
    its log atoms as the record's arguments (``gunicorn.glogging.Logger.access``)."""

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        atoms = record.args if isinstance(record.args, dict) else {}
        if not atoms:
            return
        status = str(atoms.get("s", ""))
        log_record.update(
            method=atoms.get("m"),
            path=atoms.get("U"),
            query=atoms.get("q") or "",
            status=int(status) if status.isdigit() else status,
            bytes=atoms.get("B"),
            duration_ms=round(atoms.get("D", 0) / 1000, 3),
            remote_addr=atoms.get("h"),
            user_agent=_unescaped(atoms.get("a")),
        )
        request_id = atoms.get("{x-request-id}o", "-")
        if request_id != "-":
            log_record["request_id"] = request_id


def _unescaped(value: Any) -> Any:
    # gunicorn escapes double quotes in its atoms for its text format; JSON escapes them itself.
    return value.replace('\\"', '"') if isinstance(value, str) else value


def use_json(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` the JSON ``Formatter`` (Celery's own handlers)."""
    for handler in logger.handlers:
        handler.setFormatter(Formatter())


class ClientErrors(logging.Filter):
    """``django.request``: a request refused with a 4xx is not an error of Handoff's, so it gets no
    traceback. A 403 keeps one line with the refusal's reason (``PermissionDenied``'s message, e.g.
    "bob may not export the audit log: …"); a 404 none, as the access log has it already. 5xx
    records pass as they are, traceback included."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None) or 500
        if status >= 500:
            return True
        if status == 404:
            return False
        exception = record.exc_info[1] if record.exc_info else None
        reason = str(exception) if exception is not None else ""
        record.msg = f"{record.getMessage()}: {reason}" if reason else record.getMessage()
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True
