"""Pages for approvals: the queue, one approval, the decisions, and the audit log download."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from approvals import tools
from approvals.audit import export_lines
from approvals.forms import ApproveForm, RejectForm
from approvals.models import Approval, AuditEvent, DecisionRefused, is_auditor, is_reviewer
from runs.models import Step

# The queue shows this many pending calls (oldest first); the navigation badge counts them all.
QUEUE_LIMIT = 200
RECENTLY_DECIDED = 20
# Steps shown on an approval page as the context of the call (the last ones before it).
CONTEXT_STEPS = 30


@login_required
@require_safe
@vary_on_headers("HX-Request")
def queue(request: HttpRequest) -> HttpResponse:
    """Pending approvals, oldest first, and the last decisions. Anyone signed in may look; only
    reviewers get the buttons. An htmx request gets only the ``approval-queue`` partial."""
    pending = Approval.objects.pending().select_related("run").order_by("created_at", "id")
    decided = (
        Approval.objects.filter(status__in=Approval.DECIDED_STATUSES)
        .select_related("run", "decided_by")
        .order_by("-decided_at", "-id")
    )
    context = {
        "pending": pending[:QUEUE_LIMIT],
        "queue_limit": QUEUE_LIMIT,
        "decided": decided[:RECENTLY_DECIDED],
        "can_decide": is_reviewer(request.user),
        "can_export_audit": is_auditor(request.user),
    }
    template = "approvals/queue.html"
    if request.htmx:
        template += "#approval-queue"
    return render(request, template, context)


def _get_approval(pk: int) -> Approval:
    return get_object_or_404(Approval.objects.select_related("run", "interaction", "decided_by"), pk=pk)


def _context_steps(approval: Approval) -> list[Step]:
    """The last ``CONTEXT_STEPS`` steps of the run before this call, oldest first, in one
    query whatever the size of the run."""
    call_index = Step.objects.filter(
        interaction=approval.interaction_id, type="function_call", call_id=approval.call_id
    ).values("index")[:1]
    steps = (
        Step.objects.filter(
            interaction__run=approval.run_id,
            interaction__sequence__lte=approval.interaction.sequence,
        )
        .exclude(Q(interaction=approval.interaction_id) & Q(index__gte=Subquery(call_index)))
        .select_related("interaction")
        .only("type", "index", "call_id", "name", "data", "interaction__sequence", "interaction__interaction_id")
        .order_by("-interaction__sequence", "-index")
    )
    return list(reversed(steps[:CONTEXT_STEPS]))


def _render_approval(
    request: HttpRequest,
    approval: Approval,
    *,
    approve_form: ApproveForm | None = None,
    reject_form: RejectForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    can_decide = approval.is_pending and is_reviewer(request.user)
    initial = {"shown_hash": approval.arguments_hash}
    if can_decide:
        # A refused decision shows the current arguments: the forms carry their hash afresh.
        approve_form = approve_form or ApproveForm(initial=initial, requires_result=approval.requires_manual_result)
        reject_form = reject_form or RejectForm(initial=initial)
    context = {
        "approval": approval,
        "tool": tools.get(approval.function_name),
        "can_decide": can_decide,
        "is_reviewer": is_reviewer(request.user),
        "approve_form": approve_form,
        "reject_form": reject_form,
        "error": error,
    }
    template = "approvals/approval_detail.html"
    if request.htmx:
        template += "#approval-decision"
    else:
        context["context_steps"] = _context_steps(approval)
    return render(request, template, context, status=status)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def approval_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """What is being decided, and the forms to decide it (reviewers, pending calls only). An
    htmx request gets only the ``approval-decision`` partial."""
    return _render_approval(request, _get_approval(pk))


def _decided(request: HttpRequest, approval: Approval, won: bool, success: str) -> HttpResponse:
    if won:
        messages.success(request, success)
    else:
        by = f" by {approval.decided_by.get_username()}" if approval.decided_by else ""
        messages.warning(request, f"Already decided{by}: {approval.get_status_display()}. Nothing was changed.")
    url = approval.get_absolute_url()
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve a pending call (reviewers only, 403 otherwise). Answers 400 for an invalid form,
    409 when the model refuses the decision (arguments changed since shown)."""
    approval = _get_approval(pk)
    if not is_reviewer(request.user):
        raise PermissionDenied("Only members of the reviewers group may decide function calls.")
    form = ApproveForm(request.POST, requires_result=approval.requires_manual_result)
    if not form.is_valid():
        return _render_approval(request, approval, approve_form=form, status=400)
    try:
        won = approval.approve(
            by=request.user,
            shown_hash=form.cleaned_data["shown_hash"],
            result=form.cleaned_data.get("result"),
        )
    except DecisionRefused as exc:
        return _render_approval(request, approval, error=str(exc), status=409)
    return _decided(request, approval, won, f"Approved {approval.function_name}: the run goes on.")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    """Reject a pending call with a reason (reviewers only, 403 otherwise). Answers 400 for an
    invalid form, 409 when the model refuses the decision."""
    approval = _get_approval(pk)
    if not is_reviewer(request.user):
        raise PermissionDenied("Only members of the reviewers group may decide function calls.")
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _render_approval(request, approval, reject_form=form, status=400)
    try:
        won = approval.reject(
            by=request.user, shown_hash=form.cleaned_data["shown_hash"], reason=form.cleaned_data["reason"]
        )
    except DecisionRefused as exc:
        return _render_approval(request, approval, error=str(exc), status=409)
    return _decided(request, approval, won, f"Rejected {approval.function_name}: the model is told why.")


EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
}


@login_required
@require_safe
def audit_export(request: HttpRequest) -> HttpResponse:
    """The whole audit log as a CSV download (``?format=jsonl`` for JSON lines), streamed so
    memory stays flat. Auditors, reviewers and superusers only (403 otherwise)."""
    if not is_auditor(request.user):
        raise PermissionDenied("Only auditors and reviewers may export the audit log.")
    fmt = request.GET.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        return HttpResponseBadRequest("Unknown format: use csv or jsonl.", content_type="text/plain")
    response = StreamingHttpResponse(export_lines(AuditEvent.objects.all(), fmt), content_type=EXPORT_FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="handoff-audit.{fmt}"'
    return response
