"""The management commands' contracts (docs/contracts.md, "Contracts")."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from approvals.models import Approval
from audit.models import AuditEvent
from runs.models import Run
from tests.conftest import make_user, wait_for
from tests.factories import requested_call


def run_command(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_start_run_prints_the_run_id_last_and_with_wait_the_status_before_it(worker, api):
    lines = run_command("start_run", "--model", "gemini-3-flash-preview", "--input", "Hello there", "--wait")

    run = Run.objects.get(pk=int(lines[-1]))
    assert lines[-2] == "completed" == run.status
    assert run.input == "Hello there"


def test_start_run_waits_for_approval_and_decide_approves_from_the_terminal(worker, api, alice):
    lines = run_command(
        "start_run", "--model", "gemini-3-flash-preview", "--tool", "lookup_order", "--tool", "issue_refund",
        "--input", "Order A-1003 arrived broken: refund it.", "--wait",
    )
    run = Run.objects.get(pk=int(lines[-1]))
    assert lines[-2] == "waiting_for_approval"
    refund = Approval.objects.get(run=run, function_name="issue_refund")
    assert refund.arguments["amount"] == 1450.0

    make_user("dave", "reviewers")

    first = run_command("decide", "--run", str(run.pk), "--call-id", refund.call_id, "--approve", "--as", "alice")
    with pytest.raises(CommandError, match="needs another reviewer"):
        call_command("decide", str(refund.pk), "--approve", "--as", "alice", stdout=io.StringIO())
    second = run_command("decide", str(refund.pk), "--approve", "--as", "dave")

    # Above $1,000 policy asks for two reviewers (four-eyes).
    assert first[-2:] == ["1 of 2 approvals: waiting for another reviewer", f"pending {refund.pk}"]
    assert second[-1] == f"approved {refund.pk}"
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).exists())
    with pytest.raises(CommandError, match="already approved by dave"):
        call_command("decide", str(refund.pk), "--approve", "--as", "alice", stdout=io.StringIO())


def test_start_run_refuses_an_unknown_tool_in_the_pages_words(db):
    with pytest.raises(CommandError, match="--tool: Select a valid choice. rm_rf is not one of the available choices."):
        call_command("start_run", "--model", "m", "--input", "x", "--tool", "rm_rf", stdout=io.StringIO())


def test_decide_refuses_a_user_who_is_not_a_reviewer(bob):
    approval = requested_call(function_name="issue_refund", arguments={"order_id": "A-1", "amount": 300, "reason": "x"})

    with pytest.raises(CommandError, match="reviewers"):
        call_command("decide", str(approval.pk), "--approve", "--as", "bob", stdout=io.StringIO())
    approval.refresh_from_db()
    assert approval.is_pending


def test_decide_needs_a_reason_to_reject(alice):
    approval = requested_call(function_name="issue_refund", arguments={"order_id": "A-1", "amount": 300, "reason": "x"})

    with pytest.raises(CommandError, match="reason"):
        call_command("decide", str(approval.pk), "--reject", "--as", "alice", stdout=io.StringIO())


def test_decide_answers_an_unknown_function_with_a_typed_result(alice):
    approval = requested_call(function_name="send_customer_email", arguments={"to": "a@example.com"})
    assert approval.requires_manual_result

    with pytest.raises(CommandError, match="type the result"):
        call_command("decide", str(approval.pk), "--approve", "--as", "alice", stdout=io.StringIO())
    call_command("decide", str(approval.pk), "--approve", "--result", '{"sent": true}', "--as", "alice", stdout=io.StringIO())

    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
    assert approval.result == {"sent": True} and approval.settled_at
    follow_up = approval.run.interactions.get(sequence=1)
    assert follow_up.request["input"] == [approval.function_result()]
    assert follow_up.request["previous_interaction_id"] == approval.interaction.interaction_id


def test_export_audit_streams_csv_and_jsonl_filtered_by_time(alice):
    approval = requested_call(function_name="issue_refund", arguments={"order_id": "A-1", "amount": 300, "reason": "x"})
    approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="=HYPERLINK(\"http://evil\")")
    total = AuditEvent.objects.count()

    rows = list(csv.DictReader(io.StringIO("\n".join(run_command("export_audit", "--format", "csv")))))
    events = [json.loads(line) for line in run_command("export_audit", "--format", "jsonl")]
    future = run_command("export_audit", "--format", "jsonl", "--since", "2999-01-01T00:00:00Z")

    # Each export is itself an audited event, written once the stream has ended.
    assert len(rows) == total and len(events) == total + 1
    [rejected] = [r for r in rows if r["verb"] == "approval.rejected"]
    assert rejected["actor"] == "alice"
    assert json.loads(rejected["after"])["reason"].startswith("=HYPERLINK")
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert future == []
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("export_audit", "--since", "yesterday", stdout=io.StringIO())


# --- The command line says what the page says ------------------------------------------------


def refused(*args) -> tuple[str, list[str]]:
    """Run a command that must fail: its error message and what it printed before failing."""
    out = io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(*args, stdout=out)
    return str(failure.value), out.getvalue().splitlines()


@pytest.mark.parametrize("args,message", [
    (["--model", "gemini-3-flash-preview", "--input", "   "], "--input: This field is required."),
    (["--agent", "deep-research-pro-preview-12-2025", "--input", "Go", "--tool", "lookup_order"],
     "--tool: Function tools are for models; a managed agent uses its own tools."),
    (["--model", "has space", "--input", "x"], "--model/--agent: A model or agent name has no spaces."),
])
def test_start_run_refuses_what_the_page_refuses_in_the_pages_words(db, args, message):
    error, _ = refused("start_run", *args)

    assert error == message
    assert not Run.objects.exists()


def test_start_run_as_a_user_starts_their_run_and_refuses_who_may_not_start(db, bob, carol):
    lines = run_command("start_run", "--model", "gemini-3-flash-preview", "--input", "Hi", "--as", "bob")
    carols, _ = refused("start_run", "--model", "gemini-3-flash-preview", "--input", "Hi", "--as", "carol")
    nobody, _ = refused("start_run", "--model", "gemini-3-flash-preview", "--input", "Hi", "--as", "nobody")
    system = run_command("start_run", "--model", "gemini-3-flash-preview", "--input", "Hi")

    assert Run.objects.get(pk=int(lines[-1])).created_by == bob
    assert carols.startswith("carol may not start runs: that takes the engineer role")
    assert nobody == "No user named 'nobody'."
    assert Run.objects.get(pk=int(system[-1])).created_by is None
    assert Run.objects.count() == 2


def test_start_run_wait_prints_status_then_id_and_fails_when_the_run_failed(worker, api):
    error, lines = refused("start_run", "--model", "gemini-3-flash-preview", "--input", "Go [fault:failed]", "--wait")

    run = Run.objects.get(pk=int(lines[-1]))
    assert lines[-2] == "failed" == run.status
    assert error.startswith(f"Run {run.pk} failed")


def test_start_run_wait_fails_when_the_run_was_cancelled(worker, api, bob):
    import threading

    from runs import execution

    outcome = {}

    def wait_for_the_run():
        try:
            outcome["lines"] = run_command("start_run", "--agent", "deep-research-pro-preview-12-2025",
                                           "--input", "Research slowly", "--background", "--wait", "--timeout", "60")
        except CommandError as exc:
            outcome["error"] = str(exc)
        finally:
            from django.db import connection

            connection.close()

    waiting = threading.Thread(target=wait_for_the_run)
    waiting.start()
    run = wait_for(lambda: Run.objects.filter(status=Run.Status.RUNNING).first())
    execution.cancel_run(run.pk, by=bob)
    waiting.join(timeout=30)

    assert outcome["error"] == f"Run {run.pk} cancelled."


def test_a_failed_wait_exits_non_zero_from_the_shell(worker, api):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    from dashboard.celery import app

    # Through manage.py, as a script runs it: the test database, this session's worker queue.
    database = settings.DATABASES["default"]
    env = {
        **os.environ, "HANDOFF_TASK_QUEUE": app.conf.task_default_queue,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
    }
    env.pop("HANDOFF_TEST_DATABASE_NAME", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "start_run", "--model", "gemini-3-flash-preview", "--input",
         "Go [fault:failed]", "--wait", "--timeout", "60"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120,
    )

    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[-2] == "failed" and Run.objects.get(pk=int(lines[-1])).status == Run.Status.FAILED
    assert f"Run {lines[-1]} failed" in done.stderr


def test_decide_approve_with_arguments_edits_then_approves_under_the_pages_rules(alice):
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 300, "reason": "Broken"})
    edited = {"order_id": "A-1", "amount": 250, "reason": "Broken, partial refund"}

    bad_json, _ = refused("decide", str(approval.pk), "--approve", "--arguments", "{amount: 250}", "--as", "alice")
    off_schema, _ = refused("decide", str(approval.pk), "--approve", "--arguments", '{"amount": -5}', "--as", "alice")
    lines = run_command("decide", str(approval.pk), "--approve", "--arguments", json.dumps(edited), "--as", "alice")

    assert bad_json.startswith("--arguments: This is not valid JSON")
    assert off_schema.startswith("--arguments: ")
    approval.refresh_from_db()
    assert lines[-1] == f"approved {approval.pk}"
    assert approval.status == Approval.Status.APPROVED
    assert approval.arguments["amount"] == 300 and approval.edited_arguments == edited
    assert AuditEvent.objects.filter(verb="approval.edited", actor="alice").exists()


@pytest.mark.parametrize("option,value", [
    ("--arguments", '{"order_id": "A-1", "amount": NaN, "reason": "x"}'),
    ("--arguments", '{"order_id": "A-1", "amount": 1e400, "reason": "x"}'),
    ("--result", '{"sent": "\\u0000"}'),
])
def test_decide_reads_typed_json_with_the_pages_parser_and_stores_nothing_half(alice, option, value):
    function = "send_customer_email" if option == "--result" else "issue_refund"
    approval = requested_call(function, {"order_id": "A-1", "amount": 300, "reason": "x"} if option == "--arguments"
                              else {"to": "a@example.com", "subject": "s", "body": "b"})

    error, _ = refused("decide", str(approval.pk), "--approve", option, value, "--as", "alice")

    assert error.startswith(f"{option}: ")
    approval.refresh_from_db()
    assert approval.is_pending and approval.edited_arguments is None and not approval.decisions.exists()


def test_decide_refuses_arguments_with_a_rejection(alice):
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 300, "reason": "x"})

    error, _ = refused("decide", str(approval.pk), "--reject", "--reason", "No", "--arguments", "{}", "--as", "alice")

    assert error == "--arguments and --result go with --approve."


def test_decide_errors_name_the_thing_not_a_python_dict(alice):
    missing, _ = refused("decide", "99999", "--approve", "--as", "alice")
    by_call, _ = refused("decide", "--run", "5", "--call-id", "call_9", "--approve", "--as", "alice")
    nobody, _ = refused("decide", "99999", "--approve", "--as", "nobody")

    assert missing == "No approval 99999."
    assert by_call == "No approval for call call_9 in run 5."
    assert nobody == "No user named 'nobody'."
    for message in (missing, by_call, nobody):
        assert "{" not in message


def test_evidence_bundle_errors_name_the_thing(db, tmp_path):
    run = Run.objects.create(model="gemini-3-flash-preview", input="x")

    missing, _ = refused("evidence_bundle", "99999")
    unwritable, _ = refused("evidence_bundle", str(run.pk), "--output", str(tmp_path / "no" / "such" / "dir.zip"))

    assert missing == "No run 99999."
    assert unwritable.startswith("Cannot write ") and str(tmp_path / "no" / "such" / "dir.zip") in unwritable


@pytest.mark.parametrize("verb", ["approval", "approval."])
def test_the_verb_filter_takes_a_family_with_or_without_its_dot(client, alice, carol, verb):
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 300, "reason": "x"})
    approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="No")
    client.force_login(carol)

    exported = [json.loads(line)["verb"] for line in run_command("export_audit", "--format", "jsonl", "--verb", verb)]
    page = client.get("/audit/", {"verb": verb}).content.decode()

    assert sorted(exported) == ["approval.rejected", "approval.requested"]
    assert "approval.rejected" in page.split("<tbody>")[1] and "run.started" not in page.split("<tbody>")[1]


def test_export_audit_as_a_user_records_them_and_refuses_who_may_not_export(carol, bob):
    run_command("export_audit", "--format", "jsonl", "--as", "carol")
    error, _ = refused("export_audit", "--as", "bob")

    assert AuditEvent.objects.filter(verb="audit.exported", actor="carol").count() == 1
    assert error.startswith("bob may not export the audit log")
