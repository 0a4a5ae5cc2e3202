"""Writing the audit log. Events are written in the transaction of the change they record."""

from __future__ import annotations

import contextvars
import csv
import hashlib
import io
import json
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from django.db import models, transaction
from django.db.models.functions import Cast
from django.utils import timezone

from approvals.models import AuditEvent, ChainLink, ChainVerification

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def record(
    *,
    actor,
    verb: str,
    obj: models.Model | None,
    run=None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    object_type: str = "",
    object_id: str = "",
) -> AuditEvent:
    """Append one event. ``actor`` is a user or a ``system:<component>`` string; ``obj`` the
    model instance the event is about (or ``None`` with ``object_type``/``object_id``, e.g. a
    failed sign-in for a username); ``run`` the run it belongs to, if any. Raises
    ``RuntimeError`` outside a transaction (see ``AuditEvent.save``)."""
    user = None if isinstance(actor, str) else actor
    event = AuditEvent.objects.create(
        actor=actor if isinstance(actor, str) else actor.get_username(),
        actor_user=user,
        verb=verb,
        object_type=obj._meta.model_name if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else object_id,
        run_id=run.pk if run is not None else None,
        tool=getattr(obj, "function_name", ""),
        before=before,
        after=after,
        request_id=request_id.get(),
    )
    connection = transaction.get_connection()
    if not any(func is _seal_after_commit for _, func, _ in connection.run_on_commit):
        transaction.on_commit(_seal_after_commit, robust=True)
    return event


# --- The hash chain --------------------------------------------------------------------------

GENESIS = "0" * 64
# Key of the PostgreSQL advisory lock that lets one sealer at a time extend the chain.
SEAL_LOCK = 0x48414E44  # "HAND"


