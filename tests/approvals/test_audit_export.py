"""Exports: filters, hostile strings, JSONL round trip, jobs with progress, evidence bundles,
retention, access events."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from approvals import audit
from approvals.models import AuditEvent, AuditExport
from runs.models import Artifact, Interaction, Run
from tests.factories import requested_call

HOSTILE = ["=HYPERLINK(\"http://evil\")", "+1+1", "-2", "@SUM(A1)", "\tTab", "plain, with \"quotes\"\nand newline"]


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_audit", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def decisions(alice):
    refunds = [requested_call("issue_refund", {"order_id": f"A-{n}", "amount": 300, "reason": "x"}, call_id=f"c{n}")
               for n in range(3)]
    refunds[0].approve(by=alice, shown_hash=refunds[0].arguments_hash)
    refunds[1].reject(by=alice, shown_hash=refunds[1].arguments_hash, reason="No")
    email = requested_call("send_customer_email", {"to": "a@b.c", "subject": "s", "body": "b"}, call_id="mail")
    return refunds, email


def test_export_filters_by_run_actor_verb_tool_and_time(decisions, alice):
    refunds, email = decisions

    by_run = [json.loads(l) for l in export("--format", "jsonl", "--run", str(refunds[0].run_id)).splitlines()]
    by_actor = [json.loads(l) for l in export("--format", "jsonl", "--actor", "alice").splitlines()]
    family = [json.loads(l) for l in export("--format", "jsonl", "--verb", "approval.").splitlines()]
    by_tool = [json.loads(l) for l in export("--format", "jsonl", "--tool", "send_customer_email").splitlines()]
    later = export("--format", "jsonl", "--since", (timezone.now() + timedelta(minutes=1)).isoformat())

    assert by_run and {e["run_id"] for e in by_run} == {refunds[0].run_id}
    assert {e["verb"] for e in by_actor} == {"approval.approved", "approval.rejected"}
    assert family and all(e["verb"].startswith("approval.") for e in family)
    assert by_tool and {e["tool"] for e in by_tool} == {"send_customer_email"}
    assert later == ""


def test_csv_neutralises_formula_cells_and_keeps_quoting(db):
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        for text in HOSTILE:
            audit.record(actor=text, verb="run.started", obj=run, run=run)

    rows = list(csv.DictReader(io.StringIO(export("--format", "csv"))))

    actors = [r["actor"] for r in rows if r["verb"] == "run.started"]
    assert actors[:4] == ["'" + h for h in HOSTILE[:4]]
    assert actors[4] == "'\tTab"
    assert actors[5] == HOSTILE[5]


def test_jsonl_round_trips_every_field(decisions):
    lines = export("--format", "jsonl").splitlines()

    events = {e.pk: e for e in AuditEvent.objects.all()}
    # Every event but the export's own event, written after the stream ends.
    assert len(lines) == len(events) - 1
    for line in lines:
        data = json.loads(line)
        event = events[data["id"]]
        assert data == audit.event_dict(event)


def test_an_export_is_itself_audited(decisions):
    export("--format", "csv", "--actor", "alice")

    event = AuditEvent.objects.filter(verb="audit.exported").latest("id")
    assert event.after == {"format": "csv", "filters": {"actor": "alice"}}


def test_an_export_job_writes_the_file_with_progress_and_a_checksum(decisions, alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    job = AuditExport.objects.create(requested_by=alice, format="jsonl", filters={"actor": "alice"})

    audit.write_export(job.pk)

    job.refresh_from_db()
    assert job.status == AuditExport.Status.DONE and job.rows_done == job.rows_total == 2
    content = audit.export_path(job).read_bytes()
    import hashlib

    assert hashlib.sha256(content).hexdigest() == job.sha256
    assert [json.loads(l)["actor"] for l in content.decode().splitlines()] == ["alice", "alice"]


def test_an_evidence_bundle_verifies_on_its_own_and_tampering_shows(decisions, tmp_path):
    refunds, _ = decisions
    audit.seal()
    run = refunds[0].run
    path = tmp_path / "bundle.zip"

    manifest = audit.evidence_bundle(run, path)

    assert {"run.json", "approvals.json", "audit_events.jsonl", "interactions/0.json", "README.txt"} <= set(manifest)
    assert audit.verify_bundle(path) == []
    with zipfile.ZipFile(path) as bundle:
        approvals = json.loads(bundle.read(f"run-{run.pk}/approvals.json"))
        files = {name: bundle.read(name) for name in bundle.namelist()}
    assert approvals[0]["decisions"][0]["user"] == "alice"
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data.replace(b'"approved"', b'"rejected"') if name.endswith("approvals.json") else data)
    problems = audit.verify_bundle(forged)
    assert problems == ["approvals.json does not match its checksum."]


def test_the_verify_bundle_command_exits_non_zero_on_a_bad_bundle(decisions, tmp_path):
    audit.seal()
    path = tmp_path / "b.zip"
    call_command("evidence_bundle", str(decisions[0][0].run_id), "--output", str(path), stdout=io.StringIO())
    call_command("verify_bundle", str(path), stdout=io.StringIO())
    with zipfile.ZipFile(path, "a") as bundle:
        bundle.writestr(f"run-{decisions[0][0].run_id}/extra.txt", b"smuggled")

    with pytest.raises(SystemExit) as exit:
        call_command("verify_bundle", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert exit.value.code == 1


def test_pruning_deletes_old_raw_payloads_only_and_is_audited(db):
    run = Run.objects.create(model="m", input="x")
    interaction = Interaction.objects.create(run=run, sequence=0, request={})
    old = timezone.now() - timedelta(days=40)
    for kind in (Artifact.Kind.RAW_RESPONSE, Artifact.Kind.RAW_REQUEST, Artifact.Kind.USAGE):
        Artifact.objects.create(interaction=interaction, kind=kind, content="{}", created_at=old)
    call_command("prune_payloads", "--older-than", "30", stdout=io.StringIO())

    assert list(interaction.artifacts.values_list("kind", flat=True)) == [Artifact.Kind.USAGE]
    event = AuditEvent.objects.get(verb="artifacts.pruned")
    assert event.after["deleted"] == 2 and event.after["older_than_days"] == 30


def test_sign_ins_failures_and_denials_are_audited(client, bob):
    from tests.conftest import PASSWORD

    client.post("/accounts/login/", {"username": "bob", "password": "wrong"})
    client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    client.get("/approvals/audit.csv")

    verbs = list(AuditEvent.objects.values_list("verb", "actor"))
    assert ("user.sign_in_failed", "bob") in verbs
    assert ("user.signed_in", "bob") in verbs
    assert ("user.denied", "bob") in verbs
