"""The counts a run keeps as it is recorded (``Run.interaction_count``, ``step_count``, ``usage``;
``Interaction.step_count``, ``first_step``), the data migration that fills them for older rows,
and the run page reading them: its header and chunks checked against the rows, counted here."""

import importlib
import json
import re
from datetime import timedelta
from types import SimpleNamespace

from django.apps import apps
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import tools
from approvals.models import Approval
from runs import costs, execution, gemini
from runs.execution import USAGE_FIELDS, whole_tokens
from runs.models import Interaction, Run, Step
from runs.templatetags.steps import usd
from tests.conftest import wait_for
from tests.factories import (
    function_call, make_artifact, make_interaction, make_run, make_step, make_steps, parallel_refunds_input,
    text_output,
)

MODEL = "gemini-3-flash-preview"
MIGRATION = importlib.import_module("runs.migrations.0008_run_counts")


def recount(run: Run) -> dict:
    """What the counts should be, counted from the rows."""
    position, interactions = 0, []
    usage = dict.fromkeys(USAGE_FIELDS, 0)
    for interaction in run.interactions.order_by("sequence").annotate(counted=Count("steps")):
        interactions.append((interaction.sequence, interaction.counted, position))
        position += interaction.counted
        for field in USAGE_FIELDS:
            usage[field] += whole_tokens((interaction.usage or {}).get(field))
    return {"interaction_count": len(interactions), "step_count": position, "usage": usage,
            "interactions": interactions}


def kept(run: Run) -> dict:
    """The counts the run and its interactions hold."""
    run.refresh_from_db()
    interactions = list(run.interactions.order_by("sequence").values_list("sequence", "step_count", "first_step"))
    return {"interaction_count": run.interaction_count, "step_count": run.step_count,
            "usage": dict.fromkeys(USAGE_FIELDS, 0) | (run.usage or {}), "interactions": interactions}


def fill_counts() -> None:
    MIGRATION.fill_counts(apps, SimpleNamespace(connection=connection))


def new_run(**fields) -> tuple[Run, Interaction]:
    """A run and its first interaction as ``execution.create_run`` writes them, without sending."""
    run = Run.objects.create(model=MODEL, input="hi", status=Run.Status.RUNNING, interaction_count=1, step_count=0,
                             **fields)
    interaction = Interaction.objects.create(run=run, sequence=0, request={"model": MODEL, "input": "hi"},
                                             dispatch=Interaction.Dispatch.SENDING)
    return run, interaction


def answer(interaction_id: str, status: str, steps: list[dict], **fields) -> gemini.Response:
    return gemini.parse(json.dumps({"id": interaction_id, "status": status, "steps": steps, **fields}))


# --- Kept as recorded ----------------------------------------------------------------------------


def test_a_recorded_answer_counts_its_steps_and_usage(db):
    run, interaction = new_run()
    usage = {"total_input_tokens": 12, "total_output_tokens": 30, "total_thought_tokens": 5, "total_tokens": 47}
    execution.record(interaction, answer("v1_count1", "completed", [text_output("a"), text_output("b")], usage=usage))

    assert kept(run) == recount(run)
    assert kept(run)["step_count"] == 2 and kept(run)["usage"]["total_output_tokens"] == 30


def test_a_duplicate_poll_that_records_nothing_new_changes_no_count(db):
    run, interaction = new_run(background=True)
    usage = {"total_input_tokens": 10, "total_tokens": 10}
    execution.record(interaction, answer("v1_count2", "in_progress", [text_output("a")], usage=usage))
    before = kept(run)

    execution.record(interaction, answer("v1_count2", "in_progress", [text_output("a")], usage=usage))

    assert kept(run) == before == recount(run)


def test_polls_of_a_background_interaction_add_their_new_steps_and_replace_its_usage(db):
    run, interaction = new_run(background=True)
    execution.record(interaction, answer("v1_count3", "in_progress", [text_output("a")],
                                         usage={"total_input_tokens": 10, "total_tokens": 10}))
    execution.record(interaction, answer("v1_count3", "in_progress", [text_output("a"), text_output("b")],
                                         usage={"total_input_tokens": 10, "total_output_tokens": 4, "total_tokens": 14}))
    execution.record(interaction, answer("v1_count3", "completed", [text_output("a"), text_output("b"), text_output("c")],
                                         usage={"total_input_tokens": 10, "total_output_tokens": 9, "total_tokens": 19}))
    # A stable interaction is recorded once: a late duplicate changes nothing.
    execution.record(interaction, answer("v1_count3", "completed", [text_output("x")] * 5,
                                         usage={"total_input_tokens": 99, "total_tokens": 99}))

    assert kept(run) == recount(run)
    assert kept(run)["step_count"] == 3 and kept(run)["usage"]["total_tokens"] == 19


