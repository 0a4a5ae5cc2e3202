"""Pages for approvals: the queue, one approval, the decisions, claims and bulk decisions. (The
audit log and its downloads are the dashboard's: ``dashboard.views``.)"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from approvals import tools
from approvals.forms import ApproveForm, BulkDecisionForm, EditForm, QueueFilterForm, RejectForm
from approvals.models import Approval, Decision, DecisionRefused, state_conditions
from audit import roles
from runs import gemini
from runs.formats import duration
from runs.models import Step

# The queue lists this many calls of a tab; the tab counts are exact whatever their size.
QUEUE_LIMIT = 200
# At most this many calls are decided by one bulk decision.
BULK_LIMIT = 100
# Steps shown on an approval page as the context of the call (the last ones before it).
CONTEXT_STEPS = 30
# A deadline this close is shown as due soon.
DUE_SOON = timedelta(minutes=30)

APPROVE = Decision.Verdict.APPROVE


# --- What the desk shows --------------------------------------------------------------------


def _time_left(approval: Approval, now: datetime) -> dict[str, Any] | None:
    """The deadline of a pending call as shown: ``text`` ("1h 05m left", "overdue by 3m 10s",
    in the project's one duration format), ``overdue``, ``soon``; ``None`` when it has no
    deadline or is no longer pending. Display, not a right: ``Approval.actions_for`` holds those."""
    if approval.deadline_at is None or not approval.is_pending:
        return None
    seconds = (approval.deadline_at - now).total_seconds()
    if seconds <= 0:
        return {"text": f"overdue by {duration(-seconds * 1000)}", "overdue": True, "soon": False}
    return {"text": f"{duration(seconds * 1000)} left", "overdue": False,
            "soon": seconds <= DUE_SOON.total_seconds()}


def _on_desk(approvals: list[Approval], user, now: datetime) -> list[Approval]:
    """``approvals`` as the desk shows them to ``user``: each with ``actions`` (what ``user`` may
    do, ``Approval.actions_for``) and ``time_left`` (``_time_left``). Rows from
    ``with_progress(user)`` cost no query here."""
    for approval in approvals:
        approval.actions = approval.actions_for(user, now=now)
        approval.time_left = _time_left(approval, now)
    return approvals


def _next_url(request: HttpRequest, default: str) -> str:
    """Where to go after a change: the form's ``next`` when it is a path on this site."""
    url = request.POST.get("next", "")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return default


def _go(request: HttpRequest, url: str) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


# --- The queue -------------------------------------------------------------------------------


def _filtered(form: QueueFilterForm, user, now: datetime) -> QuerySet[Approval]:
    """``Approval.objects.filtered`` by the filters of ``form`` (bound and validated) that cleaned."""
    return Approval.objects.filtered(form.cleaned_data, user=user, now=now)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Run the queries inside against one snapshot of the database (PostgreSQL's REPEATABLE
    READ), so the tab counts and the list agree even when a call arrives or is decided between
    the two queries. Inside an outer transaction (tests, a caller's atomic block) the outer
    transaction's isolation applies: it cannot be changed once it has run a query."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _query_string(filters: dict[str, Any], **extra: Any) -> str:
    return urlencode({**filters, **{k: v for k, v in extra.items() if v}})


@login_required
@require_safe
@vary_on_headers("HX-Request")
def queue(request: HttpRequest) -> HttpResponse:
    """One inbox across all runs: a tab per state (``?state=pending|claimed|decided|expired``)
    with its count, and filters (``tool``, ``run``, ``age``, ``assignee``, ``policy``,
    ``requirement``, ``group``). Pending and claimed calls are listed oldest first, decided and
    expired ones latest decision first. Anyone signed in may look; the buttons show to those who
    may decide each call. An htmx request (the page polls every 2 s) gets only the
    ``approval-queue`` partial, which also carries the navigation badge out of band."""
    form = QueueFilterForm(request.GET)
    form.is_valid()
    state = form.cleaned_data.get("state") or "pending"
    now = timezone.now()
    states = state_conditions(now)
    with _one_snapshot():
        # The counts and the list come from the same filtered queryset and the same state
        # conditions, so a tab's count is the length of its list (up to QUEUE_LIMIT).
        approvals = _filtered(form, request.user, now)
        counts = approvals.aggregate(**{name: Count("pk", filter=q) for name, q in states.items()})
        order = ("created_at", "id") if state in ("pending", "claimed") else ("-decided_at", "-id")
        rows = list(
            approvals.in_state(state, now=now).with_progress(request.user)
            .select_related("run", "claimed_by", "decided_by")
            .order_by(*order)[:QUEUE_LIMIT]
        )
    filters = form.active_filters()
    context = {
        "form": form,
        "state": state,
        "rows": _on_desk(rows, request.user, now),
        "tabs": [(name, label, counts[name], _query_string(filters, state=name if name != "pending" else ""))
                 for name, label in QueueFilterForm.STATES.items()],
        "count": counts[state],
        "queue_limit": QUEUE_LIMIT,
        "filters": filters,
        "query": _query_string(filters, state=state if state != "pending" else ""),
        "filter_query": _query_string(filters),
        "can_decide": roles.may(request.user, "decide"),
        "tool_names": sorted(tools.registry),
    }
    template = "approvals/queue.html"
    if request.htmx:
        template += "#approval-queue"
    return render(request, template, context)


# --- One approval ----------------------------------------------------------------------------


def _get_approval_for_user(request: HttpRequest, pk: int, *, action: str = "read") -> Approval:
    """The approval ``pk``, for ``request.user`` to take ``action`` on it: ``read`` (anyone
    signed in: ``login_required``), ``decide`` (approve, reject, claim: the reviewer role, then
    the call's approver group) or ``release`` (while a claim holds the call: its holder or an
    admin). Raises ``PermissionDenied`` (403) with the reason, from ``audit.roles`` before the
    lookup when the user's roles never allow ``action``, from the call's own rules after it;
    ``Http404`` when there is no such approval. The model checks again when the person acts."""
    if action == "decide":
        roles.require(request.user, "decide")
    approval = get_object_or_404(
        Approval.objects.select_related("run", "interaction", "decided_by", "claimed_by"), pk=pk
    )
    if action == "decide":
        approval.check_group(request.user)
    elif action == "release" and approval.is_claimed and not approval.actions_for(request.user).can_release:
        raise PermissionDenied("Only the holder of a claim, or an admin, may release it.")
    return approval


def _call_index(approval: Approval) -> Subquery:
    return Subquery(
        Step.objects.filter(interaction=approval.interaction_id, type="function_call", call_id=approval.call_id)
        .values("index")[:1]
    )


def _context_steps(approval: Approval) -> list[Step]:
    """The last ``CONTEXT_STEPS`` steps of the run before this call, oldest first, in one
    query whatever the size of the run."""
    steps = (
        Step.objects.filter(
            interaction__run=approval.run_id,
            interaction__sequence__lte=approval.interaction.sequence,
        )
        .exclude(Q(interaction=approval.interaction_id) & Q(index__gte=_call_index(approval)))
        .select_related("interaction")
        .only("type", "index", "call_id", "name", "data", "interaction__sequence", "interaction__interaction_id")
        .order_by("-interaction__sequence", "-index")
    )
    return list(reversed(steps[:CONTEXT_STEPS]))


def _stated_reason(approval: Approval) -> list[dict[str, str]]:
    """What the model said before asking, in the interaction that holds the call: the text of
    its thought summaries and ``model_output`` steps before the call's index, in order. Each is
    ``{"kind": "Thought summary" | "Model said", "text": ...}``; empty when it said nothing."""
    steps = Step.objects.filter(
        interaction=approval.interaction_id, type__in=["thought", "model_output"], index__lt=_call_index(approval)
    ).order_by("index")
    said = []
    for step in steps:
        data = step.data if isinstance(step.data, dict) else {}
        if step.type == "thought":
            kind, texts = "Thought summary", gemini.texts(data.get("summary"))
        else:
            kind, texts = "Model said", gemini.texts(data.get("content"))
        text = "\n\n".join(t.strip() for t in texts if t.strip())
        if text:
            said.append({"kind": kind, "text": text})
    return said


def _render_approval(
    request: HttpRequest,
    approval: Approval,
    *,
    approve_form: ApproveForm | None = None,
    respond_form: ApproveForm | None = None,
    edit_form: EditForm | None = None,
    reject_form: RejectForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    user = request.user
    decisions = list(approval.decisions.select_related("user"))
    counting = [d for d in decisions if d.verdict == APPROVE and d.arguments_hash == approval.arguments_hash]
    approval.approvals_count = len(counting)
    approval.approved_by_me = any(d.user_id == user.pk for d in counting)
    approval.requested_by_me = approval.is_requester(user)
    _on_desk([approval], user, timezone.now())
    # A refused decision shows the current arguments: the forms carry their hash afresh.
    initial = {"shown_hash": approval.arguments_hash}
    context = {
        "approval": approval,
        "tool": tools.get(approval.function_name),
        "decisions": decisions,
        "approve_form": approve_form or ApproveForm(initial=initial),
        "respond_form": respond_form or ApproveForm(initial=initial, requires_result=True),
        "edit_form": edit_form or EditForm(initial=initial, function_name=approval.function_name,
                                           current=approval.current_arguments),
        "reject_form": reject_form or RejectForm(initial=initial),
        "error": error,
    }
    template = "approvals/approval_detail.html"
    if request.htmx:
        template += "#approval-decision"
    else:
        context["context_steps"] = _context_steps(approval)
        context["stated_reason"] = _stated_reason(approval)
    return render(request, template, context, status=status)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def approval_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """What is being decided (the call, the tool, the model's stated reason, the policy, who
    approved so far, deadline and claim) and the forms to decide it, as the tool's decisions
    allow, for those who may. An htmx request gets only the ``approval-decision`` partial."""
    return _render_approval(request, _get_approval_for_user(request, pk))


@login_required
@require_safe
def approval_box(request: HttpRequest, pk: int) -> HttpResponse:
    """The box a function call's step shows on its run's page (``approvals/_approval_box.html``:
    status, who decided and when, the policy or reason, the result sent, a link to this call's
    page), alone: the box polls it while the call is open (``Approval.is_open``) and its run
    active. Anyone signed in may read it; a review is offered to who may decide the call
    (``actions``, as the run page gives it: ``ApprovalQuerySet.by_step``); 404 for no such
    approval."""
    approval = _get_approval_for_user(request, pk)
    approval.actions = approval.actions_for(request.user)
    return render(request, "approvals/_approval_box.html", {"approval": approval})


def _decided(
    request: HttpRequest, approval: Approval, won: bool, success: str, level: int = messages.SUCCESS
) -> HttpResponse:
    """After a decision: redirect with ``success`` (a message of ``level``: a rejection is no
    success to show in green) when it counted; when it lost (a double click, another reviewer
    first), 409 and the call's page as it now stands."""
    if not won:
        approval.refresh_from_db()
        by = f" by {approval.decided_by.get_username()}" if approval.decided_by else ""
        return _render_approval(request, approval, status=409,
                                error=f"Already decided{by}: {approval.get_status_display()}. Nothing was changed.")
    messages.add_message(request, level, success)
    return _go(request, _next_url(request, approval.get_absolute_url()))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve a pending call as shown (``shown_hash``); with ``arguments``, edit them then
    approve; with ``result``, answer it by hand. 403 for someone outside the call's approver
    group (or its run's creator where policy forbids it); 400 for an invalid form (bad JSON,
    arguments outside the tool's schema); 409 when the model refuses the decision (arguments
    changed since shown, claimed by someone else, approved twice by the same person)."""
    approval = _get_approval_for_user(request, pk, action="decide")
    if "arguments" in request.POST:
        form = EditForm(request.POST, function_name=approval.function_name, current=approval.current_arguments)
        bound = {"edit_form": form}
    elif "result" in request.POST or approval.requires_manual_result:
        form = ApproveForm(request.POST, requires_result=True)
        bound = {"respond_form": form}
    else:
        form = ApproveForm(request.POST)
        bound = {"approve_form": form}
    if not form.is_valid():
        return _render_approval(request, approval, **bound, status=400)
    try:
        won = approval.approve(
            by=request.user,
            shown_hash=form.cleaned_data["shown_hash"],
            result=form.cleaned_data.get("result"),
            arguments=form.cleaned_data.get("arguments"),
        )
    except DecisionRefused as exc:
        approval.refresh_from_db()
        return _render_approval(request, approval, error=str(exc), status=409)
    if approval.status == Approval.Status.PENDING:
        done = (f"{approval.approvals_so_far()} of {approval.approvals_required} approvals, "
                "waiting for another reviewer.")
    else:
        done = "the run goes on."
    edited = " with edited arguments" if "arguments" in form.cleaned_data else ""
    return _decided(request, approval, won, f"Approved {approval.function_name}{edited}: {done}")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    """Reject a pending call with a reason. 403 for someone outside the call's approver group;
    400 for an invalid form; 409 when the model refuses the decision."""
    approval = _get_approval_for_user(request, pk, action="decide")
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _render_approval(request, approval, reject_form=form, status=400)
    try:
        won = approval.reject(
            by=request.user, shown_hash=form.cleaned_data["shown_hash"], reason=form.cleaned_data["reason"]
        )
    except DecisionRefused as exc:
        approval.refresh_from_db()
        return _render_approval(request, approval, error=str(exc), status=409)
    return _decided(request, approval, won, f"Rejected {approval.function_name}: the model is told why.",
                    level=messages.WARNING)


# --- Claims ----------------------------------------------------------------------------------


def _until(approval: Approval) -> str:
    return timezone.localtime(approval.claimed_until).strftime("%H:%M")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def claim(request: HttpRequest, pk: int) -> HttpResponse:
    """Claim a pending call for a lease (``approvals.models.CLAIM_LEASE``), or renew one's own
    claim. 403 outside the call's approver group. Redirects to ``next`` or the call's page."""
    approval = _get_approval_for_user(request, pk, action="decide")
    if approval.claim(by=request.user):
        messages.success(request, f"You hold {approval.function_name} #{approval.pk} until {_until(approval)}.")
    elif approval.is_claimed:
        holder = approval.claimed_by.get_username()
        messages.warning(request, f"{holder} has claimed this call until {_until(approval)}.")
    else:
        messages.warning(request, f"Already decided: {approval.get_status_display()}. Nothing to claim.")
    return _go(request, _next_url(request, approval.get_absolute_url()))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def release(request: HttpRequest, pk: int) -> HttpResponse:
    """Give up a claim: its holder, or an admin freeing someone else's (403 otherwise)."""
    approval = _get_approval_for_user(request, pk, action="release")
    if not approval.is_claimed:
        messages.info(request, "No one holds a claim on this call.")
    else:
        holder = approval.claimed_by.get_username()
        if approval.release(by=request.user):
            whose = "your claim" if holder == request.user.get_username() else f"{holder}'s claim"
            messages.success(request, f"Released {whose} on {approval.function_name} #{approval.pk}.")
    return _go(request, _next_url(request, approval.get_absolute_url()))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def claim_next(request: HttpRequest) -> HttpResponse:
    """Claim the oldest unclaimed call the person may decide, within the queue's filters (posted
    with the button), and go to it. 403 for someone who may decide nothing."""
    roles.require(request.user, "decide")
    form = QueueFilterForm(request.POST)
    form.is_valid()
    approval = Approval.claim_next(by=request.user, queryset=_filtered(form, request.user, timezone.now()))
    if approval is None:
        where = " with these filters" if form.active_filters() else ""
        messages.info(request, f"Nothing left for you to claim{where}.")
        query = _query_string(form.active_filters())
        return _go(request, reverse("approvals:queue") + (f"?{query}" if query else ""))
    messages.success(request, f"You hold {approval.function_name} #{approval.pk} until {_until(approval)}.")
    return _go(request, approval.get_absolute_url())


# --- Bulk decisions --------------------------------------------------------------------------


def _preview(request: HttpRequest, form: QueueFilterForm, pks: list[int] | None) -> tuple[list[Approval], int]:
    """The calls a bulk decision would cover and how many there are in all: ``pks`` when
    chosen by hand (any state: a decided one shows as such), else the pending calls matching
    the queue's filters, oldest first, at most ``BULK_LIMIT``."""
    now = timezone.now()
    if pks is not None:
        approvals = Approval.objects.filter(pk__in=pks[:BULK_LIMIT])
    else:
        state = "claimed" if form.cleaned_data.get("state") == "claimed" else "pending"
        approvals = _filtered(form, request.user, now).in_state(state, now=now)
    total = approvals.count()
    rows = list(approvals.with_progress(request.user).select_related("run", "claimed_by", "decided_by")
                .order_by("created_at", "id")[:BULK_LIMIT])
    return _on_desk(rows, request.user, now), total


def _decide_each(user, items: list[tuple[int, str]], verdict: str, reason: str) -> list[dict[str, Any]]:
    """Decide each call on its own, with the hash its preview showed: one call refused (no
    right, stale arguments, a claim) or already decided never stops the others, and each
    decision is idempotent (a repeated one reports "already decided"). Returns one result per
    item: ``approval`` (or ``None``), ``outcome`` (approved, partial, rejected, already,
    refused, missing) and ``detail``."""
    found = Approval.objects.select_related("run", "decided_by").in_bulk([pk for pk, _ in items])
    results = []
    for pk, shown_hash in items:
        approval = found.get(pk)
        if approval is None:
            results.append({"pk": pk, "approval": None, "outcome": "missing", "detail": "No such call."})
            continue
        try:
            if verdict == "approve":
                won = approval.approve(by=user, shown_hash=shown_hash)
            else:
                won = approval.reject(by=user, shown_hash=shown_hash, reason=reason)
        except (PermissionDenied, DecisionRefused) as exc:
            results.append({"pk": pk, "approval": approval, "outcome": "refused", "detail": str(exc)})
            continue
        approval.refresh_from_db()
        if not won:
            by = f" by {approval.decided_by.get_username()}" if approval.decided_by else ""
            outcome, detail = "already", f"Already decided{by}: {approval.get_status_display()}."
        elif approval.status == Approval.Status.PENDING:
            outcome = "partial"
            detail = (f"{approval.approvals_so_far()} of {approval.approvals_required} approvals: "
                      "waiting for another reviewer.")
        elif approval.status == Approval.Status.APPROVED:
            outcome, detail = "approved", "Approved: it runs."
        else:
            outcome, detail = "rejected", "Rejected: the model is told why."
        results.append({"pk": pk, "approval": approval, "outcome": outcome, "detail": detail})
    return results


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
def bulk(request: HttpRequest) -> HttpResponse:
    """GET: a preview of the calls chosen by hand (``?ids=1&ids=2``) or by the queue's filters,
    with their arguments and the hashes shown. POST: approve or reject them (a reason is
    required to reject), each on its own, and show a result per call. 403 for someone who may
    decide nothing. An htmx POST gets only the ``bulk-decision`` partial."""
    roles.require(request.user, "decide")
    filters = QueueFilterForm(request.GET)
    filters.is_valid()
    context: dict[str, Any] = {"filter_query": _query_string(filters.active_filters()), "bulk_limit": BULK_LIMIT}
    status = 200
    if request.method == "POST":
        form = BulkDecisionForm(request.POST, limit=BULK_LIMIT)
        if form.is_valid():
            data = form.cleaned_data
            context["results"] = _decide_each(request.user, data["items"], data["verdict"], data["reason"])
            context["verdict"] = data["verdict"]
        else:
            # Show the calls posted again, as they are now, with the form's errors.
            pks = [int(v.partition(":")[0]) for v in request.POST.getlist("items") if v.partition(":")[0].isdigit()]
            context["rows"], context["total"] = _preview(request, filters, pks)
            context["form"] = form
            status = 400
    else:
        pks = request.GET.getlist("ids")
        chosen = [int(pk) for pk in pks if pk.isdigit()] if pks else None
        context["rows"], context["total"] = _preview(request, filters, chosen)
        context["by_hand"] = chosen is not None
        context["form"] = BulkDecisionForm(limit=BULK_LIMIT)
    template = "approvals/bulk.html"
    if request.htmx:
        template += "#bulk-decision"
    return render(request, template, context, status=status)
