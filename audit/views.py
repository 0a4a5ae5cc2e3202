"""The audit log's pages: the log with its filters and the chain's state, verification, downloads
and export jobs. Every page takes the ``read_audit`` or ``export`` right (``audit.roles``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from audit import exports, log, roles
from audit.forms import AuditFilterForm
from audit.models import AuditEvent, AuditExport, ChainVerification
from audit.tasks import verify_audit_chain, write_audit_export

AUDIT_PAGE_SIZE = 100


@login_required
@require_safe
@vary_on_headers("HX-Request")
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit log: whether the hash chain held when last verified, filters (time range, run,
    actor, verb, tool), the matching events newest first (100 a page, ``?before=<id>``), exports
    of exactly what is filtered, and export jobs; an invalid filter is shown with its error (400)
    and none is applied. An htmx request gets the ``chain-status`` partial, which polls while a
    verification runs."""
    roles.require(request.user, "read_audit")
    form = AuditFilterForm(request.GET or None)
    filters = form.filters() if form.is_valid() else {}
    events = AuditEvent.objects.filtered(**filters).order_by("-id")
    before = request.GET.get("before", "")
    if before.isdigit():
        events = events.filter(id__lt=int(before))
    page = list(events[: AUDIT_PAGE_SIZE + 1])
    verification = ChainVerification.objects.order_by("-verified_at", "-id").first()
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "form": form,
        "events": page[:AUDIT_PAGE_SIZE],
        "older_url": f"?{query.urlencode()}&before={page[AUDIT_PAGE_SIZE - 1].id}" if len(page) > AUDIT_PAGE_SIZE else "",
        "query": query.urlencode(),
        "verification": verification,
        "verifying": verification is not None and verification.ok is None,
        "unsealed": log.seal_lag()[0],
        "exports": AuditExport.objects.filter(requested_by=request.user)[:5],
    }
    template = "audit/audit.html"
    if request.htmx:
        template += "#chain-status"
    return render(request, template, context, status=400 if form.errors else 200)


@login_required
@require_POST
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Verify the whole chain in a worker; the audit page shows the outcome when it is in."""
    roles.require(request.user, "read_audit")
    verification = ChainVerification.objects.create(
        ok=None, message="Verifying…", requested_by=request.user.get_username()
    )
    verify_audit_chain.delay(verification.pk)
    return redirect("audit:log")


def _refused_export(form: AuditFilterForm, fmt: str) -> HttpResponse | None:
    """A 400 naming each invalid filter of a bound ``form``, or the unknown format; ``None``
    when the export may go ahead."""
    if form.is_bound and not form.is_valid():
        problems = " ".join(f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"Invalid filters. {problems}", status=400, content_type="text/plain")
    if fmt not in ("csv", "jsonl"):
        return HttpResponse("Unknown format: use csv or jsonl.", status=400, content_type="text/plain")
    return None


@login_required
@require_safe
def audit_download(request: HttpRequest) -> HttpResponse:
    """The filtered events as CSV (or ``?format=jsonl``), streamed in constant memory; the export
    is audited."""
    roles.require(request.user, "export")
    form = AuditFilterForm(request.GET or None)
    fmt = request.GET.get("format", "csv")
    refused = _refused_export(form, fmt)
    if refused is not None:
        return refused
    filters = form.filters() if form.is_bound else {}
    exports.record_export(actor=request.user, fmt=fmt, filters=filters)
    response = StreamingHttpResponse(
        exports.export_lines(AuditEvent.objects.filtered(**filters), fmt),
        content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="handoff-audit.{fmt}"'
    return response


@login_required
@require_POST
def audit_export_start(request: HttpRequest) -> HttpResponse:
    """Start a background export of the filtered events (for large ones) and show its progress."""
    roles.require(request.user, "export")
    form = AuditFilterForm(request.POST)
    fmt = request.POST.get("format", "csv")
    refused = _refused_export(form, fmt)
    if refused is not None:
        return refused
    filters = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in form.filters().items()}
    job = AuditExport.objects.create(requested_by=request.user, format=fmt, filters=filters)
    write_audit_export.delay(job.pk)
    return redirect("audit:export", pk=job.pk)


def _get_export_for_user(request: HttpRequest, pk: int, *, done: bool = False) -> AuditExport:
    """Export job ``pk`` of ``request.user``'s own (finished, with ``done``). Raises
    ``PermissionDenied`` (403) unless the user may export, then ``Http404`` for no such job of
    theirs: someone else's job is not told apart from none."""
    roles.require(request.user, "export")
    jobs = AuditExport.objects.filter(requested_by=request.user)
    return get_object_or_404(jobs.filter(status=AuditExport.Status.DONE) if done else jobs, pk=pk)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def audit_export(request: HttpRequest, pk: int) -> HttpResponse:
    """Progress of an export job (the ``export-progress`` partial polls until it is done), then
    its download link."""
    job = _get_export_for_user(request, pk)
    template = "audit/audit_export.html"
    if request.htmx:
        template += "#export-progress"
    return render(request, template, {"job": job})


@login_required
@require_safe
def audit_export_file(request: HttpRequest, pk: int) -> HttpResponse:
    """The file of a finished export job of the user's own (404 when it is gone)."""
    job = _get_export_for_user(request, pk, done=True)
    path = exports.export_path(job)
    if not path.exists():
        raise Http404("The export file is gone.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=job.file_name)
