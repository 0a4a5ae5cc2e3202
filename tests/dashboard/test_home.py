from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Run
from tests.factories import make_pending_approval, make_run

URL = "/"


def test_it_counts_runs_by_status(client, bob):
    make_run(status=Run.Status.COMPLETED)
    make_run(status=Run.Status.COMPLETED)
    make_run(status=Run.Status.FAILED)
    client.force_login(bob)
    response = client.get(URL)
    assert response.status_code == 200
    counts = {value: count for value, _, count in response.context["by_status"]}
    assert counts[Run.Status.COMPLETED] == 2
    assert counts[Run.Status.FAILED] == 1
    assert counts[Run.Status.QUEUED] == 0
    assert response.context["total_runs"] == 3


def test_it_shows_pending_approvals_with_a_link(client, bob):
    make_pending_approval()
    make_pending_approval()
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert 'href="/approvals/"' in body
    assert '<span class="stat-value">2</span>' in body


def test_it_shows_the_five_latest_failures(client, bob):
    now = timezone.now()
    for i in range(7):
        make_run(status=Run.Status.FAILED, input=f"failure {i}", error=f"Error number {i}\ndetails",
                 created_at=now - timedelta(minutes=10 - i))
    client.force_login(bob)
    response = client.get(URL)
    failures = list(response.context["recent_failures"])
    assert [run.input_preview for run in failures] == [f"failure {i}" for i in (6, 5, 4, 3, 2)]
    assert "Error number 6" in response.content.decode()


def test_it_sums_tokens_of_the_last_24_hours(client, bob):
    make_run(total_tokens=1000)
    make_run(total_tokens=234)
    make_run(total_tokens=99999, created_at=timezone.now() - timedelta(hours=25))
    client.force_login(bob)
    response = client.get(URL)
    assert response.context["tokens_24h"] == 1234
    assert "1,234" in response.content.decode()


def test_it_takes_a_few_queries_whatever_the_data(client, bob):
    client.force_login(bob)
    for _ in range(20):
        make_run(status=Run.Status.FAILED, error="boom")
    with CaptureQueriesContext(connection) as queries:
        client.get(URL)
    # Session, user, the navigation badge (count and reviewer check), the audit right, totals,
    # failures.
    assert len(queries) <= 7


def test_auditors_get_the_audit_download_link_to_the_recorded_export(client, carol):
    client.force_login(carol)
    body = client.get(URL).content.decode()
    assert 'href="/audit/download/"' in body
    assert "/approvals/audit.csv" not in body


def test_others_do_not_get_the_audit_download_link(client, bob):
    client.force_login(bob)
    assert "/audit/download/" not in client.get(URL).content.decode()


def test_it_refreshes_itself_while_a_run_is_active(client, bob):
    make_run(status=Run.Status.RUNNING)
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert 'hx-get="/" hx-trigger="every 10s"' in body


def test_it_does_not_refresh_when_nothing_is_active(client, bob):
    make_run(status=Run.Status.COMPLETED)
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert 'id="overview"' in body
    assert "hx-trigger" not in body.split('id="overview"')[1].split(">")[0]


def test_an_htmx_request_gets_only_the_overview(client, bob):
    client.force_login(bob)
    response = client.get(URL, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="overview"')
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_refuses_post(client, bob):
    client.force_login(bob)
    assert client.post(URL).status_code == 405


def test_the_active_runs_label_names_what_it_counts(client, bob):
    make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    make_run(status=Run.Status.RUNNING)
    make_run(status=Run.Status.COMPLETED)
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert '<span class="stat-label">Active runs (queued, running or waiting for approval)</span>' in body
    assert '<span class="stat-value">3</span>' in body
    assert (
        '<span class="stat-note">0 queued · 1 running · 2 waiting for approval, of 4 in total</span>'
    ) in body