def canonical(event: AuditEvent) -> bytes:
    """The bytes an event's hash covers: its export fields as JSON, keys sorted, no spaces."""
    return json.dumps(event_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 (hex) of the previous link's hash followed by the event's canonical bytes."""
    return hashlib.sha256(prev_hash.encode() + canonical(event)).hexdigest()


def _seal_after_commit() -> None:
    seal()


def seal(batch: int = 5000) -> int:
    """Append chain links for every event not sealed yet, in id order. One sealer at a time
    (advisory lock on PostgreSQL; SQLite serializes writers itself). Runs after each transaction
    that wrote events, and periodically (Celery beat) for events whose process died before it
    could. Returns how many events it sealed."""
    sealed = 0
    while True:
        with transaction.atomic():
            if transaction.get_connection().vendor == "postgresql":
                with transaction.get_connection().cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK])
            last = ChainLink.objects.order_by("-position").only("position", "hash").first()
            prev, position = (last.hash, last.position) if last else (GENESIS, 0)
            links = []
            for event in AuditEvent.objects.filter(link__isnull=True).order_by("id")[:batch]:
                digest = event_hash(prev, event)
                position += 1
                links.append(ChainLink(position=position, event=event, prev_hash=prev, hash=digest))
                prev = digest
            ChainLink.objects.bulk_create(links)
        sealed += len(links)
        if len(links) < batch:
            return sealed


@dataclass
class Verification:
    ok: bool
    links_checked: int
    message: str
    first_bad_event_id: int | None = None


def verify(*, chunk: int = 5000, grace: timedelta = timedelta(minutes=5)) -> Verification:
    """Walk the chain from its first link and check each: positions follow one another, each
    link starts from the previous hash, the event it seals still exists and still hashes to the
    link's hash. Events older than ``grace`` with no link mean a link was removed. Reads in
    chunks (flat memory). Returns the first problem found, naming the event."""
    prev, expected, checked = GENESIS, 1, 0
    last_position = 0
    while True:
        links = list(ChainLink.objects.filter(position__gt=last_position).order_by("position")
                     .values_list("position", "event_id", "prev_hash", "hash")[:chunk])
        if not links:
            break
        events = AuditEvent.objects.in_bulk([event_id for _, event_id, _, _ in links])
        for position, event_id, prev_hash, digest in links:
            if position != expected:
                return Verification(False, checked, f"Link #{expected} is missing: the chain jumps to #{position} "
                                    f"(event {event_id}).", event_id)
            if prev_hash != prev:
                return Verification(False, checked, f"Event {event_id} (link #{position}) does not follow "
                                    f"link #{position - 1}: links were reordered or replaced.", event_id)
            event = events.get(event_id)
            if event is None:
                return Verification(False, checked, f"Event {event_id} (link #{position}) is missing: it was deleted.",
                                    event_id)
            if event_hash(prev, event) != digest:
                return Verification(False, checked, f"Event {event_id} (link #{position}) was altered, or events "
                                    f"were reordered: its content no longer matches its hash.", event_id)
            prev, expected, checked = digest, expected + 1, checked + 1
        last_position = links[-1][0]
    orphan = (AuditEvent.objects.filter(link__isnull=True, created_at__lt=timezone.now() - grace)
              .order_by("id").values_list("id", flat=True).first())
    if orphan is not None:
        return Verification(False, checked, f"Event {orphan} has no link: the chain around it was cut.", orphan)
    return Verification(True, checked, f"The chain holds: {checked} events verified.")


def verify_and_record(*, requested_by: str = "", verification: ChainVerification | None = None) -> ChainVerification:
    """``verify()`` and keep the result for the audit page (in ``verification`` when the page
    created it beforehand); an audited event too."""
    started = time.monotonic()
    result = verify()
    with transaction.atomic():
        verification = verification or ChainVerification(requested_by=requested_by)
        verification.ok, verification.links_checked = result.ok, result.links_checked
        verification.first_bad_event_id, verification.message = result.first_bad_event_id, result.message
        verification.duration_ms = int((time.monotonic() - started) * 1000)
        verification.verified_at = timezone.now()
        verification.save()
        record(actor=verification.requested_by or "system:verify_audit", verb="audit.verified", obj=verification,
               after={"ok": result.ok, "links_checked": result.links_checked, "message": result.message})
    return verification


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
    "id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "tool", "before",
    "after", "request_id",
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
        "tool": event.tool,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
    }


def _csv_cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


# Columns read for an export: the JSON fields come back as their JSON text (cast in the
# database), so nothing is parsed only to be serialized again.
_EXPORT_COLUMNS = ("id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "tool",
                   "before_json", "after_json", "request_id")
EXPORT_CHUNK = 2000  # rows fetched and written per step


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
        writer.writerow(EXPORT_FIELDS)
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
                 _csv_cell(request))
                for pk, created, actor, verb, object_type, object_id, run_id, tool, before, after, request in batch
            )
        else:
            buffer.writelines(
                f'{{"id": {pk}, "created_at": "{created.isoformat()}", "actor": {dumps(actor, ensure_ascii=False)}, '
                f'"verb": {dumps(verb)}, "object_type": {dumps(object_type)}, "object_id": {dumps(object_id)}, '
                f'"run_id": {"null" if run_id is None else run_id}, "tool": {dumps(tool, ensure_ascii=False)}, '
                f'"before": {before or "null"}, "after": {after or "null"}, "request_id": {dumps(request)}}}\n'
                for pk, created, actor, verb, object_type, object_id, run_id, tool, before, after, request in batch
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


def filtered_events(
    *, since=None, until=None, run_id: int | None = None, actor: str = "", verb: str = "", tool: str = "",
) -> models.QuerySet:
    """Events within ``[since, until)``, of a run, by an actor, with a verb (exact, or every verb
    of a family when it ends with a dot: ``approval.``) and about a tool; oldest first."""
    events = AuditEvent.objects.all()
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    if run_id:
        events = events.filter(run_id=run_id)
    if actor:
        events = events.filter(actor=actor)
    if verb:
        events = events.filter(verb__startswith=verb) if verb.endswith(".") else events.filter(verb=verb)
    if tool:
        events = events.filter(tool=tool)
    return events.order_by("id")


def record_export(*, actor, fmt: str, filters: dict[str, Any], obj: models.Model | None = None) -> None:
    """The audited event of an export (who took which part of the log away)."""
    with transaction.atomic():
        record(actor=actor, verb="audit.exported", obj=obj, object_type="auditlog", object_id="export",
               after={"format": fmt, "filters": {k: str(v) for k, v in filters.items() if v}})


# --- Evidence bundles ------------------------------------------------------------------------

BUNDLE_README = """Handoff evidence bundle for run {run_id}, made {made_at}.

Contents
  run.json              the run: request, status, output, who started it
  interactions/N.json   each interaction of the run with its steps, in chain order
  artifacts/N-KIND.*    the artifacts kept for each interaction
  approvals.json        every function call, how policy settled it, each reviewer's decision
  audit_events.jsonl    the audit events of the run, each with its hash-chain link
  SHA256SUMS            a SHA-256 checksum of every file above

Verify it on its own
  1. unzip the bundle and run:  sha256sum -c SHA256SUMS
     (every line must say OK: no file was changed, added or removed after export);
  2. each line of audit_events.jsonl holds the event and its link; the link's hash must equal
     SHA-256( link.prev_hash + canonical(event) ), canonical being the event's JSON with keys
     sorted and no spaces (separators "," and ":"), UTF-8. python manage.py verify_bundle FILE.zip
     does both checks.
"""


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


def evidence_bundle(run, destination) -> dict[str, str]:
    """Write the evidence bundle of ``run`` as a ZIP into ``destination`` (a path or a binary
    file object). Returns the manifest: file name → SHA-256 (hex)."""
    from approvals.models import Approval

    run_data = {
        "id": run.pk, "model": run.model, "agent": run.agent, "input": run.input, "tools": run.tools,
        "background": run.background, "system_instruction": run.system_instruction,
        "generation_config": run.generation_config, "status": run.status, "error": run.error,
        "output_text": run.output_text, "total_tokens": run.total_tokens,
        "created_by": run.created_by.get_username() if run.created_by else None,
        "created_at": run.created_at, "finished_at": run.finished_at,
    }
    files: dict[str, bytes] = {"run.json": _json_bytes(run_data)}
    for interaction in run.interactions.order_by("sequence").prefetch_related("steps", "artifacts"):
        files[f"interactions/{interaction.sequence}.json"] = _json_bytes({
            "sequence": interaction.sequence, "interaction_id": interaction.interaction_id,
            "previous_interaction_id": interaction.previous_interaction_id, "request": interaction.request,
            "status": interaction.status, "dispatch": interaction.dispatch, "usage": interaction.usage,
            "errors": interaction.errors, "error": interaction.error, "output_text": interaction.output_text,
            "poll_count": interaction.poll_count, "sdk_version": interaction.sdk_version,
            "sent_at": interaction.sent_at, "finished_at": interaction.finished_at,
            "steps": [step.data for step in interaction.steps.all()],
        })
        for artifact in interaction.artifacts.all():
            extension = "json" if artifact.media_type == "application/json" else "txt"
            files[f"artifacts/{interaction.sequence}-{artifact.kind}.{extension}"] = artifact.content.encode()
    approvals = [{
        "call_id": a.call_id, "function_name": a.function_name, "arguments": a.arguments,
        "edited_arguments": a.edited_arguments, "status": a.status, "policy": a.policy,
        "approvals_required": a.approvals_required, "approver_group": a.approver_group,
        "decided_by": a.decided_by.get_username() if a.decided_by else None, "decided_at": a.decided_at,
        "reason": a.reason, "result": a.result, "result_is_error": a.result_is_error,
        "decisions": [{"user": d.user.get_username(), "verdict": d.verdict, "reason": d.reason,
                       "arguments": d.arguments, "at": d.created_at} for d in a.decisions.all()],
    } for a in Approval.objects.filter(run=run).select_related("decided_by").prefetch_related("decisions__user")]
    files["approvals.json"] = _json_bytes(approvals)
    lines = []
    for event in AuditEvent.objects.filter(run_id=run.pk).select_related("link").order_by("id"):
        link = getattr(event, "link", None)
        lines.append(json.dumps({
            "event": event_dict(event),
            "link": {"position": link.position, "prev_hash": link.prev_hash, "hash": link.hash} if link else None,
        }, sort_keys=True, ensure_ascii=False))
    files["audit_events.jsonl"] = ("\n".join(lines) + "\n").encode()
    files["README.txt"] = BUNDLE_README.format(run_id=run.pk, made_at=timezone.now().isoformat()).encode()
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files["SHA256SUMS"] = "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items())).encode()
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(f"run-{run.pk}/{name}", data)
    return manifest


def verify_bundle(source) -> list[str]:
    """Check an evidence bundle (a path or binary file object): every file listed in
    SHA256SUMS matches, no file is unlisted, and every audit event hashes to its link. Returns
    the problems found (empty when it verifies)."""
    problems: list[str] = []
    with zipfile.ZipFile(source) as bundle:
        names = bundle.namelist()
        root = names[0].split("/", 1)[0] + "/" if names else ""
        try:
            sums = bundle.read(root + "SHA256SUMS").decode()
        except KeyError:
            return ["SHA256SUMS is missing."]
        listed = {}
        for line in sums.splitlines():
            digest, _, name = line.partition("  ")
            listed[name] = digest
        for name in names:
            short = name[len(root):]
            if short == "SHA256SUMS":
                continue
            if short not in listed:
                problems.append(f"{short} is not listed in SHA256SUMS.")
            elif hashlib.sha256(bundle.read(name)).hexdigest() != listed[short]:
                problems.append(f"{short} does not match its checksum.")
        for name in listed:
            if root + name not in names:
                problems.append(f"{name} is listed but missing.")
        if root + "audit_events.jsonl" in names:
            for number, line in enumerate(bundle.read(root + "audit_events.jsonl").decode().splitlines(), 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                link = item.get("link")
                if link is None:
                    problems.append(f"Audit event {item['event']['id']} has no chain link (not sealed yet).")
                    continue
                canonical_bytes = json.dumps(item["event"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                if hashlib.sha256(link["prev_hash"].encode() + canonical_bytes).hexdigest() != link["hash"]:
                    problems.append(f"Audit event {item['event']['id']} does not match its chain link.")
    return problems


# --- Retention -------------------------------------------------------------------------------


def prune_raw_payloads(*, older_than_days: int, actor: str = "system:retention", dry_run: bool = False) -> int:
    """Delete the raw request and response artifacts older than ``older_than_days`` days; steps,
    decisions, the other artifacts and the audit chain stay. Audited. Returns how many."""
    from runs.models import Artifact

    cutoff = timezone.now() - timedelta(days=older_than_days)
    raw = Artifact.objects.filter(kind__in=[Artifact.Kind.RAW_REQUEST, Artifact.Kind.RAW_RESPONSE], created_at__lt=cutoff)
    count = raw.count()
    if dry_run or not count:
        return count
    with transaction.atomic():
        deleted, _ = raw.delete()
        record(actor=actor, verb="artifacts.pruned", obj=None, object_type="artifact", object_id="raw",
               after={"deleted": deleted, "older_than_days": older_than_days, "cutoff": cutoff.isoformat()})
    return deleted


# --- Exports written by a job ----------------------------------------------------------------

PROGRESS_EVERY = 10_000  # rows between progress updates


def export_path(export) -> Path:
    from django.conf import settings

    folder = Path(settings.DATA_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / export.file_name


def write_export(export_pk: int) -> None:
    """Write ``AuditExport`` ``export_pk`` to its file: stream the filtered events (flat
    memory), count progress, then record the file's SHA-256 and an audited event."""
    from approvals.models import AuditExport

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
    events = filtered_events(**filters)
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


# --- Access ----------------------------------------------------------------------------------


def on_signed_in(sender, request, user, **kwargs) -> None:
    with transaction.atomic():
        record(actor=user, verb="user.signed_in", obj=user)


def on_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    with transaction.atomic():
        record(actor=username or "anonymous", verb="user.sign_in_failed", obj=None, object_type="user",
               object_id=username, after={"path": request.path if request else ""})


class AccessDeniedMiddleware:
    """Records every 403 answered to a signed-in user as a ``user.denied`` event (who, which
    path and method)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 403 and request.user.is_authenticated:
            with transaction.atomic():
                record(actor=request.user, verb="user.denied", obj=request.user,
                       after={"path": request.path, "method": request.method})
        return response
