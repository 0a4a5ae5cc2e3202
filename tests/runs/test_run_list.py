from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Run
from runs.views import PAGE_SIZE
from tests.conftest import make_user
from tests.factories import make_interaction, make_pending_approval, make_run

URL = "/runs/"


def listed(client, params=None, **headers) -> list[Run]:
    response = client.get(URL, params or {}, **headers)
    assert response.status_code == 200
    return list(response.context["runs"])


def walk(client, params: dict, direction: str = "next_url", start: str = "") -> list[list[Run]]:
    """Every page from ``start`` (a query string, or the first page), following ``direction``."""
    pages = []
    response = client.get(URL + start if start else URL, params if not start else None)
    while True:
        assert response.status_code == 200
        pages.append(list(response.context["runs"]))
        if not response.context[direction]:
            return pages
        response = client.get(URL + response.context[direction])


def test_it_lists_runs_newest_first(client, alice):
    old = make_run(input="older question", created_at=timezone.now() - timedelta(hours=2))
    new = make_run(input="newer question")
    client.force_login(alice)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index(f"#{new.pk}<") < body.index(f"#{old.pk}<")
    assert "newer question" in body
    assert '<html' in body


def test_it_shows_status_target_tokens_and_first_error_line(client, alice):
    make_run(status=Run.Status.FAILED, agent="deep-research-pro", total_tokens=12345,
             error="Quota exhausted\nTraceback (most recent call last): ...")
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert "pill-failed" in body
    assert "deep-research-pro" in body
    assert "12,345" in body
    assert "Quota exhausted" in body
    assert "Traceback" not in body.split("Quota exhausted")[1].split("</td>")[0]


def test_it_counts_pending_approvals_per_run(client, alice):
    approval = make_pending_approval()
    make_run()
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert 'title="1 pending approval"' in body
    assert approval.run.get_absolute_url() in body


def test_it_filters_by_status(client, alice):
    failed = make_run(status=Run.Status.FAILED, input="failed one")
    make_run(status=Run.Status.COMPLETED, input="completed one")
    client.force_login(alice)
    body = client.get(URL, {"status": "failed"}).content.decode()
    assert "failed one" in body
    assert "completed one" not in body
    assert f"#{failed.pk}<" in body


def test_an_unknown_status_answers_400_and_is_left_out(client, alice):
    make_run(input="any run")
    client.force_login(alice)
    response = client.get(URL, {"status": "exploded"})
    assert response.status_code == 400
    assert "any run" in response.content.decode()


def test_it_searches_input_and_output(client, alice):
    make_run(input="refund for order A-1003")
    make_run(input="weather in Paris", output_text="It is sunny, no refund needed")
    make_run(input="unrelated")
    client.force_login(alice)
    body = client.get(URL, {"q": "REFUND"}).content.decode()
    assert "refund for order A-1003" in body
    assert "weather in Paris" in body
    assert "unrelated" not in body


def test_it_pages_with_a_keyset_cursor(client, alice):
    start = timezone.now() - timedelta(days=1)
    runs = [make_run(input=f"run number {i}", created_at=start + timedelta(minutes=i)) for i in range(PAGE_SIZE + 5)]
    client.force_login(alice)

    first = client.get(URL)
    assert len(first.context["runs"]) == PAGE_SIZE
    assert first.context["runs"][0] == runs[-1]
    assert first.context["previous_url"] == ""
    micros = (runs[5].created_at - datetime(1970, 1, 1, tzinfo=dt_timezone.utc)) // timedelta(microseconds=1)
    assert first.context["next_url"] == f"?after={micros}.{runs[5].pk}"

    second = client.get(URL + first.context["next_url"])
    assert list(second.context["runs"]) == list(reversed(runs[:5]))
    assert second.context["next_url"] == ""
    assert second.context["previous_url"].startswith("?before=")

    back = client.get(URL + second.context["previous_url"])
    assert back.context["runs"] == first.context["runs"]
    assert back.context["previous_url"] == ""
    assert back.context["next_url"] == first.context["next_url"]


def test_the_cursor_breaks_ties_on_created_at_by_id(client, alice):
    same_time = timezone.now()
    runs = [make_run(created_at=same_time) for _ in range(PAGE_SIZE + 2)]
    client.force_login(alice)
    first = client.get(URL)
    second = client.get(URL + first.context["next_url"])
    seen = [r.pk for r in first.context["runs"]] + [r.pk for r in second.context["runs"]]
    assert sorted(seen) == sorted(r.pk for r in runs)
    assert len(set(seen)) == len(runs)


