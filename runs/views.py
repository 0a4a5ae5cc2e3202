"""Pages for runs: the list, one run's timeline, artifact downloads, and the run actions
(cancel, continue, run again, track an interaction)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import date
from functools import reduce
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import DurationField, ExpressionWrapper, F, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from google.genai import _interactions as api_errors

from runs import costs, execution, gemini, roles
from runs.forms import ContinueForm, RunFilterForm, TrackForm
from runs.models import Artifact, Cursor, Interaction, Run, Step, search_is_selective

PAGE_SIZE = 50


def _query(form: RunFilterForm) -> dict[str, str]:
    """The valid, non-empty filters and sort of ``form`` as query-string values."""
    query = {}
    for name, value in form.cleaned_data.items():
        if value in ("", None, False) or (name == "sort" and value == "started"):
            continue
        query[name] = "1" if value is True else value.isoformat() if isinstance(value, date) else value
    return query


def _page_url(query: dict[str, str], direction: str, cursor: Cursor | None) -> str:
    """The query string of the page ``direction`` (``after`` or ``before``) ``cursor``, with the
    list's filters ``query``; ``""`` without a cursor (there is no such page)."""
    return f"?{urlencode({**query, direction: str(cursor)})}" if cursor is not None else ""


@login_required
@require_safe
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs, 50 a page, filtered and sorted by the query string (``RunFilterForm``): newest first
    by default, or ``?sort=duration`` / ``?sort=tokens``. Keyset pagination on ``(sort key, id)``
    (``RunQuerySet.page``): ``?after=<cursor>`` is the page that follows that run in the list's
    order, ``?before=<cursor>`` the one that precedes it. An invalid filter is reported on the
    page (400) and left out. An htmx request gets only the ``run-table`` partial, which polls
    itself while a run on it is active. A fixed number of queries, whatever the page size and
    the table."""
    form = RunFilterForm(request.GET)
    form.is_valid()
    sort = form.cleaned_data.get("sort") or "started"
    errors = [
        f"{form.fields[name].label}: {error}" if name in form.fields else error
        for name, field_errors in form.errors.items() for error in field_errors
    ]
    after = before = None
    if request.GET.get("after"):
        after = Cursor.parse(request.GET["after"], sort)
    elif request.GET.get("before"):
        before = Cursor.parse(request.GET["before"], sort)
    if (request.GET.get("after") or request.GET.get("before")) and after is None and before is None:
        errors.append("That page link is not valid: showing the first page.")

    filters = form.filters()
    page = Run.objects.filtered(**filters).page(
        sort=sort, after=after, before=before, size=PAGE_SIZE,
        # The query's shape (RunQuerySet.page): a selective search, a date range.
        few=bool(filters["text"]) and search_is_selective(filters["text"]),
        dated=bool(filters["since"] or filters["until"]),
    )
    rows = page.runs
    query = _query(form)
    context = {
        "form": form,
        "errors": errors,
        "runs": rows,
        "sort": sort,
        "filtered": any(name != "sort" for name in query),
        "paged": after is not None or before is not None,
        "query": urlencode(query),
        "polling": any(run.is_active for run in rows),
        "previous_url": _page_url(query, "before", page.previous_cursor),
        "next_url": _page_url(query, "after", page.next_cursor),
        # Suggestions for the text filters: the values on this page (the table is too big to
        # list them all).
        "targets": sorted({run.target for run in rows}),
        "tools": sorted({name for run in rows for name in run.tool_names.split(",") if name}),
    }
    template = "runs/run_list.html"
    if request.htmx:
        template += "#run-table"
    return render(request, template, context, status=400 if form.errors else 200)


# --- Run detail ----------------------------------------------------------------------------------

# Steps rendered per chunk of a run's timeline: the first chunk comes with the page, the next ones
# on demand (htmx when the end of the timeline scrolls into view, or plain ``?from=`` links), so
# the page and its DOM stay small however long the run is.
STEPS_PER_CHUNK = 100
# Interaction cards per chunk at most: a run of many short interactions fills a chunk with cards
# before it reaches STEPS_PER_CHUNK steps.
CARDS_PER_CHUNK = 20
# From this many on, consecutive similar steps (one type, or the calls and results of one tool)
# fold into one <details>.
GROUP_MIN = 6
# What the model said and what it was told are never folded away.
NEVER_GROUPED = frozenset({"model_output", "user_input"})
# Rows of the timing chart; a run with more interactions shows its slowest ones.
TIMING_ROWS = 40
USAGE_FIELDS = execution.USAGE_FIELDS
# Interactions that start within one chunk, at most, when none is step-less: one per step and
# one per card, and one past the end. Step-less ones crowding a position read a second query.
WINDOW = STEPS_PER_CHUNK + CARDS_PER_CHUNK + 2


@dataclass(frozen=True)
class Slot:
    """Where an interaction sits in its run's timeline: ``start`` is the run-wide position of its
    first step (from 0)."""

    pk: int
    sequence: int
    step_count: int
    start: int


def _number(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _kept_usage(run: Run) -> dict[str, int]:
    """``Run.usage`` (kept by runs.execution) with every field of ``USAGE_FIELDS`` (tokens)."""
    usage = run.usage if isinstance(run.usage, dict) else {}
    return {field: execution.whole_tokens(usage.get(field)) for field in USAGE_FIELDS}


def _slot_rows(interactions: QuerySet[Interaction]) -> list[Slot]:
    return [Slot(*row) for row in interactions.values_list("pk", "sequence", "step_count", "first_step")]


def _window(run: Run, first: int, total: int) -> list[Slot]:
    """The interactions a chunk from step ``first`` can show, in order: the last one starting
    before ``first`` (its steps may run through it) and those starting at or after it, as far as
    the chunk can reach. Two queries (three when step-less
    interactions crowd the chunk), range scans of ``interaction_run_first_step_idx`` whatever
    the size of the run: ``first_step`` grows with ``sequence``, so its order is the timeline's."""
    interactions = Interaction.objects.filter(run=run)
    before = _slot_rows(interactions.filter(first_step__lt=first).order_by("-first_step", "-sequence")[:1])
    after = interactions.filter(first_step__gte=first).order_by("first_step", "sequence")
    window = _slot_rows(after[:WINDOW])
    end = first + STEPS_PER_CHUNK
    if len(window) == WINDOW and (window[-1].start < end or end >= total):
        # What starts past the chunk's end cannot be in it; before that, every card is shown.
        window = _slot_rows(after if end >= total else after.filter(first_step__lt=end))
    return before + window


