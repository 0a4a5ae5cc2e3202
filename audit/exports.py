"""Exporting the audit log: CSV or JSON lines streamed in constant memory (a download, the
``export_audit`` command), or written to a file by a job (``AuditExport``). Every export is
itself an audited event."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Cast
from django.utils import timezone

from audit.log import record
from audit.models import AuditEvent, AuditExport

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); such
# cells are prefixed with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


# Columns read for an export: the JSON fields come back as their JSON text (cast in the
# database), so nothing is parsed only to be serialized again.
_EXPORT_COLUMNS = ("id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "tool",
                   "before_json", "after_json", "request_id", "via")
EXPORT_CHUNK = 2000  # rows fetched and written per step


def _jsonl_via(via: str) -> str:
    """The ``via`` member of a JSON line, absent when empty as in ``AuditEvent.as_dict``."""
    return f', "via": {json.dumps(via, ensure_ascii=False)}' if via else ""


def _export_rows(events: models.QuerySet):
    return (
        events.order_by("id")
        .annotate(before_json=Cast("before", models.TextField()), after_json=Cast("after", models.TextField()))
        .values_list(*_EXPORT_COLUMNS)
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_chunks(events: models.QuerySet, fmt: str) -> Iterator[tuple[str, int]]:
    """The events of ``events`` as CSV (header first) or JSON lines, in pieces of up to
    ``EXPORT_CHUNK`` rows: ``(text, rows in it)``. Streamed from the database with a
    server-side cursor (``QuerySet.iterator``), so memory stays flat whatever the log's size.
    CSV cells starting with ``= + - @`` (or a tab or carriage return) get a leading quote so a
    spreadsheet never runs them as formulas. Raises ``ValueError`` for another ``fmt``."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"Unknown export format {fmt!r}: use csv or jsonl.")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(AuditEvent.EXPORT_FIELDS)
        yield buffer.getvalue(), 0
    dumps = json.dumps
    batch: list = []

    def flush() -> str:
        buffer.seek(0)
        buffer.truncate()
        if fmt == "csv":
            writer.writerows(
                (pk, created.isoformat(), _csv_cell(actor), _csv_cell(verb), _csv_cell(object_type),
                 _csv_cell(object_id), run_id, _csv_cell(tool), _csv_cell(before), _csv_cell(after),
                 _csv_cell(request), _csv_cell(via))
                for pk, created, actor, verb, object_type, object_id, run_id, tool, before, after, request, via in batch
            )
        else:
            buffer.writelines(
                f'{{"id": {pk}, "created_at": "{created.isoformat()}", "actor": {dumps(actor, ensure_ascii=False)}, '
                f'"verb": {dumps(verb)}, "object_type": {dumps(object_type)}, "object_id": {dumps(object_id)}, '
                f'"run_id": {"null" if run_id is None else run_id}, "tool": {dumps(tool, ensure_ascii=False)}, '
                f'"before": {before or "null"}, "after": {after or "null"}, "request_id": {dumps(request)}'
                f'{_jsonl_via(via)}}}\n'
                for pk, created, actor, verb, object_type, object_id, run_id, tool, before, after, request, via in batch
            )
        return buffer.getvalue()

    for row in _export_rows(events):
        batch.append(row)
        if len(batch) == EXPORT_CHUNK:
            yield flush(), len(batch)
            batch.clear()
    if batch:
        yield flush(), len(batch)


def export_lines(events: models.QuerySet, fmt: str) -> Iterator[str]:
    """``export_chunks`` without the counts: text to write or stream, in order."""
    for text, _ in export_chunks(events, fmt):
        yield text


def record_export(*, actor, fmt: str, filters: dict[str, Any], obj: models.Model | None = None) -> None:
    """The audited event of an export (who took which part of the log away)."""
    with transaction.atomic():
        record(actor=actor, verb="audit.exported", obj=obj, object_type="auditlog", object_id="export",
               after={"format": fmt, "filters": {k: str(v) for k, v in filters.items() if v}})


# --- Exports written by a job ----------------------------------------------------------------

PROGRESS_EVERY = 10_000  # rows between progress updates


def export_path(export: AuditExport) -> Path:
    """Where ``export``'s file is written: ``exports/<file_name>`` in the data folder (made if
    missing)."""
    folder = Path(settings.DATA_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / export.file_name


def write_export(export_pk: int) -> None:
    """Write ``AuditExport`` ``export_pk`` to its file: stream the filtered events (flat
    memory), count progress, then record the file's SHA-256 and an audited event."""
    claimed = AuditExport.objects.filter(pk=export_pk, status=AuditExport.Status.QUEUED).update(
        status=AuditExport.Status.RUNNING
    )
    if not claimed:
        return
    export = AuditExport.objects.select_related("requested_by").get(pk=export_pk)
    filters = {k: v for k, v in export.filters.items() if v not in (None, "")}
    for key in ("since", "until"):
        if key in filters:
            filters[key] = datetime.fromisoformat(filters[key])
    events = AuditEvent.objects.filtered(**filters)
    export.rows_total = events.count()
    export.file_name = f"handoff-audit-{export.pk}.{export.format}"
    export.save(update_fields=["rows_total", "file_name"])
    digest = hashlib.sha256()
    try:
        with open(export_path(export), "w", encoding="utf-8", newline="") as out:
            rows = reported = 0
            for text, count in export_chunks(events, export.format):
                out.write(text)
                digest.update(text.encode())
                rows += count
                if rows - reported >= PROGRESS_EVERY:
                    AuditExport.objects.filter(pk=export.pk).update(rows_done=rows)
                    reported = rows
    except OSError as exc:
        AuditExport.objects.filter(pk=export.pk).update(status=AuditExport.Status.FAILED, error=str(exc))
        return
    AuditExport.objects.filter(pk=export.pk).update(
        status=AuditExport.Status.DONE, rows_done=rows, sha256=digest.hexdigest(), finished_at=timezone.now()
    )
    record_export(actor=export.requested_by, fmt=export.format, filters=export.filters, obj=export)


