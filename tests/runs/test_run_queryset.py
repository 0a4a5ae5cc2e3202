"""``Run.objects.filtered(...)``, ``RunQuerySet.page(...)`` and ``Cursor``, called directly (the
list's view tests reach them through the page, test_run_list_plans.py pins their SQL shapes)."""

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import EPOCH, Cursor, Run
from tests.factories import make_pending_approval, make_run


def on(day: int, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime(2026, 3, day, hour, 30))


# --- filtered -----------------------------------------------------------------------------------


def test_filtered_with_no_filter_is_every_run(db):
    runs = {make_run(), make_run(status=Run.Status.FAILED)}
    assert set(Run.objects.filtered()) == runs


@pytest.mark.parametrize("name, value, field", [
    ("status", "failed", {"status": Run.Status.FAILED}),
    ("model", "gemini-2.5-pro", {"model": "gemini-2.5-pro"}),
    ("agent", "deep-research", {"agent": "deep-research"}),
])
def test_filtered_keeps_runs_equal_to_the_value(db, name, value, field):
    match = make_run(**field)
    make_run(status=Run.Status.COMPLETED, model="gemini-2.5-flash")
    assert list(Run.objects.filtered(**{name: value})) == [match]


def test_filtered_by_tool_matches_whole_names(db):
    refund = make_run(tool_names=",lookup_order,issue_refund,")
    make_run(tool_names=",lookup_order_v2,")
    assert list(Run.objects.filtered(tool="issue_refund")) == [refund]
    assert list(Run.objects.filtered(tool="lookup")) == []


def test_filtered_by_username_of_who_started(db, alice, bob):
    mine = make_run(created_by=bob)
    make_run(created_by=alice)
    make_run()
    assert list(Run.objects.filtered(by="bob")) == [mine]
    assert list(Run.objects.filtered(by="nobody")) == []


def test_filtered_pending_reads_the_kept_count(db):
    waiting = make_pending_approval().run
    make_run()
    assert list(Run.objects.filtered(pending=True)) == [waiting]


def test_filtered_by_days_includes_both_ends_in_local_time(db):
    before, first, last, after = make_run(created_at=on(9, 23)), make_run(created_at=on(10, 0)), \
        make_run(created_at=on(12, 23)), make_run(created_at=on(13, 0))
    assert set(Run.objects.filtered(since=date(2026, 3, 10), until=date(2026, 3, 12))) == {first, last}
    assert set(Run.objects.filtered(since=date(2026, 3, 10))) == {first, last, after}
    assert set(Run.objects.filtered(until=date(2026, 3, 9))) == {before}


def test_filtered_by_text_searches_inputs_and_output(db):
    asked = make_run(input="refund for order A-1003")
    answered = make_run(input="weather", output_text="no refund needed")
    make_run(input="unrelated")
    assert set(Run.objects.filtered(text="refund")) == {asked, answered}


def test_filtered_combines_its_filters(db, bob):
    match = make_run(status=Run.Status.FAILED, created_by=bob, input="refund failed")
    make_run(status=Run.Status.FAILED, input="refund failed")
    make_run(status=Run.Status.COMPLETED, created_by=bob, input="refund failed")
    assert list(Run.objects.filtered(status="failed", by="bob", text="refund")) == [match]


def test_filtered_runs_no_query_until_read(db):
    with CaptureQueriesContext(connection) as queries:
        runs = Run.objects.filtered(status="failed", by="bob", text="refund", pending=True)
    assert len(queries) == 0
    assert list(runs) == []


# --- page ---------------------------------------------------------------------------------------


@pytest.fixture
def seven(db):
    """Seven runs in list order (newest first; the middle three share their start time, so the
    newest id comes first among them), each with its own token count."""
    start = timezone.now() - timedelta(hours=1)
    minutes = [10, 9, 8, 8, 8, 2, 1]
    runs = [make_run(created_at=start + timedelta(minutes=m), total_tokens=t) for t, m in enumerate(minutes)]
    return sorted(runs, key=lambda run: (run.created_at, run.pk), reverse=True)


