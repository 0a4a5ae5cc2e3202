from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Run
from runs.views import PAGE_SIZE
from tests.factories import make_interaction, make_pending_approval, make_run

URL = "/runs/"


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
    assert f'title="1 pending approval"' in body
    assert approval.run.get_absolute_url() in body


def test_it_filters_by_status(client, alice):
    failed = make_run(status=Run.Status.FAILED, input="failed one")
    make_run(status=Run.Status.COMPLETED, input="completed one")
    client.force_login(alice)
    body = client.get(URL, {"status": "failed"}).content.decode()
    assert "failed one" in body
    assert "completed one" not in body
    assert f"#{failed.pk}<" in body


def test_it_ignores_an_unknown_status(client, alice):
    make_run(input="any run")
    client.force_login(alice)
    response = client.get(URL, {"status": "exploded"})
    assert response.status_code == 200
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
    assert first.context["older_url"] == f"?before={runs[5].pk}"
    assert first.context["newer_url"] == ""

    second = client.get(URL + first.context["older_url"])
    assert list(second.context["runs"]) == list(reversed(runs[:5]))
    assert second.context["older_url"] == ""
    assert second.context["newer_url"] == f"?after={runs[4].pk}"

    back = client.get(URL + second.context["newer_url"])
    assert back.context["runs"] == first.context["runs"]
    assert back.context["newer_url"] == ""


def test_the_cursor_breaks_ties_on_created_at_by_id(client, alice):
    same_time = timezone.now()
    runs = [make_run(created_at=same_time) for _ in range(PAGE_SIZE + 2)]
    client.force_login(alice)
    first = client.get(URL)
    second = client.get(URL + first.context["older_url"])
    seen = [r.pk for r in first.context["runs"]] + [r.pk for r in second.context["runs"]]
    assert sorted(seen) == sorted(r.pk for r in runs)
    assert len(set(seen)) == len(runs)


def test_pagination_keeps_the_filters(client, alice):
    for _ in range(PAGE_SIZE + 1):
        make_run(status=Run.Status.FAILED, input="broken")
    client.force_login(alice)
    response = client.get(URL, {"status": "failed", "q": "broken"})
    assert response.context["older_url"].startswith("?status=failed&q=broken&before=")


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
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body


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
