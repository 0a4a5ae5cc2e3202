"""``runs.timeline`` called directly: a chunk's rows and their approvals, a card, the header (the
run page's tests, test_run_detail.py, cover the same through the HTML)."""

from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Approval
from runs import timeline
from runs.models import Interaction, Run
from tests.conftest import make_user
from tests.factories import function_call, make_approval, make_interaction, make_run, make_steps, text_output


def step_rows(chunk) -> list:
    return [row["step"] for row in chunk["rows"] if row["kind"] == "step"]


def test_a_chunk_numbers_its_steps_from_one_and_puts_each_card_before_its_steps(db):
    run = make_run()
    first = make_interaction(run, sequence=0)
    make_steps(first, [text_output("a"), text_output("b")])
    second = make_interaction(run, sequence=1)
    make_steps(second, [text_output("c")])
    run.refresh_from_db()

    chunk = timeline.chunk(run, 0)
    assert [row["kind"] for row in chunk["rows"]] == ["interaction", "step", "step", "interaction", "step"]
    assert [row["interaction"] for row in chunk["rows"] if row["kind"] == "interaction"] == [first, second]
    assert [step.number for step in step_rows(chunk)] == [1, 2, 3]
    assert chunk["next_from"] == 3 and chunk["next_sequence"] == 2
    assert not chunk["more"] and not chunk["tail"]


def test_function_calls_carry_their_approval_and_only_a_pending_one_stays_out_of_a_group(db, alice):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    steps = make_steps(interaction, [function_call("lookup_order", call_id=f"c{i}") for i in range(8)])
    approvals = [make_approval(interaction, step, status=Approval.Status.APPROVED, decided_by=alice)
                 for step in steps[:7]]
    approvals[3].status = Approval.Status.PENDING
    approvals[3].decided_by = None
    approvals[3].save()
    run.refresh_from_db()

    rows = timeline.chunk(run, 0)["rows"][1:]  # after the card
    # Calls 1-3 are too few to fold; call 4 waits for a person; calls 5-8 are four.
    assert [row["kind"] for row in rows] == ["step"] * 8
    calls = [row["step"] for row in rows]
    assert [call.approval for call in calls] == [*approvals, None]
    assert calls[3].approval.is_pending

    Approval.objects.filter(pk=approvals[3].pk).update(status=Approval.Status.APPROVED, decided_by=alice)
    [card, group] = timeline.chunk(run, 0)["rows"]
    assert group["kind"] == "group" and group["label"] == "8 × function_call · lookup_order"


def test_similar_steps_fold_into_a_group_from_six_on(db):
    run = make_run()
    make_steps(make_interaction(run), [
        *[{"type": "google_search_call", "id": f"s{i}", "arguments": {"queries": ["q"]}} for i in range(6)],
        text_output("answer"),
    ])
    run.refresh_from_db()
    group, answer = timeline.chunk(run, 0)["rows"][1:]
    assert group["kind"] == "group" and group["label"] == "6 × google_search_call"
    assert (group["first"], group["last"]) == (1, 6)
    assert answer["kind"] == "step" and answer["step"].number == 7


def test_a_chunk_past_the_end_opens_the_last_chunk_and_an_appended_one_is_empty(db):
    run = make_run()
    make_steps(make_interaction(run), [text_output(f"t{i}") for i in range(timeline.STEPS_PER_CHUNK + 5)])
    run.refresh_from_db()
    last = timeline.chunk(run, 10_000)
    assert last["first"] == timeline.STEPS_PER_CHUNK
    assert [step.number for step in step_rows(last)] == list(range(101, 106))
    appended = timeline.chunk(run, 10_000, next_sequence=1)
    assert appended["rows"] == [] and not appended["more"]


def test_the_tail_of_an_active_run_polls(db):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, status=Interaction.Status.IN_PROGRESS, finished_at=None)
    run.refresh_from_db()
    chunk = timeline.chunk(run, 0)
    assert chunk["tail"] and not chunk["more"]


def test_a_chunk_reads_the_same_number_of_queries_for_few_and_many_steps(db, alice):
    def build(n: int) -> Run:
        run = make_run()
        for sequence in range(2):
            interaction = make_interaction(run, sequence=sequence)
            steps = make_steps(interaction, [function_call(call_id=f"c{sequence}-{i}") for i in range(n)])
            for step in steps:
                make_approval(interaction, step, status=Approval.Status.APPROVED, decided_by=alice)
        run.refresh_from_db()
        return run

    def queries(run: Run) -> int:
        with CaptureQueriesContext(connection) as captured:
            timeline.chunk(run, 0)
        return len(captured)

    assert queries(build(3)) == queries(build(300)) <= 7


