"""``runs.timeline`` called directly: a chunk's rows and their approvals, a card, the header (the
run page's tests, test_run_detail.py, cover the same through the HTML)."""

from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import Approval
from runs import timeline
from runs.models import Interaction, Run
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
    assert len(header["timing"]["bars"]) == 2 and header["timing"]["span_ms"] == 2000


def test_a_run_without_usage_has_no_cost_and_no_bars(db):
    run = make_run()
    assert timeline.header(run) == {"interaction_count": 0, "total_steps": 0, "run_cost": None,
                                    "timing": {"bars": [], "hidden": 0}, "output_blocks": []}
