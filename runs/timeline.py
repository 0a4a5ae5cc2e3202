"""What the run page shows of a run: its timeline of interactions and steps in chunks, each
interaction's card, and the header's counts, cost estimate and timing chart.

Read-only, and a fixed number of queries per chunk whatever the size of the run: the counts are
kept on the rows (``Run.step_count``, ``Interaction.first_step`` and the rest, by
``runs.execution``), so a chunk is found with range scans and nothing is counted here. Its own
module rather than methods of ``Run``: some 300 lines of page layout (chunk and group sizes, how
similar steps fold, where cards go) over four models, which would double ``runs/models.py``.

``runs`` reads approvals in two places: ``_attach_approvals`` (the decision on each function
call) and ``_waits`` (the time the run waited for people), below.

The header's three durations, each defined once here and named on the page as here (the
template's legend and ``title``s; ``DEFINITIONS``), so the header, the timing chart and the
interaction cards never call two things by one name:

- *wall time*: the run's, from created to finished, or to now while it is active
  (``Run.elapsed_ms``);
- *API time*: the Interactions API's, an interaction's from sent to its answer recorded
  (``Interaction.duration_ms``; to now while in flight), summed over the run;
- *waiting for people*: from a held function call's approval opened to its decision (to now
  while pending), the calls of one interaction counted once (``approvals.models.Wait``), summed.

What is left of the wall time is Handoff's own (queues, workers, the tools that ran).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from typing import TypedDict

from django.db.models import DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.utils import timezone

from runs import costs, execution, gemini
from runs.models import Artifact, Interaction, Run, Step

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
# Interactions that start within one chunk, at most, when none is step-less: one per step and
# one per card, and one past the end. Step-less ones crowding a position read a second query.
WINDOW = STEPS_PER_CHUNK + CARDS_PER_CHUNK + 2


class Chunk(TypedDict):
    """A chunk of the timeline, as the template reads it (``timeline-rows``)."""

    # {"kind": "interaction" | "continued", "interaction"}, {"kind": "step", "step"} or
    # {"kind": "group", "steps", "label", "first", "last"} (step numbers from 1), in order.
    rows: list[dict]
    first: int  # run-wide position of the chunk's first step, from 0
    earlier_from: int  # where the chunk before this one starts
    next_from: int  # the next chunk's first step
    next_sequence: int  # the first interaction whose card is not shown yet
    more: bool  # steps or cards beyond this chunk: a "Load more" row
    tail: bool  # the run is active and the chunk reaches the end: a row that polls for new steps


# The durations of the run page, as its legend and ``title``s name and define them (module
# docstring): ``{key: {"name", "means"}}``.
DEFINITIONS = {
    "wall": {"name": "Wall time", "means": "from the run's creation to its end, or to now while it is active"},
    "api": {"name": "API time", "means": "the Interactions API at work, each interaction from sent to its "
            "answer recorded (to now while in flight), summed"},
    "waiting": {"name": "Waiting for people", "means": "function calls awaiting a decision, from the approval "
                "opened to its decision (to now while pending), summed; the calls of one interaction count once"},
    "other": {"name": "Handoff's own", "means": "what is left of the wall time: queues, workers and the tools that ran"},
}


class Timing(TypedDict):
    """The timing chart, in two parts on scales of their own, so a long wait for a person never
    shrinks the API's bars: ``bars``, the API time of each interaction shown (``interaction``,
    ``duration_ms``, ``running``, ``slowest``, ``width``: a percentage of the longest bar as a
    string for SVG), ``hidden`` (the interactions not shown); ``waits``, each time the run waited
    for people (``interaction_pk``, ``sequence``, ``opened``, ``decided``, ``calls``,
    ``function_name``, ``wait_ms``, ``waiting``: still pending, ``width``: of the longest wait).
    The sums: ``api_ms`` (every sent interaction, shown or not), ``waiting_ms``, ``wall_ms``
    (``Run.elapsed_ms``, ``None`` for a run that never started) and ``other_ms`` (what is left of
    the wall time, never negative; ``None`` without a wall time)."""

    bars: list[dict]
    hidden: int
    waits: list[dict]
    api_ms: int
    waiting_ms: int
    waiting_now: bool  # a wait is still open: the run waits for people now
    wall_ms: int | None
    other_ms: int | None


class Header(TypedDict):
    """The run page's header, beyond the run itself."""

    interaction_count: int
    total_steps: int
    run_cost: Decimal | None  # estimated USD (runs.costs), None without a price or usage
    timing: Timing
    output_blocks: list[dict]  # the run's output as text blocks, one each (``output_blocks``)


@dataclass(frozen=True)
class Slot:
    """Where an interaction sits in its run's timeline: ``start`` is the run-wide position of its
    first step (from 0)."""

    pk: int
    sequence: int
    step_count: int
    start: int


# --- The header ----------------------------------------------------------------------------------


