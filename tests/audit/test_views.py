"""The audit page: chain status, filters, downloads, export jobs, evidence bundles."""

import io
import json
import re
import zipfile

import pytest
from django.db import transaction
from django.urls import reverse

from audit import bundles, chain, log
from audit.models import AuditEvent, AuditExport, ChainVerification
from runs.models import Run
from tests.conftest import wait_for
from tests.factories import requested_call


@pytest.fixture
def refund(alice):
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 300, "reason": "x"})
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    log.seal()
    return approval


def test_an_auditor_sees_the_events_and_that_the_chain_held(client, carol, refund):
    chain.verify_and_record(requested_by="carol")
    client.force_login(carol)

    response = client.get(reverse("audit:log"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Chain holds" in body and "approval.approved" in body
    assert f'href="/runs/{refund.run_id}/evidence.zip"' in body


def test_the_chain_status_says_it_holds_once(client, carol, refund):
    chain.verify_and_record(requested_by="carol")
    client.force_login(carol)

    body = client.get(reverse("audit:log")).content.decode()

    status = body.split('id="chain-status"')[1].split("</section>")[0]
    assert re.search(r'<span class="pill pill-completed">Chain holds</span> \d+ events verified; ', status)
    assert "The chain holds" not in status


def test_each_row_labels_its_run_and_its_evidence_bundle(client, carol, refund):
    client.force_login(carol)

    body = client.get(reverse("audit:log")).content.decode()

    run = refund.run_id
    assert f'<a href="/runs/{run}/">Run #{run}</a>' in body
    assert (f'<a class="small" href="/runs/{run}/evidence.zip" '
            f'title="Evidence bundle of run #{run}: a signed ZIP of its audit events">evidence bundle</a>') in body
    assert f">#{run}<" not in body and ">bundle<" not in body


def test_a_broken_chain_is_shown_as_broken(client, carol, refund):
    ChainVerification.objects.create(ok=False, message="Event 7 (link #7) was altered", first_bad_event_id=7)
    client.force_login(carol)

    body = client.get(reverse("audit:log")).content.decode()

    assert "Chain broken" in body and "Event 7 (link #7) was altered" in body


def test_filters_narrow_the_list_and_the_download_to_the_same_events(client, carol, refund):
    client.force_login(carol)
    query = {"actor": "alice", "verb": "approval."}

    page = client.get(reverse("audit:log"), query).content.decode()
    download = b"".join(client.get(reverse("audit:download"), {**query, "format": "jsonl"}).streaming_content)

    events = [json.loads(line) for line in download.decode().splitlines()]
    assert [e["verb"] for e in events] == ["approval.approved"]
    assert "approval.requested" not in page.split("<tbody>")[1]
    assert AuditEvent.objects.filter(verb="audit.exported", actor="carol").exists()


def test_a_month_of_decisions_by_date_range(client, carol, refund):
    client.force_login(carol)
    today = refund.created_at.date()

    inside = client.get(reverse("audit:download"), {"since": today.replace(day=1), "until": today, "verb": "approval."})
    outside = client.get(reverse("audit:download"), {"until": today.replace(year=today.year - 1)})

    assert b"approval.approved" in b"".join(inside.streaming_content)
    assert b"".join(outside.streaming_content).count(b"\n") == 1  # the header only


def test_verify_now_runs_in_a_worker_and_the_status_updates(worker, client, carol):
    client.force_login(carol)

    client.post(reverse("audit:verify"))
    running = client.get(reverse("audit:log"), HTTP_HX_REQUEST="true").content.decode()

    assert 'id="chain-status"' in running and "<html" not in running
    wait_for(lambda: ChainVerification.objects.filter(ok=True).exists())
    done = client.get(reverse("audit:log"), HTTP_HX_REQUEST="true").content.decode()
    assert "Chain holds" in done and "hx-trigger" not in done


def test_a_running_verification_shows_how_far_it_got(client, carol):
    ChainVerification.objects.create(ok=None, message="Verifying…", requested_by="carol",
                                     links_total=10_000_000, links_checked=2_500_000)
    client.force_login(carol)

    running = client.get(reverse("audit:log"), HTTP_HX_REQUEST="true").content.decode()

    assert '<progress value="2500000" max="10000000">' in running
    assert "2500000 of 10000000 links checked" in running and 'hx-trigger="every 2s"' in running


def test_a_background_export_shows_progress_then_the_file(worker, client, carol, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        for n in range(30):
            log.record(actor="system:test", verb="run.status_changed", obj=run, run=run, after={"n": n})
    client.force_login(carol)

    response = client.post(reverse("audit:export_start"), {"format": "jsonl", "run": run.pk})

    job = AuditExport.objects.get()
    assert response["Location"] == reverse("audit:export", args=[job.pk])
    wait_for(lambda: AuditExport.objects.filter(pk=job.pk, status="done").exists())
    page = client.get(reverse("audit:export", args=[job.pk])).content.decode()
    assert "30 of 30 events" in page
    data = b"".join(client.get(reverse("audit:export_file", args=[job.pk])).streaming_content)
    assert len(data.splitlines()) == 30


def test_an_evidence_bundle_downloads_and_verifies(client, carol, refund):
    client.force_login(carol)

    response = client.get(reverse("evidence_bundle", args=[refund.run_id]))

    data = b"".join(response.streaming_content)
    assert response["Content-Disposition"].startswith("attachment")
    assert bundles.verify_bundle(io.BytesIO(data)) == []
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert f"run-{refund.run_id}/SHA256SUMS" in bundle.namelist()


@pytest.mark.parametrize("name,args", [("audit:log", []), ("audit:download", []), ("evidence_bundle", [1])])
def test_someone_without_audit_rights_gets_403(client, bob, name, args):
    Run.objects.create(pk=1, model="m", input="x")
    client.force_login(bob)

    assert client.get(reverse(name, args=args)).status_code == 403


@pytest.mark.parametrize("name", ["audit:verify", "audit:export_start"])
def test_audit_actions_are_post_only(client, carol, name):
    client.force_login(carol)

    assert client.get(reverse(name)).status_code == 405


def test_the_audit_page_needs_a_signed_in_user(client, db):
    response = client.get(reverse("audit:log"))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_export_job_is_its_owners_only_and_its_file_only_once_done(client, alice, carol):
    """``_get_export_for_user``: someone else's job is not told apart from no job (404), and a job
    still running has no file yet (404)."""
    job = AuditExport.objects.create(requested_by=alice, format="csv")
    client.force_login(carol)
    assert client.get(reverse("audit:export", args=[job.pk])).status_code == 404
    assert client.get(reverse("audit:export_file", args=[job.pk])).status_code == 404
    client.force_login(alice)
    assert client.get(reverse("audit:export", args=[job.pk])).status_code == 200
    assert client.get(reverse("audit:export_file", args=[job.pk])).status_code == 404