def _slot_of(run: Run, pk: int) -> Slot | None:
    """The slot of the interaction ``pk`` of ``run``, or ``None``."""
    return next(iter(_slot_rows(Interaction.objects.filter(run=run, pk=pk))), None)


def _chunk_steps(covering: list[Slot], first: int, end: int) -> list[Step]:
    """The steps at run-wide positions ``first`` to ``end`` (excluded) of the interactions
    ``covering`` (in order), found by their ``index`` in ``step_interaction_index_uniq``. One
    query, whatever the position: only the first and last of them can be partly in the range."""
    if not covering:
        return []
    inner = [slot.pk for slot in covering[1:-1]]
    conditions = [Q(interaction__in=inner)] if inner else []
    for slot in {covering[0], covering[-1]}:
        conditions.append(Q(interaction=slot.pk, index__gte=max(first - slot.start, 0), index__lt=end - slot.start))
    condition = reduce(operator.or_, conditions)
    order = {slot.pk: slot.sequence for slot in covering}
    steps = sorted(Step.objects.filter(condition), key=lambda step: (order[step.interaction_id], step.index))
    return steps[: end - first]


def _cards(run: Run, slots: list[Slot]) -> list[Interaction]:
    """The interactions of ``slots`` as the cards show them: with ``step_count``, ``start``,
    ``cost`` (estimated USD or ``None``), the request body, and the artifacts (without their
    content) as ``artifact_list``, ``raw_request``, ``raw_response``. Two queries."""
    if not slots:
        return []
    by_pk = {slot.pk: slot for slot in slots}
    interactions = list(Interaction.objects.filter(pk__in=by_pk).defer("output_text").order_by("sequence"))
    for interaction in interactions:
        slot = by_pk[interaction.pk]
        interaction.step_count, interaction.start = slot.step_count, slot.start
        interaction.cost = costs.estimate_usd(run.model, interaction.usage)
        interaction.artifact_list, interaction.raw_request, interaction.raw_response = [], None, None
    found = {interaction.pk: interaction for interaction in interactions}
    for item in Artifact.objects.filter(interaction__in=by_pk).defer("content").order_by("interaction", "kind"):
        interaction = found[item.interaction_id]
        interaction.artifact_list.append(item)
        if item.kind == Artifact.Kind.RAW_REQUEST:
            interaction.raw_request = item
        elif item.kind == Artifact.Kind.RAW_RESPONSE:
            interaction.raw_response = item
    return interactions