def test_the_first_page_opens_the_list_newest_first(seven):
    page = Run.objects.page(size=3)
    assert page.runs == seven[:3] and page.sort == "started"
    assert not page.has_previous and page.has_next
    assert page.previous_cursor is None
    assert page.next_cursor == Cursor(seven[2].created_at, seven[2].pk)


def test_after_and_before_walk_the_pages_through_ties(seven):
    first = Run.objects.page(size=3)
    second = Run.objects.page(size=3, after=first.next_cursor)
    last = Run.objects.page(size=3, after=second.next_cursor)
    # The page boundaries fall inside the three runs that tie on their start time.
    assert first.runs + second.runs + last.runs == seven
    assert first.runs[-1].created_at == second.runs[0].created_at
    assert second.has_previous and second.has_next
    assert len(last.runs) == 1 and last.has_previous and not last.has_next

    back = Run.objects.page(size=3, before=last.previous_cursor)
    assert back.runs == second.runs and back.has_previous and back.has_next
    assert Run.objects.page(size=3, before=back.previous_cursor).runs == first.runs
    assert not Run.objects.page(size=3, before=back.previous_cursor).has_previous


def test_a_page_is_one_query_and_loads_the_list_columns_only(seven):
    with CaptureQueriesContext(connection) as queries:
        page = Run.objects.filtered(status="completed").page(sort="tokens", size=3)
    assert len(queries) == 1
    assert page.runs[0].get_deferred_fields() >= {"input", "output_text", "tools", "system_instruction"}


def test_sorted_by_tokens_most_first(seven):
    assert Run.objects.page(sort="tokens", size=10).runs == sorted(seven, key=lambda run: -run.total_tokens)


def test_sorted_by_duration_lists_finished_runs_only(db):
    short, long = make_run(duration_ms=1_000), make_run(duration_ms=9_000)
    make_run(status=Run.Status.RUNNING)
    page = Run.objects.page(sort="duration", size=10)
    assert page.runs == [long, short] and not page.has_next


@pytest.mark.parametrize("few, dated", [(True, False), (False, True)])
@pytest.mark.parametrize("sort", ["started", "duration", "tokens"])
def test_the_shape_hints_return_the_same_pages(seven, sort, few, dated):
    def pages(**hints) -> list[list[Run]]:
        found, after = [], None
        while True:
            page = Run.objects.page(sort=sort, after=after, size=2, **hints)
            found.append(page.runs)
            if not page.has_next:
                return found
            after = page.next_cursor

    assert pages(few=few, dated=dated) == pages() and len(pages()) == 4


def test_an_empty_list_is_one_empty_page(db):
    page = Run.objects.page(size=3)
    assert page.runs == [] and not page.has_previous and not page.has_next
    assert page.next_cursor is None and page.previous_cursor is None


# --- Cursor -------------------------------------------------------------------------------------


def test_a_cursor_is_written_and_read_back_exactly(db):
    run = make_run(created_at=datetime(2026, 3, 10, 8, 0, 0, 123456, tzinfo=dt_timezone.utc), total_tokens=42)
    started = Cursor.of(run, "started")
    micros = (run.created_at - EPOCH) // timedelta(microseconds=1)
    assert str(started) == f"{micros}.{run.pk}"
    assert Cursor.parse(str(started), "started") == started
    assert str(Cursor.of(run, "tokens")) == f"42.{run.pk}"
    assert Cursor.parse(f"42.{run.pk}", "tokens") == Cursor(42, run.pk)


@pytest.mark.parametrize("value", ["", "12", "abc.def", "1.2.3", "1.-2", f"{10**18}.1", "-5"])
def test_a_malformed_cursor_reads_as_none(value):
    assert Cursor.parse(value, "tokens") is None
    assert Cursor.parse(value, "started") is None


def test_a_start_time_out_of_range_reads_as_none():
    assert Cursor.parse(f"{10**17 * 9}.1", "started") is None
    assert Cursor.parse(f"{10**17 * 9}.1", "tokens") == Cursor(10**17 * 9, 1)
