"""The run list's query shapes (``id = ANY(<pending approvals' runs>)``, the creator looked up as a
value, the page chosen by id) return the rows a plain ORM query returns, in the same order, on
every page, for every filter and sort."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from approvals.models import Approval
from runs.forms import RunFilterForm
from runs.models import SORT_KEYS, Cursor, Run
from runs.views import PAGE_SIZE
from tests.factories import make_approval, make_interaction, make_run, make_step, function_call

URL = "/runs/"
STATUSES = [value for value, _ in Run.Status.choices]
# The seeded runs start within the last 80 minutes: today's, or also yesterday's after midnight.
TODAY = timezone.localdate().isoformat()


@pytest.fixture
def seeded(alice, bob):
    """A few hundred runs whose sort keys tie in threes, spread over the filters' values, with
    pending approvals on runs of every status (and decided ones that must not count)."""
    now = timezone.now()
    runs = []
    for i in range(230):
        status = STATUSES[i % len(STATUSES)]
        runs.append(make_run(
            status=status, agent="triage" if i % 4 == 0 else "", model="gemini-2.5-pro" if i % 5 else "gemini-3-pro",
            input=f"refund order {i}" if i % 3 else f"where is parcel {i}",
            created_at=now - timedelta(minutes=i // 3), total_tokens=100 * (i % 7),
            duration_ms=None if status in Run.ACTIVE_STATUSES else 1000 * (i % 5),
            tool_names=",lookup_order,issue_refund," if i % 2 else ",send_email,",
            created_by=(alice, bob, None)[i % 3],
        ))
    for n, run in enumerate(runs[::3]):
        interaction = make_interaction(run)
        step = make_step(interaction, function_call(call_id=f"call_{run.pk}"))
        make_approval(interaction, step, status=Approval.Status.PENDING if n % 4 else Approval.Status.AUTO)
    return runs


def reference(params: dict, sort: str) -> list[Run]:
    """The list as a plain ORM query over the same filters: joins and ``Exists``."""
    runs = Run.objects.all()
    for name in ("status", "model", "agent"):
        if name in params:
            runs = runs.filter(**{name: params[name]})
    if "tool" in params:
        runs = runs.filter(tool_names__contains=f",{params['tool']},")
    if "by" in params:
        runs = runs.filter(created_by__username=params["by"])
    if "pending" in params:
        runs = runs.filter(approvals__status=Approval.Status.PENDING).distinct()
    if "q" in params:
        runs = runs.search(params["q"])
    if "from" in params:
        runs = runs.filter(created_at__date__gte=params["from"])
    if "to" in params:
        runs = runs.filter(created_at__date__lte=params["to"])
    if sort == "duration":
        runs = runs.filter(duration_ms__isnull=False)
    key = SORT_KEYS[sort]
    return list(runs.order_by(f"-{key}", "-pk"))


FILTERS = [
    {},
    *({"status": status} for status in STATUSES),
    {"pending": "1"},
    {"model": "gemini-3-pro"},
    {"agent": "triage"},
    {"tool": "send_email"},
    {"by": "bob"},
    {"by": "nobody"},
    {"q": "parcel"},
    {"pending": "1", "status": "failed", "by": "alice"},
    {"from": TODAY, "to": TODAY},
    {"from": TODAY, "status": "completed"},
]


@pytest.mark.parametrize("sort", list(RunFilterForm.SORTS))
@pytest.mark.parametrize("params", FILTERS, ids=lambda params: urlencode(params) or "no-filter")
def test_every_page_forward_and_back_holds_the_reference_rows_in_order(client, alice, seeded, params, sort):
    expected = reference(params, sort)
    query = {**params, "sort": sort}
    client.force_login(alice)

    pages, response = [], client.get(URL, query)
    while True:
        assert response.status_code == 200
        pages.append(list(response.context["runs"]))
        if not response.context["next_url"]:
            break
        last = response
        response = client.get(URL + response.context["next_url"])
    assert [run for page in pages for run in page] == expected
    assert all(len(page) == PAGE_SIZE for page in pages[:-1])

    if len(pages) > 1:
        # Back from the last page, through the cursors of the previous-page links.
        back = client.get(URL + response.context["previous_url"])
        assert list(back.context["runs"]) == pages[-2]
        assert last.context["runs"] and list(last.context["runs"]) == pages[-2]


def test_pending_counts_only_runs_with_a_pending_approval(client, alice, seeded):
    client.force_login(alice)
    listed = client.get(URL, {"pending": "1"}).context["runs"]
    pending = set(Approval.objects.filter(status=Approval.Status.PENDING).values_list("run_id", flat=True))
    assert listed and {run.pk for run in listed} <= pending
    assert all(run.pending_approvals == 1 for run in listed)
    assert not any(run.pk not in pending for run in listed)


def walk(form_params: dict, sort: str, few: bool, dated: bool = False) -> list[list[Run]]:
    """Every page of the list through ``RunQuerySet.page``'s cursors (written out and read back,
    as the links carry them), with the given query shape."""
    form = RunFilterForm({**form_params, "sort": sort})
    assert form.is_valid(), form.errors
    pages, after = [], None
    while True:
        page = Run.objects.filtered(**form.filters()).page(sort=sort, after=after, size=PAGE_SIZE, few=few, dated=dated)
        pages.append(page.runs)
        if not page.has_next:
            return pages
        after = Cursor.parse(str(page.next_cursor), sort)


@pytest.mark.parametrize("sort", list(RunFilterForm.SORTS))
@pytest.mark.parametrize("params", [{"q": "parcel"}, {"q": "refund"}, {}, {"status": "completed"}],
                         ids=lambda params: urlencode(params) or "no-filter")
def test_the_shape_for_few_runs_pages_exactly_like_the_indexed_one(seeded, params, sort):
    """``few=True`` (sort keys no index can serve) against the indexed order, page by page,
    ties in threes included."""
    indexed, unindexed = walk(params, sort, few=False), walk(params, sort, few=True)

    assert unindexed == indexed
    assert len(indexed) > 1 or params  # the whole list has several pages
    assert [run for page in indexed for run in page] == reference(params, sort)


@pytest.mark.parametrize("sort", list(RunFilterForm.SORTS))
def test_the_shape_for_a_date_range_pages_exactly_like_the_plain_one(seeded, sort):
    """``dated=True`` (the page's ids chosen in a subquery) against the plain query, page by
    page, ties in threes included."""
    params = {"from": TODAY, "to": TODAY}
    plain, dated = walk(params, sort, few=False), walk(params, sort, few=False, dated=True)

    assert dated == plain and len(plain) > 1
    assert [run for page in dated for run in page] == reference(params, sort)


def test_a_date_range_sorted_by_tokens_chooses_its_page_by_id(client, alice, seeded):
    from django.db import connection

    client.force_login(alice)
    statements: list[str] = []
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        response = client.get(URL, {"from": TODAY, "sort": "tokens"})
        client.get(URL, {"sort": "tokens"})
    dated, plain = [sql for sql in statements if 'FROM "runs_run"' in sql and "ORDER BY" in sql]
    assert response.status_code == 200 and len(response.context["runs"]) == PAGE_SIZE
    assert dated.count('FROM "runs_run"') == 2 and ' IN (SELECT ' in dated
    assert plain.count('FROM "runs_run"') == 1


def test_a_word_the_statistics_do_not_list_as_common_is_read_from_the_search_index(client, alice, seeded):
    from django.db import connection

    from runs.models import search_is_selective

    assert not search_is_selective("refund")  # no statistics yet: the planner's own choice
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")

    # Written after ANALYZE, so its word is in no statistics: rarer than any they list.
    make_run(input="refund order 9999, the zebra-print case", total_tokens=5)

    assert search_is_selective("zebra") and not search_is_selective("refund")
    client.force_login(alice)
    statements: list[str] = []
    # Not CaptureQueriesContext: a request resets Django's query log as it starts.
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        rare = client.get(URL, {"q": "zebra", "sort": "tokens"})
    common = client.get(URL, {"q": "refund", "sort": "tokens"})
    listed = [sql for sql in statements if 'FROM "runs_run"' in sql and "ORDER BY" in sql]
    assert [run.input_text for run in rare.context["runs"]] == ["refund order 9999, the zebra-print case"]
    assert listed and "COALESCE" in listed[-1]
    assert len(common.context["runs"]) == PAGE_SIZE
