"""Exports: filters, hostile strings, JSONL round trip, jobs with progress, evidence bundles,
retention, access events."""

from approvals import evidence
import csv
import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from audit import bundles, exports, keys, log
from audit.models import AuditEvent, AuditExport
from runs.models import Artifact, Interaction, Run
from tests.factories import keep_counts, requested_call

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
            log.record(actor=text, verb="run.started", obj=run, run=run)

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
        assert data == event.as_dict()


def test_an_export_is_itself_audited(decisions):
    export("--format", "csv", "--actor", "alice")

    event = AuditEvent.objects.filter(verb="audit.exported").latest("id")
    assert event.after == {"format": "csv", "filters": {"actor": "alice"}}


def test_an_export_job_writes_the_file_with_progress_and_a_checksum(decisions, alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    job = AuditExport.objects.create(requested_by=alice, format="jsonl", filters={"actor": "alice"})

    exports.write_export(job.pk)

    job.refresh_from_db()
    assert job.status == AuditExport.Status.DONE and job.rows_done == job.rows_total == 2
    content = exports.export_path(job).read_bytes()
    import hashlib

    assert hashlib.sha256(content).hexdigest() == job.sha256
    assert [json.loads(l)["actor"] for l in content.decode().splitlines()] == ["alice", "alice"]


def test_an_evidence_bundle_verifies_on_its_own_and_tampering_shows(decisions, tmp_path):
    refunds, _ = decisions
    log.seal()
    run = refunds[0].run
    path = tmp_path / "bundle.zip"

    manifest = evidence.write_bundle(run, path)

    assert {"run.json", "approvals.json", "audit_events.jsonl", "interactions/0.json", "README.txt"} <= set(manifest)
    assert bundles.verify_bundle(path) == []
    with zipfile.ZipFile(path) as bundle:
        approvals = json.loads(bundle.read(f"run-{run.pk}/approvals.json"))
        files = {name: bundle.read(name) for name in bundle.namelist()}
    assert approvals[0]["decisions"][0]["user"] == "alice"
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data.replace(b'"approved"', b'"rejected"') if name.endswith("approvals.json") else data)
    problems = bundles.verify_bundle(forged)
    assert problems == ["approvals.json does not match its checksum."]


def test_the_verify_bundle_command_exits_non_zero_on_a_bad_bundle(decisions, tmp_path):
    log.seal()
    path = tmp_path / "b.zip"
    call_command("evidence_bundle", str(decisions[0][0].run_id), "--output", str(path), stdout=io.StringIO())
    call_command("verify_bundle", str(path), stdout=io.StringIO())
    with zipfile.ZipFile(path, "a") as bundle:
        bundle.writestr(f"run-{decisions[0][0].run_id}/extra.txt", b"smuggled")

    with pytest.raises(SystemExit) as exit:
        call_command("verify_bundle", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert exit.value.code == 1


# --- Forgeries: each rewrites the bundle the way a forger would, checksums regenerated ---------


def bundle_files(decisions, tmp_path) -> tuple[dict[str, bytes], str]:
    log.seal()
    run = decisions[0][0].run
    path = tmp_path / "bundle.zip"
    evidence.write_bundle(run, path)
    with zipfile.ZipFile(path) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}, f"run-{run.pk}/"


def forge(files: dict[str, bytes], root: str, path, *, key: Ed25519PrivateKey | None = None):
    """Write ``files`` as a bundle with SHA256SUMS regenerated over them; with ``key``, re-signed
    by it and carrying its public key instead."""
    files = dict(files)
    if key is not None:
        files[root + "signing-key.pub"] = keys.public_key_pem(key.public_key())
    listed = {name[len(root):]: data for name, data in files.items()
              if name[len(root):] not in ("SHA256SUMS", "SHA256SUMS.sig")}
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(listed.items())).encode()
    files[root + "SHA256SUMS"] = sums
    if key is not None:
        files[root + "SHA256SUMS.sig"] = key.sign(sums)
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return path