def test_a_card_is_an_interaction_of_that_run_only(db):
    run, other = make_run(), make_run()
    interaction = make_interaction(run, usage={"total_input_tokens": 1_000_000, "total_tokens": 1_000_000})
    card = timeline.card(run, interaction.pk)
    assert card == interaction and card.artifact_list == [] and card.cost == Decimal("0.3")
    assert timeline.card(other, interaction.pk) is None


def test_the_header_reads_the_kept_counts_and_prices_the_summed_usage(db):
    run = make_run(model="gemini-2.5-flash")
    start = run.created_at
    for sequence in range(2):
        make_interaction(run, sequence=sequence, usage={"total_input_tokens": 1_000_000, "total_tokens": 1_000_000},
                         sent_at=start + timedelta(seconds=sequence), finished_at=start + timedelta(seconds=sequence + 1))
    run.refresh_from_db()
    header = timeline.header(run)
    assert header["interaction_count"] == 2 and header["total_steps"] == 0
    assert header["run_cost"] == Decimal("0.6")  # 2M input tokens at $0.30 per 1M
    assert len(header["timing"]["bars"]) == 2 and header["timing"]["api_ms"] == 2000


def test_a_run_without_usage_has_no_cost_and_no_bars(db):
    run = make_run(finished_at=None, duration_ms=1500)
    assert timeline.header(run) == {"interaction_count": 0, "total_steps": 0, "run_cost": None,
                                    "timing": {"bars": [], "hidden": 0, "waits": [], "api_ms": 0, "waiting_ms": 0,
                                               "waiting_now": False, "wall_ms": 1500, "other_ms": 1500},
                                    "output_blocks": []}


def test_api_time_and_waiting_for_people_are_apart_and_add_up_to_the_wall_time(db):
    """A run that waited 10 minutes for a person: the API's bars are on the scale of the longest
    interaction (not of the run's 10 minutes), the wait has its own, and wall time = API time +
    waiting + Handoff's own."""
    start = timezone.now() - timedelta(minutes=11)
    run = make_run(created_at=start, finished_at=start + timedelta(minutes=10, seconds=10),
                   duration_ms=(10 * 60 + 10) * 1000)
    first = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION,
                             sent_at=start + timedelta(seconds=1), finished_at=start + timedelta(seconds=3))
    calls = make_steps(first, [function_call(call_id="a"), function_call(name="send_email", call_id="b"),
                               function_call(name="lookup_order", call_id="c")])
    opened = start + timedelta(seconds=3)
    # Two calls held side by side, decided 9 and 10 minutes later: one wait of 10 minutes.
    make_approval(first, calls[0], status=Approval.Status.APPROVED, created_at=opened,
                  decided_at=opened + timedelta(minutes=9), decided_by=make_user("dora", "reviewers"))
    make_approval(first, calls[1], status=Approval.Status.EXPIRED, created_at=opened,
                  decided_at=opened + timedelta(minutes=10))
    make_approval(first, calls[2], status=Approval.Status.AUTO, created_at=opened)  # run at once: no wait
    make_interaction(run, sent_at=opened + timedelta(minutes=10, seconds=1),
                     finished_at=opened + timedelta(minutes=10, seconds=5))
    run.refresh_from_db()

    with CaptureQueriesContext(connection) as captured:
        timing = timeline.timing(run)
    assert len(captured) == 4
    assert [bar["duration_ms"] for bar in timing["bars"]] == [2000, 4000]
    assert [bar["width"] for bar in timing["bars"]] == ["50.000", "100.000"]
    assert timing["api_ms"] == 6000
    [wait] = timing["waits"]
    assert (wait["interaction_pk"], wait["sequence"], wait["calls"]) == (first.pk, 0, 2)
    assert wait["function_name"] == "issue_refund …" and wait["width"] == "100.000"
    assert wait["wait_ms"] == timing["waiting_ms"] == 10 * 60 * 1000 and not wait["waiting"]
    assert timing["wall_ms"] == 610_000 and timing["other_ms"] == 610_000 - 6000 - 600_000


def test_a_pending_call_waits_until_now_while_the_run_is_active(db):
    start = timezone.now() - timedelta(minutes=5)
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL, created_at=start)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION,
                                   sent_at=start, finished_at=start + timedelta(seconds=2))
    [call] = make_steps(interaction, [function_call()])
    make_approval(interaction, call, created_at=start + timedelta(seconds=2))
    run.refresh_from_db()

    timing = timeline.timing(run)
    [wait] = timing["waits"]
    assert wait["waiting"] and timing["waiting_now"] and wait["decided"] is None
    assert 4 * 60 * 1000 < timing["waiting_ms"] < 6 * 60 * 1000
    assert timing["api_ms"] == 2000
