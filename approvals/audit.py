"""Writing the audit log. Events are written in the transaction of the change they record."""

from __future__ import annotations

import contextvars
import csv
import io
import json
import uuid
from typing import Any, Iterator

from django.db import models

from approvals.models import AuditEvent

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def record(
    *,
    actor,
    verb: str,
    obj: models.Model,
    run=None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. ``actor`` is a user or a ``system:<component>`` string; ``obj`` the
    model instance the event is about; ``run`` the run it belongs to, if any. Raises
    ``RuntimeError`` outside a transaction (see ``AuditEvent.save``)."""
    user = None if isinstance(actor, str) else actor
    return AuditEvent.objects.create(
        actor=actor if isinstance(actor, str) else actor.get_username(),
        actor_user=user,
        verb=verb,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        run_id=run.pk if run is not None else None,
        before=before,
        after=after,
        request_id=request_id.get(),
    )


class RequestIdMiddleware:
    """Tags audit events written while serving a request with its id (``X-Request-ID`` when a
    proxy set one, else a new UUID), and returns it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        token = request_id.set(value)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = value
        return response


# --- Export ----------------------------------------------------------------------------------

EXPORT_FIELDS = (
    "id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "before", "after",
    "request_id",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); such
# cells are prefixed with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """One event as a JSON-ready dict with the keys of ``EXPORT_FIELDS``."""
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor,
        "verb": event.verb,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "run_id": event.run_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
    }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    value = str(value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def export_lines(events: models.QuerySet, fmt: str) -> Iterator[str]:
    """The events of ``events`` as CSV (with a header row) or JSONL lines, streamed from the
    database in chunks (``QuerySet.iterator``) so memory stays flat. Raises ``ValueError`` for
    another ``fmt``."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"Unknown export format {fmt!r}: use csv or jsonl.")
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def csv_line(row) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    if fmt == "csv":
        yield csv_line(EXPORT_FIELDS)
    for event in events.order_by("id").iterator(chunk_size=2000):
        data = event_dict(event)
        if fmt == "csv":
            yield csv_line([_csv_cell(data[f]) for f in EXPORT_FIELDS])
        else:
            yield json.dumps(data, ensure_ascii=False) + "\n"