def test_a_continuation_starts_where_the_interaction_before_it_ended(db):
    run, interaction = new_run()
    execution.record(interaction, answer("v1_count4", "requires_continuation", [text_output(f"part {i}") for i in range(7)],
                                         continuation_token="token-1", usage={"total_output_tokens": 70, "total_tokens": 70}))
    follow_up = run.interactions.get(sequence=1)
    assert follow_up.first_step == 7 and follow_up.request["continuation_token"] == "token-1"

    Interaction.objects.filter(pk=follow_up.pk).update(dispatch=Interaction.Dispatch.SENDING)
    execution.record(follow_up, answer("v1_count5", "completed", [text_output("rest"), text_output("end")],
                                       usage={"total_output_tokens": 20, "total_tokens": 20}))

    assert kept(run) == recount(run)
    assert kept(run)["interactions"] == [(0, 7, 0), (1, 2, 7)]
    assert kept(run)["usage"]["total_tokens"] == 90


def test_steps_arriving_late_on_an_interaction_move_the_ones_after_it(db):
    # Not a path the API takes (a follow-up exists once its predecessor is stable), but the
    # positions stay right if one ever did.
    run, interaction = new_run()
    execution.record(interaction, answer("v1_count6", "requires_continuation", [text_output("a")], continuation_token="t"))
    Interaction.objects.filter(run=run, sequence=1).update(dispatch=Interaction.Dispatch.SENDING)
    execution.record(interaction, answer("v1_count6", "requires_continuation", [text_output("a"), text_output("b")],
                                         continuation_token="t"))

    assert kept(run) == recount(run)
    assert kept(run)["interactions"] == [(0, 2, 0), (1, 0, 2)]


def test_parallel_function_calls_follow_ups_and_a_continued_run_keep_their_counts(worker, api, alice, bob):
    run = execution.create_run(model=MODEL, tools=tools.declarations(["lookup_order", "issue_refund"]),
                               input=parallel_refunds_input(["D-101", "D-102", "D-103"], first_total=250), created_by=bob)
    wait_for(lambda: Approval.objects.filter(run=run, status=Approval.Status.PENDING).count() == 3)
    assert run.interactions.count() == 1  # three refunds asked for at once
    for refund in Approval.objects.filter(run=run, status=Approval.Status.PENDING):
        assert refund.approve(by=alice, shown_hash=refund.arguments_hash)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).exists())
    assert kept(run) == recount(run)

    execution.continue_run(run.pk, text="Thanks! And A-1003?", by=bob)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=Run.FINAL_STATUSES + (Run.Status.WAITING_FOR_APPROVAL,)).exists())

    counts = kept(run)
    assert counts == recount(run)
    assert counts["interaction_count"] >= 4 and counts["step_count"] > 4
    assert counts["usage"]["total_tokens"] > 0


# --- The data migration --------------------------------------------------------------------------


def test_the_data_migration_fills_the_counts_of_existing_runs(db):
    long = make_run()
    for sequence, size in enumerate([3, 0, 5, 2]):
        interaction = make_interaction(long, sequence=sequence, usage={
            "total_input_tokens": 10 * (sequence + 1), "total_output_tokens": "7", "total_thought_tokens": 2.5,
            "total_cached_tokens": True, "total_tokens": 10 * (sequence + 1) + 7,
        })
        make_steps(interaction, [text_output(f"s{i}") for i in range(size)])
    empty = make_run()
    unanswered = make_run(status=Run.Status.RUNNING)
    make_interaction(unanswered, status="", usage=None)
    # As the migration finds older rows: the columns just added, at their defaults.
    Interaction.objects.update(step_count=0, first_step=0)
    Run.objects.update(interaction_count=0, step_count=0, usage={})

    fill_counts()

    for run in (long, empty, unanswered):
        assert kept(run) == recount(run)
    assert kept(long)["interactions"] == [(0, 3, 0), (1, 0, 3), (2, 5, 3), (3, 2, 8)]
    assert kept(long)["usage"] == {"total_input_tokens": 100, "total_output_tokens": 28, "total_thought_tokens": 0,
                                   "total_cached_tokens": 0, "total_tool_use_tokens": 0, "total_tokens": 128}
    assert (kept(empty)["interaction_count"], kept(empty)["step_count"]) == (0, 0)
    assert kept(unanswered)["interaction_count"] == 1