def _attach_approvals(run: Run, steps: list[Step]) -> None:
    """Give every function call among ``steps`` its ``approval`` (or ``None``). One query, for
    these calls only, none without calls.

    The one place ``runs`` reads approvals. The layers import one way (dashboard → approvals →
    runs): ``runs`` never imports ``approvals``, and need not. ``run.approvals`` is the reverse
    relation the approvals app's ``Approval.run`` adds to ``Run`` when it loads; what is read
    through it is that app's public API only, ``ApprovalQuerySet.by_step`` (here) and
    ``Approval.is_pending`` (``_group_key``), so its schema may change without ``runs``
    changing. The approval is shown by approvals' own template, ``approvals/_approval_box.html``,
    which ``runs/steps/function_call.html`` includes for a step that has one."""
    calls = [step for step in steps if step.type == "function_call"]
    found = run.approvals.by_step(calls)
    for step in calls:
        step.approval = found.get(step.pk)


def _group_key(step: Step, call_names: dict[str, str]) -> tuple[str, str] | None:
    """What makes steps "similar": the tool behind them (``google_search`` for its calls and
    results; ``function`` and MCP tools also by name). ``None`` keeps a step out of any group."""
    if step.type in NEVER_GROUPED:
        return None
    approval = getattr(step, "approval", None)
    if approval is not None and approval.is_pending:
        return None  # a call waiting for a person stays in sight
    for suffix in ("_call", "_result"):
        if step.type.endswith(suffix):
            tool = step.type.removesuffix(suffix)
            name = step.name or call_names.get(step.call_id, "")
            return tool, name if tool in ("function", "mcp_server_tool") else ""
    return step.type, ""


def _group_label(steps: list[Step]) -> str:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.type] = counts.get(step.type, 0) + 1
    label = " + ".join(f"{count} × {kind}" for kind, count in counts.items())
    names = {step.name for step in steps if step.name}
    return label + (f" · {', '.join(sorted(names))}" if names else "")


def _grouped(steps: list[Step]) -> list[dict]:
    """Timeline rows for one interaction's steps of a chunk: ``{"kind": "step", "step"}``, or
    ``{"kind": "group", "steps", "label", "first", "last"}`` for ``GROUP_MIN`` or more similar
    steps in a row."""
    call_names = {step.call_id: step.name for step in steps if step.type.endswith("_call") and step.name}
    rows: list[dict] = []
    pending: list[Step] = []
    pending_key = None

    def flush() -> None:
        if len(pending) >= GROUP_MIN:
            rows.append({"kind": "group", "steps": list(pending), "label": _group_label(pending),
                         "first": pending[0].number, "last": pending[-1].number})
        else:
            rows.extend({"kind": "step", "step": step} for step in pending)
        pending.clear()

    for step in steps:
        key = _group_key(step, call_names)
        if key is None or key != pending_key:
            flush()
        if key is None:
            rows.append({"kind": "step", "step": step})
        else:
            pending.append(step)
        pending_key = key
    flush()
    return rows