def verify_bundle_command(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_bundle", *map(str, args), stdout=out, stderr=err)
    except SystemExit as exit:
        return exit.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_approvals_edited_with_the_checksums_regenerated_fail_the_signature(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    files[root + "approvals.json"] = files[root + "approvals.json"].replace(b'"approved"', b'"rejected"')

    problems = bundles.verify_bundle(forge(files, root, tmp_path / "forged.zip"))

    assert len(problems) == 1 and problems[0].startswith("SHA256SUMS does not match its signature by key ")


def test_a_forged_event_with_a_matching_link_fails_the_signature(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    lines = files[root + "audit_events.jsonl"].decode().splitlines()
    last = json.loads(lines[-1])
    event = {**last["event"], "id": last["event"]["id"] + 1, "actor": "mallory", "verb": "approval.approved"}
    canonical_bytes = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    link = {"position": last["link"]["position"] + 1, "prev_hash": last["link"]["hash"],
            "hash": hashlib.sha256(last["link"]["hash"].encode() + canonical_bytes).hexdigest()}
    lines.append(json.dumps({"event": event, "link": link}, sort_keys=True, ensure_ascii=False))
    files[root + "audit_events.jsonl"] = ("\n".join(lines) + "\n").encode()

    problems = bundles.verify_bundle(forge(files, root, tmp_path / "forged.zip"))

    assert [p.split(" by key ")[0] for p in problems] == ["SHA256SUMS does not match its signature"]


def test_a_dropped_event_or_a_dropped_file_with_its_line_fails_the_signature(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    dropped_event = dict(files)
    lines = files[root + "audit_events.jsonl"].decode().splitlines()
    dropped_event[root + "audit_events.jsonl"] = ("\n".join(lines[1:]) + "\n").encode()
    dropped_file = {name: data for name, data in files.items() if not name.endswith("approvals.json")}

    for forged in (dropped_event, dropped_file):
        problems = bundles.verify_bundle(forge(forged, root, tmp_path / "forged.zip"))
        assert len(problems) == 1 and problems[0].startswith("SHA256SUMS does not match its signature")


def test_a_file_dropped_or_added_without_touching_the_checksums_is_named(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    dropped = {name: data for name, data in files.items() if not name.endswith("run.json")}
    added = {**files, root + "extra.txt": b"smuggled"}

    for forged, problem in ((dropped, "run.json is listed but missing."),
                            (added, "extra.txt is not listed in SHA256SUMS.")):
        with zipfile.ZipFile(tmp_path / "forged.zip", "w") as bundle:
            for name, data in forged.items():
                bundle.writestr(name, data)
        assert bundles.verify_bundle(tmp_path / "forged.zip") == [problem]


def test_a_bundle_re_signed_by_another_key_names_that_key_and_fails_when_the_real_key_is_pinned(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    files[root + "approvals.json"] = files[root + "approvals.json"].replace(b'"approved"', b'"rejected"')
    mallory = Ed25519PrivateKey.generate()
    forged = forge(files, root, tmp_path / "forged.zip", key=mallory)
    ours = keys.fingerprint(keys.signing_key().public_key())

    code, out, _ = verify_bundle_command(forged)
    pinned_code, _, pinned_err = verify_bundle_command(forged, "--public-key", keys.signing_key_path())
    by_print, _, print_err = verify_bundle_command(forged, "--fingerprint", ours)

    assert code == 0 and f"Signed by key {keys.fingerprint(mallory.public_key())}, the key the bundle carries" in out
    assert pinned_code == 1 and f"not the pinned key {ours}" in pinned_err
    assert "SHA256SUMS does not match its signature" in pinned_err
    assert by_print == 1 and f"not the pinned key {ours}" in print_err


def test_verify_bundle_prints_the_fingerprint_of_the_pinned_key(decisions, tmp_path):
    log.seal()
    path = tmp_path / "b.zip"
    call_command("evidence_bundle", str(decisions[0][0].run_id), "--output", str(path), stdout=io.StringIO())
    public = tmp_path / "handoff.pub"
    public.write_bytes(keys.public_key_pem(keys.signing_key().public_key()))
    ours = keys.fingerprint(keys.signing_key().public_key())

    code, out, _ = verify_bundle_command(path, "--public-key", public)
    by_print, print_out, _ = verify_bundle_command(path, "--fingerprint", ours.upper())

    assert code == 0 and f"Signed by key {ours}, the pinned key." in out
    assert by_print == 0 and ours in print_out
    with zipfile.ZipFile(path) as bundle:
        assert ours in bundle.read(f"run-{decisions[0][0].run_id}/README.txt").decode()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_signature_verifies_with_openssl_as_the_bundle_readme_says(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    for name in ("SHA256SUMS", "SHA256SUMS.sig", "signing-key.pub"):
        (tmp_path / name).write_bytes(files[root + name])

    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signing-key.pub", "-rawin", "-in",
                           "SHA256SUMS", "-sigfile", "SHA256SUMS.sig"], cwd=tmp_path, capture_output=True, text=True)

    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout


def test_a_file_that_is_not_a_zip_gets_a_message_not_a_traceback(db, tmp_path):
    text = tmp_path / "bundle.zip"
    text.write_text("just text")

    code, _, err = verify_bundle_command(text)
    missing, _, missing_err = verify_bundle_command(tmp_path / "nowhere.zip")

    assert code == 1 and err.strip() == f"{text} is not a ZIP file."
    assert missing == 1 and "Cannot read" in missing_err and "No such file" in missing_err


def test_bad_lines_and_a_missing_signature_get_messages_not_tracebacks(decisions, tmp_path):
    files, root = bundle_files(decisions, tmp_path)
    files[root + "SHA256SUMS"] += b"not a checksum line\n"
    files[root + "audit_events.jsonl"] += b"{broken json\n"
    del files[root + "SHA256SUMS.sig"]
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)

    code, _, err = verify_bundle_command(tmp_path / "bad.zip")

    assert code == 1
    assert "SHA256SUMS.sig is missing: the bundle is not signed." in err
    assert "SHA256SUMS line " in err and "is not \"<sha256 hex>  <file name>\"" in err
    assert "audit_events.jsonl does not match its checksum." in err
    lines = files[root + "audit_events.jsonl"].decode().splitlines()
    assert f"audit_events.jsonl line {len(lines)} is not an event with its link (JSON)." in err


def test_a_bad_public_key_or_fingerprint_to_pin_gets_a_message(tmp_path):
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("nope")

    for args, message in (((not_a_key,), "is not a PEM public or unencrypted private key"),
                          ((tmp_path / "absent.pem",), "Cannot read --public-key")):
        with pytest.raises(CommandError, match=message):
            call_command("verify_bundle", str(tmp_path / "b.zip"), "--public-key", *map(str, args))
    with pytest.raises(CommandError, match="64 hex digits"):
        call_command("verify_bundle", str(tmp_path / "b.zip"), "--fingerprint", "abc")


def test_pruning_deletes_old_raw_payloads_only_and_is_audited(db):
    run = Run.objects.create(model="m", input="x")
    interaction = Interaction.objects.create(run=run, sequence=0, request={})
    keep_counts(run)
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