def test_the_factories_keep_the_counts_as_recording_does(db):
    run = make_run()
    first = make_interaction(run, usage={"total_input_tokens": 5, "total_tokens": 5})
    make_step(first, text_output("a"))
    second = make_interaction(run, status=Interaction.Status.IN_PROGRESS,
                              usage={"total_output_tokens": 3, "total_tokens": 3})
    make_steps(second, [text_output("b"), text_output("c")])
    make_step(first, text_output("late"))  # moves the interaction after it

    assert kept(run) == recount(run)
    assert kept(run)["interactions"] == [(0, 2, 0), (1, 2, 2)]
    # Only a stable interaction's usage reaches total_tokens, as runs.execution records it.
    assert run.total_tokens == 5 and Run.objects.get(pk=run.pk).total_tokens == 5


# --- The page reads them -------------------------------------------------------------------------


def mixed_run() -> Run:
    """A finished run of 47 interactions and 949 steps: long and short ones, step-less ones
    (one never sent, one whose answer never came), usage on some, artifacts on a few. A text
    step says ``{sequence}:{index}``, a function call's id is ``c{sequence}-{index}``."""
    started = timezone.now() - timedelta(days=3)
    run = make_run(created_at=started, finished_at=started + timedelta(minutes=20))
    sizes = [130, 0, 1, 250, 0, 0, 2, 7] + [3] * 30 + [40, 0, 1, 1, 300, 0, 5, 2, 120]
    for sequence, size in enumerate(sizes):
        sent = started + timedelta(seconds=10 * sequence)
        fields = {"sent_at": sent, "finished_at": sent + timedelta(milliseconds=100 + (sequence * 7919) % 5000)}
        if sequence == 5:
            fields = {"sent_at": None, "finished_at": None, "dispatch": Interaction.Dispatch.ERROR}
        elif sequence == 41:
            fields["finished_at"] = None
        usage = {"total_input_tokens": 100 + sequence, "total_output_tokens": 40, "total_tokens": 140 + sequence} if sequence % 3 else None
        interaction = make_interaction(run, sequence=sequence, usage=usage,
                                       request={"model": run.model, "input": f"INPUT {sequence}"}, **fields)
        if sequence % 10 == 0:
            make_artifact(interaction)
        make_steps(interaction, [function_call("lookup_order", call_id=f"c{sequence}-{i}") if i % 9 == 4
                                 else text_output(f"{sequence}:{i}") for i in range(size)])
    return run