def _timeline_chunk(run: Run, total: int, first: int, next_sequence: int | None) -> dict:
    """The rows of the timeline from step ``first`` (run-wide, from 0): up to
    ``STEPS_PER_CHUNK`` steps and ``CARDS_PER_CHUNK`` interaction cards, each card where its
    interaction's steps begin, and what comes after.

    ``next_sequence`` is the first interaction whose card the page does not show yet (the chunk is
    appended below what is there); ``None`` for a chunk that opens a page, which then starts
    with a "continued" row when ``first`` falls inside an interaction. A step-less interaction
    (one in flight) has its card where its first step will be, or at the end of the last chunk.

    Returns ``rows``, ``first``, ``earlier_from``, ``next_from``/``next_sequence`` (the cursor of
    the next chunk), ``more`` (steps or cards beyond this chunk: a "Load more" row) and ``tail``
    (the run is active and the chunk reaches the end: a row that polls for new steps).

    Only the interactions around ``first`` are read (``_window``). Up to seven queries, whatever
    the size of the run.
    """
    standalone = next_sequence is None
    if standalone and first >= total:
        first = max(total - 1, 0) // STEPS_PER_CHUNK * STEPS_PER_CHUNK
    first = min(max(first, 0), total)
    slots = _window(run, first, total)
    if standalone:
        # Sequences run from 0 without a gap, so the one after the last is the count.
        next_sequence = next((slot.sequence for slot in slots if slot.start >= first), run.interaction_count)
    end = first + STEPS_PER_CHUNK
    cards = [s for s in slots if s.sequence >= next_sequence and s.start >= first and (s.start < end or end >= total)]
    if len(cards) > CARDS_PER_CHUNK and cards[CARDS_PER_CHUNK].start > first:
        end = cards[CARDS_PER_CHUNK].start
        cards = [s for s in cards if s.start < end]
    reaches_end = end >= total
    covering = [s for s in slots if s.step_count and s.start < end and s.start + s.step_count > first]
    continued = covering[0] if standalone and covering and covering[0].start < first else None

    steps = _chunk_steps(covering, first, end)
    for number, step in enumerate(steps, start=first + 1):
        step.number = number
    _attach_approvals(run, steps)
    by_interaction: dict[int, list[Step]] = {}
    for step in steps:
        by_interaction.setdefault(step.interaction_id, []).append(step)

    shown = {i.pk: i for i in _cards(run, cards + ([continued] if continued else []))}
    card_pks = {s.pk for s in cards}
    rows: list[dict] = []
    for slot in sorted({*covering, *cards}, key=lambda s: s.sequence):
        if slot.pk in card_pks:
            rows.append({"kind": "interaction", "interaction": shown[slot.pk]})
        elif slot is continued:
            rows.append({"kind": "continued", "interaction": shown[slot.pk]})
        rows.extend(_grouped(by_interaction.get(slot.pk, [])))
    if cards:
        next_sequence = max(next_sequence, cards[-1].sequence + 1)
    return {
        "rows": rows,
        "first": first,
        "earlier_from": max(first - STEPS_PER_CHUNK, 0),
        "next_from": min(end, total),
        "next_sequence": next_sequence,
        "more": not reaches_end,
        "tail": reaches_end and run.is_active,
    }


def _timing(run: Run, interaction_count: int) -> dict:
    """The timing chart: one bar per sent interaction, placed from the run's start (a waterfall),
    so waits between interactions show as gaps and a slow interaction as a long bar. Positions are
    percentages of the span, as strings for CSS. A run with more than ``TIMING_ROWS``
    interactions (``interaction_count`` in all) shows its slowest ones, in order.

    Three queries, none of which reads the whole run: the interactions not sent or not finished
    (a chain stops at them, so they are few), the ``TIMING_ROWS`` slowest finished ones and the
    last end among them (``interaction_run_open_idx``, ``_took_idx``, ``_finished_idx``)."""
    # An interaction without an end has run until now while the run is active, else until the run ended.
    fallback = timezone.now() if run.is_active else run.finished_at
    fields = ("pk", "run", "sequence", "status", "sent_at", "finished_at")
    interactions = Interaction.objects.filter(run=run)
    unfinished = list(interactions.filter(Q(sent_at=None) | Q(finished_at=None)).only(*fields))
    running = [interaction for interaction in unfinished if interaction.sent_at is not None]
    count = interaction_count - (len(unfinished) - len(running))
    if not count:
        return {"bars": [], "hidden": 0}
    ends = []
    for interaction in running:
        interaction.ended = fallback or interaction.sent_at
        interaction.took = interaction.ended - interaction.sent_at
        ends.append(interaction.ended)
    finished = interactions.filter(sent_at__isnull=False, finished_at__isnull=False)
    took = ExpressionWrapper(F("finished_at") - F("sent_at"), output_field=DurationField())
    slowest = list(finished.alias(took=took).order_by("-took", "sequence").only(*fields)[:TIMING_ROWS])
    for interaction in slowest:
        interaction.took = interaction.finished_at - interaction.sent_at
    if slowest:
        ends.append(finished.order_by("-finished_at").values_list("finished_at", flat=True)[0])
    rows = sorted(slowest + running, key=lambda i: (-i.took, i.sequence))[:TIMING_ROWS]
    span = max((max(ends) - run.created_at).total_seconds() * 1000, 1)
    bars = []
    for interaction in sorted(rows, key=lambda i: i.sequence):
        offset = max((interaction.sent_at - run.created_at).total_seconds() * 1000, 0)
        took = max(interaction.took.total_seconds() * 1000, 0)
        bars.append({
            "interaction": interaction,
            "duration_ms": int(took),
            "running": interaction.finished_at is None and run.is_active,
            "slowest": interaction is rows[0] and count > 1,
            "left": f"{min(offset / span * 100, 100):.3f}",
            "width": f"{max(took / span * 100, 0.4):.3f}",
        })
    return {"bars": bars, "hidden": count - len(bars), "span_ms": int(span)}