@pytest.mark.parametrize("sort, key", [("started", "created_at"), ("duration", "duration_ms"), ("tokens", "total_tokens")])
def test_pages_forward_and_back_hold_every_run_once_in_order_despite_ties(client, alice, sort, key):
    # Three values of each sort key across 2.5 pages of runs: most runs tie with many others.
    now = timezone.now()
    for i in range(PAGE_SIZE * 2 + PAGE_SIZE // 2):
        make_run(created_at=now - timedelta(minutes=i % 3), total_tokens=100 * (i % 3),
                 duration_ms=1000 * (i % 3))
    expected = sorted(Run.objects.all(), key=lambda run: (getattr(run, key), run.pk), reverse=True)
    client.force_login(alice)

    forward = walk(client, {"sort": sort})
    assert [len(page) for page in forward] == [PAGE_SIZE, PAGE_SIZE, PAGE_SIZE // 2]
    assert [run for page in forward for run in page] == expected

    last = client.get(URL, {"sort": sort})
    for _ in range(2):
        last = client.get(URL + last.context["next_url"])
    backward = walk(client, {}, "previous_url", start=last.context["previous_url"])
    assert backward == [forward[1], forward[0]]


def test_pagination_keeps_the_filters_and_the_sort(client, alice, bob):
    for _ in range(PAGE_SIZE + 1):
        make_run(status=Run.Status.FAILED, input="broken tool", agent="triage", total_tokens=5,
                 tool_names=",lookup_order,", created_by=bob)
    client.force_login(alice)
    params = {"status": "failed", "q": "broken", "agent": "triage", "tool": "lookup_order", "by": "bob",
              "from": "2000-01-01", "to": "2999-12-31", "sort": "tokens"}
    response = client.get(URL, params)
    assert len(response.context["runs"]) == PAGE_SIZE
    next_url = response.context["next_url"]
    assert next_url.startswith(
        "?q=broken&status=failed&agent=triage&tool=lookup_order&by=bob&sort=tokens&from=2000-01-01&to=2999-12-31&after="
    )
    assert len(client.get(URL + next_url).context["runs"]) == 1


def test_a_malformed_cursor_shows_the_first_page_and_says_so(client, alice):
    run = make_run(input="still listed")
    client.force_login(alice)
    for cursor in ("12", "abc.def", "1.2.3", f"{10**18}.{run.pk}", "-5"):
        response = client.get(URL, {"after": cursor})
        assert response.status_code == 200
        assert list(response.context["runs"]) == [run]
        assert "That page link is not valid" in response.content.decode()


def test_it_polls_while_a_run_on_the_page_is_active(client, alice):
    make_run(status=Run.Status.RUNNING)
    make_run(status=Run.Status.COMPLETED)
    client.force_login(alice)
    body = client.get(URL, {"status": "running"}).content.decode()
    assert 'hx-trigger="every 2s"' in body
    assert 'hx-get="/runs/?status=running"' in body


def test_it_stops_polling_when_every_run_is_finished(client, alice):
    make_run(status=Run.Status.COMPLETED)
    make_run(status=Run.Status.FAILED)
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert 'id="run-table"' in body
    assert "every 2s" not in body


def test_an_htmx_request_gets_only_the_table(client, alice):
    make_run(status=Run.Status.WAITING_FOR_APPROVAL, input="partial please")
    client.force_login(alice)
    response = client.get(URL, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="run-table"')
    assert "<html" not in body
    assert "partial please" in body
    assert "every 2s" in body
    assert "HX-Request" in response["Vary"]


def test_it_escapes_what_the_model_wrote(client, alice):
    make_run(input="<script>alert(1)</script>", status=Run.Status.FAILED, error="<img src=x onerror=alert(1)>")
    make_run(input='" onmouseover="alert(2)', agent="<b>agent</b>", model="")
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body
    # The input preview also fills a title attribute: a quote must not end it.
    assert '" onmouseover="alert(2)' not in body
    assert 'title="&quot; onmouseover=&quot;alert(2)"' in body
    assert "<b>agent</b>" not in body
    assert '&lt;b&gt;agent&lt;/b&gt; <span class="tag">agent</span>' in body


def test_the_query_count_does_not_grow_with_the_runs(client, alice):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    client.force_login(alice)
    for _ in range(3):
        make_interaction(make_pending_approval().run, sequence=1)
    few = count_queries()
    for _ in range(27):
        make_interaction(make_pending_approval().run, sequence=1)
        make_run(status=Run.Status.RUNNING)
    assert count_queries() == few


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/runs/")


def test_it_refuses_post(client, alice):
    client.force_login(alice)
    assert client.post(URL).status_code == 405


def test_it_filters_by_model_and_by_agent(client, alice):
    flash = make_run(model="gemini-2.5-flash")
    pro = make_run(model="gemini-2.5-pro")
    agent = make_run(agent="deep-research-pro-preview-12-2025")
    client.force_login(alice)
    assert listed(client, {"model": "gemini-2.5-pro"}) == [pro]
    assert listed(client, {"model": "gemini-2.5-flash"}) == [flash]
    assert listed(client, {"agent": "deep-research-pro-preview-12-2025"}) == [agent]


def test_it_filters_waiting_for_approval(client, alice):
    waiting = make_pending_approval().run
    make_run(status=Run.Status.RUNNING)
    client.force_login(alice)
    assert listed(client, {"status": "waiting_for_approval"}) == [waiting]
    assert 'value="waiting_for_approval" selected' in client.get(URL, {"status": "waiting_for_approval"}).content.decode()


def test_it_filters_by_a_tool_the_run_declared(client, alice):
    refund = make_run(tool_names=",lookup_order,issue_refund,")
    lookup = make_run(tool_names=",lookup_order,")
    make_run(tool_names="")
    client.force_login(alice)
    assert listed(client, {"tool": "issue_refund"}) == [refund]
    assert listed(client, {"tool": "lookup_order"}) == [lookup, refund]
    # Whole names only: no prefix match, and LIKE's wildcards are taken literally.
    assert listed(client, {"tool": "lookup"}) == []
    assert listed(client, {"tool": "lookup_%"}) == []


def test_it_offers_the_tools_and_targets_of_the_page_as_suggestions(client, alice):
    make_run(tool_names=",lookup_order,issue_refund,", model="gemini-3-flash-preview")
    make_run(agent="deep-research-pro-preview-12-2025")
    client.force_login(alice)
    response = client.get(URL)
    assert response.context["tools"] == ["issue_refund", "lookup_order"]
    assert response.context["targets"] == ["deep-research-pro-preview-12-2025", "gemini-3-flash-preview"]
    assert '<option value="issue_refund">' in response.content.decode()


def test_it_filters_runs_with_pending_approvals(client, alice):
    pending = make_pending_approval().run
    decided = make_pending_approval().run
    decided.approvals.update(status="approved", decided_by=alice)
    make_run()
    client.force_login(alice)
    assert listed(client, {"pending": "1"}) == [pending]
    assert set(listed(client)) == set(Run.objects.all())


def test_it_filters_by_who_started_the_run(client, alice, bob):
    mine = make_run(created_by=bob)
    make_run(created_by=alice)
    make_run()
    client.force_login(alice)
    assert listed(client, {"by": "bob"}) == [mine]
    assert listed(client, {"by": "nobody"}) == []


def test_it_filters_by_a_date_range_with_both_ends_included(client, alice):
    def on(day: int, hour: int) -> Run:
        return make_run(created_at=datetime(2026, 3, day, hour, 30, tzinfo=dt_timezone.utc))

    before, first, last, after = on(9, 23), on(10, 0), on(12, 23), on(13, 0)
    client.force_login(alice)
    assert listed(client, {"from": "2026-03-10", "to": "2026-03-12"}) == [last, first]
    assert listed(client, {"from": "2026-03-10"}) == [after, last, first]
    assert listed(client, {"to": "2026-03-09"}) == [before]


def test_filters_combine(client, alice, bob):
    match = make_run(status=Run.Status.FAILED, model="gemini-2.5-pro", created_by=bob, input="refund failed")
    make_run(status=Run.Status.FAILED, model="gemini-2.5-pro", created_by=alice, input="refund failed")
    make_run(status=Run.Status.COMPLETED, model="gemini-2.5-pro", created_by=bob, input="refund failed")
    make_run(status=Run.Status.FAILED, model="gemini-2.5-flash", created_by=bob, input="refund failed")
    make_run(status=Run.Status.FAILED, model="gemini-2.5-pro", created_by=bob, input="weather")
    client.force_login(alice)
    assert listed(client, {"status": "failed", "model": "gemini-2.5-pro", "by": "bob", "q": "refund"}) == [match]


def test_search_stems_words(client, alice):
    singular = make_run(input="Please refund order A-1003")
    past = make_run(input="weather", output_text="I refunded the duplicate charge.")
    make_run(input="Where is my parcel?")
    client.force_login(alice)
    assert set(listed(client, {"q": "refunds"})) == {singular, past}
    assert set(listed(client, {"q": "Refunding"})) == {singular, past}


def test_search_takes_phrases_and_exclusions(client, alice):
    phrase = make_run(input="the order arrived damaged")
    other = make_run(input="damaged box, order late")
    client.force_login(alice)
    assert listed(client, {"q": '"arrived damaged"'}) == [phrase]
    assert listed(client, {"q": "damaged -late"}) == [phrase]
    assert set(listed(client, {"q": "damaged or nothing"})) == {phrase, other}


def test_search_finds_text_beyond_the_preview(client, alice):
    # A continuation's message is in input_text, not in the first input the preview shows.
    run = make_run(input="first question", input_text="first question\n" + "x " * 400 + "needle at the end")
    client.force_login(alice)
    assert listed(client, {"q": "needle"}) == [run]


def test_search_follows_the_output_as_the_run_records_it(client, alice):
    # The stored search document follows every way a run's texts are written: save() of a
    # loaded run, save() of a run built in Python, and a queryset update().
    run = make_run(input="Where is my parcel?", output_text="")
    client.force_login(alice)
    assert listed(client, {"q": "courier"}) == []
    run = Run.objects.get(pk=run.pk)
    run.output_text = "The courier has it."
    run.save()
    assert listed(client, {"q": "courier"}) == [run]
    Run.objects.filter(pk=run.pk).update(output_text="Delivered to the neighbour.")
    assert listed(client, {"q": "courier"}) == []
    assert listed(client, {"q": "neighbour"}) == [run]
    run.input_text = "Where is my blender?"
    run.save(update_fields=["input_text"])
    assert listed(client, {"q": "parcel"}) == []
    assert listed(client, {"q": "blender neighbour"}) == [run]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the stored document is PostgreSQL's")
def test_a_save_that_writes_back_a_stale_document_gets_it_recomputed(alice):
    run = make_run(input="Where is my parcel?")
    stale = Run.objects.get(pk=run.pk)
    Run.objects.filter(pk=run.pk).update(output_text="The courier has it.")
    stale.output_text = "The courier has it."
    stale.search_vector = "'parcel':4"
    stale.save()
    assert Run.objects.search("courier").get() == run
    assert Run.objects.search("parcel").get() == run


def test_a_search_of_stop_words_only_finds_nothing_without_failing(client, alice):
    make_run(input="the and of")
    client.force_login(alice)
    assert listed(client, {"q": "the"}) == []


def test_it_sorts_by_duration_longest_first_leaving_out_active_runs(client, alice):
    short = make_run(duration_ms=1_000)
    long = make_run(duration_ms=90_000)
    make_run(status=Run.Status.RUNNING)
    client.force_login(alice)
    response = client.get(URL, {"sort": "duration"})
    assert list(response.context["runs"]) == [long, short]
    assert "finished runs only" in response.content.decode()


def test_it_sorts_by_tokens_most_first(client, alice):
    few = make_run(total_tokens=10)
    many = make_run(total_tokens=50_000)
    none = make_run(status=Run.Status.QUEUED)
    client.force_login(alice)
    assert listed(client, {"sort": "tokens"}) == [many, few, none]
    assert 'aria-sort="descending">Tokens' in client.get(URL, {"sort": "tokens"}).content.decode()


def test_an_active_run_shows_the_time_it_has_run_so_far(client, alice):
    make_run(status=Run.Status.RUNNING, created_at=timezone.now() - timedelta(seconds=75))
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert 'class="num nowrap elapsed">1m 15s<' in body


@pytest.mark.parametrize("params, message", [
    ({"status": "exploded"}, "Status: Select a valid choice. exploded is not one of the available choices."),
    ({"sort": "colour"}, "Sort: Select a valid choice."),
    ({"from": "yesterday"}, "From: Enter a valid date."),
    ({"to": "2026-02-30"}, "To: Enter a valid date."),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "To: The end date is before the start date."),
    ({"tool": "a,b"}, "Tool: A tool name has no commas."),
    ({"model": "m" * 201}, "Model: Ensure this value has at most 200 characters"),
])
def test_an_invalid_filter_is_reported_with_a_400_and_left_out(client, alice, params, message):
    run = make_run(input="listed anyway")
    client.force_login(alice)
    response = client.get(URL, params)
    assert response.status_code == 400
    assert list(response.context["runs"]) == [run]
    assert message in response.content.decode().replace("&#x27;", "'")


def test_the_error_message_escapes_the_value(client, alice):
    make_run()
    client.force_login(alice)
    body = client.get(URL, {"status": "<b>x</b>"}).content.decode()
    assert "<b>x</b>" not in body
    assert "&lt;b&gt;x&lt;/b&gt;" in body


def test_the_filter_form_shows_the_values_asked_for_and_a_clear_link(client, alice):
    client.force_login(alice)
    body = client.get(URL, {"q": "refund", "model": "gemini-2.5-pro", "pending": "1", "from": "2026-03-01"}).content.decode()
    assert 'name="q" value="refund"' in body
    assert 'name="model" value="gemini-2.5-pro"' in body
    assert 'name="pending" value="1" checked' in body
    assert 'name="from" value="2026-03-01"' in body
    assert 'href="/runs/">Clear</a>' in body
    assert "No runs match these filters." in body


def test_an_htmx_request_gets_the_filtered_table_with_its_errors(client, alice):
    make_run(status=Run.Status.FAILED, input="kept")
    make_run(status=Run.Status.COMPLETED, input="dropped")
    client.force_login(alice)
    response = client.get(URL, {"status": "failed", "from": "nope"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="run-table"')
    assert "kept" in body and "dropped" not in body
    assert "From: Enter a valid date." in body
    assert '<form class="card run-filters"' not in body


@pytest.mark.parametrize("params", [
    {},
    {"status": "waiting_for_approval", "q": "refund", "pending": "1", "sort": "tokens"},
    {"sort": "duration", "by": "alice", "tool": "issue_refund", "from": "2000-01-01"},
])
def test_the_query_count_is_the_same_for_3_and_60_runs(client, alice, params):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL, params).status_code == 200
        return len(queries)

    def add_runs(count: int) -> None:
        # Waiting runs with a pending approval each, that every filter of ``params`` matches.
        for _ in range(count):
            make_pending_approval()
        Run.objects.update(created_by=alice, tool_names=",issue_refund,", duration_ms=1000)

    client.force_login(alice)
    add_runs(3)
    assert len(client.get(URL, params).context["runs"]) == 3
    few = count_queries()
    add_runs(57)
    assert len(client.get(URL, params).context["runs"]) == PAGE_SIZE
    assert count_queries() == few


def test_the_list_query_count_is_the_same_on_a_deep_page(client, alice):
    for _ in range(PAGE_SIZE + 3):
        make_run()
    client.force_login(alice)
    with CaptureQueriesContext(connection) as first:
        response = client.get(URL)
    with CaptureQueriesContext(connection) as second:
        client.get(URL + response.context["next_url"])
    assert len(first) == len(second)
    # The cursor is read from the query string: no query looks up the run it names.
    assert not any('"runs_run"."id" = ' in query["sql"] for query in second.captured_queries)


def test_any_signed_in_user_may_read_the_list(client, bob, carol):
    make_run(input="shared run")
    for user in (bob, carol, make_user("dave")):
        client.force_login(user)
        assert "shared run" in client.get(URL).content.decode()


def test_every_row_links_to_its_run(client, alice):
    runs = [make_run(), make_pending_approval().run]
    client.force_login(alice)
    body = client.get(URL).content.decode()
    for run in runs:
        assert f'<a class="mono run-id" href="{run.get_absolute_url()}">#{run.pk}</a>' in body
    assert f'<a class="badge badge-warn" href="{runs[1].get_absolute_url()}"' in body


def test_a_cursor_past_the_last_run_offers_the_first_page_with_the_filters(client, alice):
    make_run(status=Run.Status.FAILED, created_at=timezone.now())
    client.force_login(alice)
    response = client.get(URL, {"status": "failed", "after": "1000.1"})
    assert list(response.context["runs"]) == []
    assert 'No runs past this point. <a href="/runs/?status=failed">Back to the first page</a>' in response.content.decode()