CSRF = re.compile(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+')
# What a timeline shows, in page order: an interaction's card, or a numbered step and what it says.
SHOWN = re.compile(r'<li id="interaction-(\d+)" class="interaction"'
                   r'|<summary>Step (\d+) · JSON</summary><pre class="json">[^<]*?&quot;(c?\d+[:-]\d+)&quot;', re.S)
NEXT_CHUNK = re.compile(r'hx-get="[^"?]*\?from=(\d+)&amp;i=(\d+)"')


def fetch(client, run: Run, target: str = "", **params) -> str:
    headers = {"HX-Request": "true", "HX-Target": target} if target else {}
    response = client.get(run.get_absolute_url(), params, headers=headers)
    assert response.status_code == 200
    return CSRF.sub(r"\1…", response.content.decode())


def shown(body: str) -> list[tuple]:
    return [("card", int(card)) if card else ("step", int(number), said) for card, number, said in SHOWN.findall(body)]


def timeline(run: Run) -> tuple[list[tuple], dict[int, int]]:
    """The timeline as the rows say it is, counted here from the rows themselves (not from the
    counts the run keeps): each interaction's card, then its steps, numbered from 1 across the
    run; and the position where each interaction's steps begin (its pk → steps before it)."""
    steps: dict[int, list[dict]] = {}
    rows = Step.objects.filter(interaction__run=run).order_by("index").values_list("interaction", "data")
    for interaction_pk, data in rows:
        steps.setdefault(interaction_pk, []).append(data)
    events, starts, number = [], {}, 0
    for pk in run.interactions.order_by("sequence").values_list("pk", flat=True):
        starts[pk] = number
        events.append(("card", pk))
        for data in steps.get(pk, []):
            number += 1
            events.append(("step", number, data.get("id") or data["content"][0]["text"]))
    return events, starts


def read_from(client, run: Run, first: int) -> tuple[str, list[tuple]]:
    """The page opened at step ``first`` and everything its "Load more" chunks add, in order."""
    body = chunk = fetch(client, run, **{"from": first})
    events = shown(body)
    while found := NEXT_CHUNK.findall(chunk):
        (start, sequence), = found
        chunk = fetch(client, run, "timeline-more", **{"from": start, "i": sequence})
        events += shown(chunk)
    return body, events


def test_the_page_shows_every_step_and_card_in_order_from_wherever_it_opens(client, alice):
    run = mixed_run()
    events, starts = timeline(run)
    total = sum(1 for event in events if event[0] == "step")
    assert total == Step.objects.filter(interaction__run=run).count() == 949
    assert [event[1] for event in events if event[0] == "step"] == list(range(1, total + 1))
    client.force_login(alice)

    for first in (0, 99, 100, 130, 131, 380, 381, 500, 700, 900, 948, 949, 5000):
        body, read = read_from(client, run, first)
        # A page past the end opens at the last chunk.
        start = first if first < total else (total - 1) // 100 * 100
        begins = next(i for i, event in enumerate(events) if (event[0] == "card" and starts[event[1]] >= start)
                      or (event[0] == "step" and event[1] > start))
        assert read == events[begins:], first
        inside = [pk for pk, at in starts.items() if at < start < at + run.interactions.get(pk=pk).steps.count()]
        if inside:
            assert f"continued: its steps {starts[inside[0]] + 1}–{start} are earlier" in body, first
        else:
            assert "continued: its steps" not in body, first


def test_the_header_and_a_card_show_what_the_rows_hold(client, alice):
    run = mixed_run()
    client.force_login(alice)
    usage = dict.fromkeys(USAGE_FIELDS, 0)
    for used in run.interactions.exclude(usage=None).values_list("usage", flat=True):
        for field in USAGE_FIELDS:
            usage[field] += used.get(field, 0)

    header = fetch(client, run, "run-header")

    steps, interactions = Step.objects.filter(interaction__run=run).count(), run.interactions.count()
    assert f"<dt>Steps</dt><dd>{steps}</dd>" in header and f"<dt>Interactions</dt><dd>{interactions}</dd>" in header
    assert f'<dd class="cost">{usd(costs.estimate_usd(run.model, usage))}</dd>' in header
    assert f"the 40 slowest of {interactions} interactions" in fetch(client, run)
    card = run.interactions.get(sequence=41)
    assert shown(fetch(client, run, f"interaction-{card.pk}")) == [("card", card.pk)]
    assert shown(fetch(client, run, "timeline-tail", **{"from": steps, "i": interactions})) == []


def test_a_recorded_run_shows_its_kept_counts(client, alice):
    run, interaction = new_run()
    execution.record(interaction, answer("v1_count7", "completed", [text_output(f"line {i}") for i in range(150)],
                                         usage={"total_input_tokens": 1000, "total_output_tokens": 500, "total_tokens": 1500}))
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        body = fetch(client, run)
    assert not [q["sql"] for q in queries if 'COUNT(' in q["sql"].upper() and "runs_step" in q["sql"]]
    assert "<dt>Steps</dt><dd>150</dd>" in body and "<dt>Interactions</dt><dd>1</dd>" in body
    assert "<p>line 99</p>" in body and "<p>line 100</p>" not in body
    more = fetch(client, run, "timeline-more", **{"from": 100, "i": 1})
    assert "<p>line 100</p>" in more and "<p>line 149</p>" in more and "<p>line 99</p>" not in more


def test_the_page_reads_as_many_rows_whatever_the_size_of_the_run(client, alice):
    def build(interactions: int, steps: int) -> Run:
        run = make_run()
        for sequence in range(interactions):
            interaction = make_interaction(run, sequence=sequence, usage={"total_input_tokens": 10, "total_tokens": 10})
            make_steps(interaction, [text_output("x")] * steps)
        return run

    def count_queries(run: Run, target: str = "", **params) -> int:
        with CaptureQueriesContext(connection) as queries:
            fetch(client, run, target, **params)
        return len(queries)

    client.force_login(alice)
    small, many, long = build(3, 2), build(150, 2), build(2, 400)
    pages = {count_queries(run, **{"from": first}) for run in (small, many, long) for first in (0, 150)}
    assert len(pages) == 1
    chunks = [count_queries(run, "timeline-more", **{"from": 100, "i": 1}) for run in (many, long)]
    assert max(chunks) < pages.pop()