def kept_usage(run: Run) -> dict[str, int]:
    """``Run.usage`` (kept by runs.execution) with every field of ``execution.USAGE_FIELDS``
    (tokens)."""
    usage = run.usage if isinstance(run.usage, dict) else {}
    return {field: execution.whole_tokens(usage.get(field)) for field in execution.USAGE_FIELDS}


def header(run: Run) -> Header:
    """The header's counts (kept on the run, never counted), the estimated cost of the run and
    its timing chart (``timing``: four queries)."""
    usage = kept_usage(run)
    return {
        "interaction_count": run.interaction_count,
        "total_steps": run.step_count,
        # The estimate is linear in the tokens: the run's summed usage prices the whole run.
        "run_cost": costs.estimate_usd(run.model, usage) if any(usage.values()) else None,
        "timing": timing(run),
        "output_blocks": output_blocks(run),
    }


# Trailing steps of the last interaction read for its output: the output is rarely more than a
# few, and past this many it is shown as the one recorded text.
OUTPUT_STEPS = 50


def output_blocks(run: Run) -> list[dict]:
    """A completed run's output (``Run.output_text``) as the text blocks it was joined from
    (``gemini.output_text_blocks`` of its last interaction's steps), so the header shows each on
    its own; the recorded text as one block when the steps do not give it back (more than
    ``OUTPUT_STEPS`` of them, or no steps recorded). ``[]`` for a run without output. One query,
    none without output."""
    if run.status != Run.Status.COMPLETED or not run.output_text:
        return []
    latest = Step.objects.filter(interaction__run=run, interaction__sequence=run.interaction_count - 1)
    steps = list(latest.order_by("-index").values_list("data", flat=True)[:OUTPUT_STEPS])[::-1]
    blocks = gemini.output_text_blocks([step for step in steps if isinstance(step, dict)])
    if "".join(b["text"] if isinstance(b.get("text"), str) else "" for b in blocks) != run.output_text:
        return [{"type": "text", "text": run.output_text}]
    return blocks


def _ms(delta) -> int:
    return max(int(delta.total_seconds() * 1000), 0)


def _width(ms: int, longest: int) -> str:
    # A bar of a few ms beside one of minutes is still drawn, as a sliver.
    return f"{max(ms / longest * 100, 0.4) if longest else 0.4:.3f}"


def _waits(run: Run, until) -> list[dict]:
    """The times ``run`` waited for people (``approvals.models.Wait``, through the reverse
    relation ``run.approvals``: see ``_attach_approvals``), each with ``wait_ms`` (to ``until``
    while pending) and ``waiting``. One query."""
    waits = []
    for wait in run.approvals.waits():
        end = wait.decided or until or wait.opened
        waits.append({**vars(wait), "wait_ms": _ms(end - wait.opened), "waiting": wait.decided is None and run.is_active})
    return waits


def timing(run: Run) -> Timing:
    """The timing chart: one bar per sent interaction, its API time on the scale of the longest
    (not placed on the run's clock, so the minutes a person took never shrink them), and apart
    from them, on a scale of their own, the times the run waited for people. A run with more
    than ``TIMING_ROWS`` interactions shows its slowest ones, in order; ``api_ms`` sums them
    all.

    Four queries, none of which reads a step: the interactions not sent or not finished (a chain
    stops at them, so they are few), the ``TIMING_ROWS`` slowest finished ones
    (``interaction_run_open_idx``, ``_took_idx``), the sum of the finished ones' API time (two
    timestamps per interaction, summed by the database), and the waits (one aggregate row per
    interaction that waited)."""
    # An interaction without an end has run until now while the run is active, else until the run ended.
    fallback = timezone.now() if run.is_active else run.finished_at
    wall_ms = run.elapsed_ms
    waits = _waits(run, fallback)
    waiting_ms = sum(wait["wait_ms"] for wait in waits)
    longest_wait = max((wait["wait_ms"] for wait in waits), default=0)
    for wait in waits:
        wait["width"] = _width(wait["wait_ms"], longest_wait)

    fields = ("pk", "run", "sequence", "status", "sent_at", "finished_at")
    interactions = Interaction.objects.filter(run=run)
    unfinished = list(interactions.filter(Q(sent_at=None) | Q(finished_at=None)).only(*fields))
    running = [interaction for interaction in unfinished if interaction.sent_at is not None]
    count = run.interaction_count - (len(unfinished) - len(running))
    api_ms = 0
    bars = []
    if count:
        for interaction in running:
            interaction.took = (fallback or interaction.sent_at) - interaction.sent_at
        finished = interactions.filter(sent_at__isnull=False, finished_at__isnull=False)
        took = ExpressionWrapper(F("finished_at") - F("sent_at"), output_field=DurationField())
        slowest = list(finished.alias(took=took).order_by("-took", "sequence").only(*fields)[:TIMING_ROWS])
        for interaction in slowest:
            interaction.took = interaction.finished_at - interaction.sent_at
        if slowest:
            total = finished.aggregate(total=Sum(took))["total"]
            api_ms += _ms(total) if total is not None else 0
        api_ms += sum(_ms(interaction.took) for interaction in running)
        rows = sorted(slowest + running, key=lambda i: (-i.took, i.sequence))[:TIMING_ROWS]
        longest = _ms(rows[0].took) if rows else 0
        for interaction in sorted(rows, key=lambda i: i.sequence):
            took_ms = _ms(interaction.took)
            bars.append({
                "interaction": interaction,
                "duration_ms": took_ms,
                "running": interaction.finished_at is None and run.is_active,
                "slowest": interaction is rows[0] and count > 1,
                "width": _width(took_ms, longest),
            })
    return {
        "bars": bars, "hidden": count - len(bars), "waits": waits,
        "api_ms": api_ms, "waiting_ms": waiting_ms, "waiting_now": any(wait["waiting"] for wait in waits),
        "wall_ms": wall_ms,
        "other_ms": None if wall_ms is None else max(wall_ms - api_ms - waiting_ms, 0),
    }