def _header(run: Run, interaction_count: int, total: int, usage: dict[str, int]) -> dict:
    return {
        "interaction_count": interaction_count,
        "total_steps": total,
        # The estimate is linear in the tokens: the run's summed usage prices the whole run.
        "run_cost": costs.estimate_usd(run.model, usage) if any(usage.values()) else None,
        "timing": _timing(run, interaction_count),
    }


@login_required
@require_safe
@vary_on_headers("HX-Request", "HX-Target")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: its header (status, usage, estimated cost, timing chart) and the timeline of its
    interactions and steps, ``STEPS_PER_CHUNK`` steps at a time: ``?from=N`` opens the page at
    step N. A fixed number of queries whatever the size of the run, each reading only what it
    shows: the run's counts are kept on it (``Run.step_count`` and the rest), never counted here.

    An htmx request gets the partial its target names: ``run-header`` (polls itself while the
    run is active), ``timeline-more`` / ``timeline-tail`` (the next chunk of rows, appended;
    ``?from=N&i=K`` with K the next interaction card to show; the tail polls for new steps while
    the run is active), ``interaction-<pk>`` (a card that polls while its interaction is in
    flight), or else ``run-detail``. A function call's approval box is approvals' own, and polls
    approvals:box.
    """
    run = get_object_or_404(Run.objects.select_related("created_by", "cancelled_by"), pk=pk)
    target = (request.htmx.target or "") if request.htmx else ""
    template = "runs/run_detail.html"
    context = {
        "run": run, "run_url": run.get_absolute_url(), "polling": run.is_active,
        # The actions the header offers (the views check again): read only if shown.
        "may": SimpleLazyObject(lambda: roles.allowed(request.user, run)),
        "unknown_risk": execution.UNKNOWN_RISK,
    }
    count, total, usage = run.interaction_count, run.step_count, _kept_usage(run)
    if target == "run-header":
        return render(request, template + "#run-header", {**context, **_header(run, count, total, usage)})
    if target.startswith("interaction-"):
        pk = _number(target.removeprefix("interaction-"))
        slot = _slot_of(run, pk) if target == f"interaction-{pk}" else None
        if slot is None:
            raise Http404("No such interaction in this run.")
        return render(request, template + "#interaction-card", {**context, "interaction": _cards(run, [slot])[0]})
    first = _number(request.GET.get("from"))
    if target in ("timeline-more", "timeline-tail"):
        chunk = _timeline_chunk(run, total, first, _number(request.GET.get("i")))
        return render(request, template + "#timeline-rows", {**context, "total_steps": total, **chunk})
    context.update(_header(run, count, total, usage))
    context.update(_timeline_chunk(run, total, first, None))
    if request.htmx:
        template += "#run-detail"
    return render(request, template, context)


@login_required
@require_safe
def artifact(request: HttpRequest, pk: int, artifact_pk: int) -> HttpResponse:
    """One artifact of run ``pk`` (404 when it belongs to another run): a download, or with
    ``?view=1`` shown in the browser. Served as JSON or plain text only (and ``nosniff`` from
    the security middleware), so nothing the API sent is ever rendered as HTML."""
    artifact = get_object_or_404(
        Artifact.objects.select_related("interaction"), pk=artifact_pk, interaction__run_id=pk
    )
    is_json = artifact.media_type == "application/json"
    response = HttpResponse(
        artifact.content,
        content_type=("application/json" if is_json else "text/plain") + "; charset=utf-8",
    )
    filename = f"run-{pk}-interaction-{artifact.interaction.sequence}-{artifact.kind}.{'json' if is_json else 'txt'}"
    response["Content-Disposition"] = content_disposition_header(request.GET.get("view") != "1", filename)
    return response


# --- Actions ---------------------------------------------------------------------------------
# Plain POST forms: redirect after POST, a message says what happened; they work without
# JavaScript.


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel an active run (``execution.cancel_run``); the run records who cancelled it. 403
    unless the user may cancel this run (``runs.roles``: an engineer their own, an admin any)."""
    run = get_object_or_404(Run, pk=pk)
    roles.require(request.user, "cancel", run)
    try:
        execution.cancel_run(run.pk, by=request.user)
    except execution.CannotDoThat as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk} cancelled.")
    return redirect(run)


