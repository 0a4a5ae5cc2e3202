"""The management commands' contracts (product.md, "Contracts")."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from approvals.models import Approval, AuditEvent
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


def test_start_run_refuses_an_unknown_tool(db):
    with pytest.raises(CommandError, match="Unknown tool"):
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