# --- Interactions --------------------------------------------------------------------------------


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


def _cards(run: Run, slots: list[Slot]) -> list[Interaction]:
    """The interactions of ``slots`` as the cards show them: with ``step_count``, ``start``,
    ``cost`` (estimated USD or ``None``), ``ended_run`` (whether its failure is the run's: the
    run's header shows that error, so the card does not repeat it), the request body, and the
    artifacts (without their content) as ``artifact_list``, ``raw_request``, ``raw_response``.
    Two queries."""
    if not slots:
        return []
    by_pk = {slot.pk: slot for slot in slots}
    interactions = list(Interaction.objects.filter(pk__in=by_pk).defer("output_text").order_by("sequence"))
    for interaction in interactions:
        slot = by_pk[interaction.pk]
        interaction.step_count, interaction.start = slot.step_count, slot.start
        interaction.cost = costs.estimate_usd(run.model, interaction.usage)
        # A failed run failed on its last interaction (execution._fail_run): the chain stops there.
        interaction.ended_run = (run.status == Run.Status.FAILED and bool(run.error)
                                 and interaction.sequence == run.interaction_count - 1)
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


def card(run: Run, pk: int) -> Interaction | None:
    """The interaction ``pk`` of ``run`` as its card shows it (see ``_cards``), or ``None`` when
    the run has no such interaction. Three queries (one when it has none)."""
    slot = next(iter(_slot_rows(Interaction.objects.filter(run=run, pk=pk))), None)
    return None if slot is None else _cards(run, [slot])[0]


# --- Steps ---------------------------------------------------------------------------------------


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


def _attach_approvals(run: Run, steps: list[Step], user=None) -> None:
    """Give every function call among ``steps`` its ``approval`` (or ``None``), with what
    ``user`` may do with it when given (``actions``). One query, for these calls only, none
    without calls.

    One of the two places ``runs`` reads approvals (``_waits`` is the other). The layers import
    one way (dashboard → approvals → runs): ``runs`` never imports ``approvals``, and need not.
    ``run.approvals`` is the reverse relation the approvals app's ``Approval.run`` adds to
    ``Run`` when it loads; what is read through it is that app's public API only,
    ``ApprovalQuerySet.by_step`` (here), ``ApprovalQuerySet.waits`` (``_waits``) and
    ``Approval.is_pending`` (``_group_key``), so its schema may change without ``runs``
    changing. The approval is shown by approvals' own template, ``approvals/_approval_box.html``,
    which ``runs/steps/function_call.html`` includes for a step that has one."""
    calls = [step for step in steps if step.type == "function_call"]
    found = run.approvals.by_step(calls, user=user)
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


def chunk(run: Run, first: int, next_sequence: int | None = None, *, user=None) -> Chunk:
    """The rows of the timeline from step ``first`` (run-wide, from 0; clamped to the run's
    steps): up to ``STEPS_PER_CHUNK`` steps and ``CARDS_PER_CHUNK`` interaction cards, each card
    where its interaction's steps begin, and what comes after. Steps carry ``number`` (run-wide,
    from 1), function calls their ``approval`` (with ``actions``, what ``user`` may do with it,
    when ``user`` is given: the reader of the page).

    ``next_sequence`` is the first interaction whose card the page does not show yet (the chunk is
    appended below what is there); ``None`` for a chunk that opens a page, which then starts
    with a "continued" row when ``first`` falls inside an interaction, and which shows the last
    chunk when ``first`` is past the end. A step-less interaction (one in flight) has its card
    where its first step will be, or at the end of the last chunk.

    Only the interactions around ``first`` are read (``_window``). Up to seven queries, whatever
    the size of the run.
    """
    total = run.step_count
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
    _attach_approvals(run, steps, user)
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