@login_required
@require_POST
def continue_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Continue a completed run with a new user message (``previous_interaction_id``). 403
    unless the user may continue this run (``runs.roles``: an engineer their own, an admin any)."""
    run = get_object_or_404(Run, pk=pk)
    roles.require(request.user, "continue", run)
    form = ContinueForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write the message to continue the run with.")
        return redirect(run)
    try:
        execution.continue_run(run.pk, text=form.cleaned_data["text"], by=request.user)
    except execution.CannotDoThat as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Message sent: the run goes on.")
    return redirect(run)


@login_required
@require_POST
def rerun(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a new run, the user's own, with the same request as this one. 403 unless the
    user may run runs again (``runs.roles``)."""
    source = get_object_or_404(Run, pk=pk)
    roles.require(request.user, "rerun", source)
    run = execution.rerun(source.pk, by=request.user)
    messages.success(request, f"Run {run.pk} started with the request of run {source.pk}.")
    return redirect(run)


def _unknown_send_action(request: HttpRequest, pk: int, interaction_pk: int, act, done: str) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    roles.require(request.user, "administer", run)
    interaction = get_object_or_404(Interaction, pk=interaction_pk, run=run)
    try:
        act(interaction.pk, by=request.user)
    except execution.CannotDoThat as exc:
        # Another admin decided first, or the run moved on: a lost race, not an error.
        return render(request, "runs/action_refused.html", {"run": run, "message": str(exc)}, status=409)
    messages.success(request, done)
    return redirect(run)


@login_required
@require_POST
def resend(request: HttpRequest, pk: int, interaction_pk: int) -> HttpResponse:
    """Send again an interaction of run ``pk`` whose send has an unknown outcome
    (``execution.resend_unknown``: the risk is recorded with the decision). Admins only (403);
    409 when it is not, or no longer, of unknown outcome."""
    return _unknown_send_action(request, pk, interaction_pk, execution.resend_unknown,
                                "Sent again: the run goes on. The audit log records the risk you took.")


@login_required
@require_POST
def close(request: HttpRequest, pk: int, interaction_pk: int) -> HttpResponse:
    """Close an interaction of run ``pk`` whose send has an unknown outcome as failed
    (``execution.close_unknown``). Admins only (403); 409 as ``resend``."""
    return _unknown_send_action(request, pk, interaction_pk, execution.close_unknown,
                                "Closed as failed: it is not sent again.")


@login_required
@require_POST
def track(request: HttpRequest) -> HttpResponse:
    """Track an interaction started elsewhere: fetch it with ``interactions.get``, record it as
    a run, poll it if it is still running. 403 unless the user may track (``runs.roles``); a
    malformed id, an unknown one or the API down go back to the form (400)."""
    roles.require(request.user, "track")
    form = TrackForm(request.POST)
    if form.is_valid():
        try:
            run = execution.track_interaction(form.cleaned_data["interaction_id"], by=request.user)
        except execution.CannotDoThat as exc:
            form.add_error("interaction_id", str(exc))
        except (api_errors.APIError, gemini.MalformedResponse) as exc:
            form.add_error("interaction_id", f"Could not fetch it: {gemini.describe_error(exc)}")
        else:
            messages.success(request, f"Tracking {run.interactions.get().interaction_id} as run {run.pk}.")
            return redirect(run)
    return render(request, "runs/track.html", {"track_form": form}, status=400)
