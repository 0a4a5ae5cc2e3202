"""Deadlines, reminders and escalation, with time under the test's control."""

from datetime import timedelta

from django.utils import timezone

from approvals.models import Approval
from audit.models import AuditEvent
from approvals.policies import FINANCE_LEADS_GROUP
from tests.factories import requested_call


def refund(amount):
    return requested_call("issue_refund", {"order_id": "A-1", "amount": amount, "reason": "x"})


def test_nothing_happens_before_the_reminder_is_due(db):
    approval = refund(249)

    assert Approval.enforce_deadlines(now=approval.remind_at - timedelta(seconds=1)) == {
        "reminded": 0, "escalated": 0, "expired": 0}


def test_a_reminder_goes_out_once_before_the_deadline(db):
    approval = refund(249)
    at = approval.remind_at + timedelta(seconds=1)

    first = Approval.enforce_deadlines(now=at)
    second = Approval.enforce_deadlines(now=at + timedelta(minutes=1))

    assert first["reminded"] == 1 and second["reminded"] == 0
    assert AuditEvent.objects.filter(verb="approval.reminded", object_id=str(approval.pk)).count() == 1


def test_a_passed_deadline_rejects_the_call_as_expired_and_the_run_goes_on(db):
    approval = refund(249)

    counts = Approval.enforce_deadlines(now=approval.deadline_at + timedelta(seconds=1))

    approval.refresh_from_db()
    assert counts["expired"] == 1
    assert approval.status == Approval.Status.EXPIRED and approval.result_is_error
    assert "Expired" in approval.result["error"]
    follow_up = approval.run.interactions.get(sequence=1)
    assert follow_up.request["input"] == [approval.function_result()]
    assert AuditEvent.objects.filter(verb="approval.expired", actor="system:deadlines").exists()
    assert Approval.enforce_deadlines(now=approval.deadline_at + timedelta(hours=1))["expired"] == 0


def test_a_four_eyes_call_escalates_to_the_finance_leads_then_expires(db):
    approval = refund(1450)
    first_window = approval.deadline_at - approval.created_at
    passed = approval.deadline_at + timedelta(seconds=1)

    counts = Approval.enforce_deadlines(now=passed)
    approval.refresh_from_db()

    assert counts["escalated"] == 1
    assert approval.is_pending and approval.approver_group == FINANCE_LEADS_GROUP
    assert approval.deadline_at == passed + first_window
    event = AuditEvent.objects.get(verb="approval.escalated")
    assert event.before["approver_group"] == "reviewers" and event.after["approver_group"] == FINANCE_LEADS_GROUP

    Approval.enforce_deadlines(now=approval.deadline_at + timedelta(seconds=1))
    approval.refresh_from_db()
    assert approval.status == Approval.Status.EXPIRED


def test_a_decided_call_is_left_alone_by_the_deadline_job(alice):
    approval = refund(249)
    approval.approve(by=alice, shown_hash=approval.arguments_hash)

    counts = Approval.enforce_deadlines(now=timezone.now() + timedelta(days=1))

    approval.refresh_from_db()
    assert counts == {"reminded": 0, "escalated": 0, "expired": 0}
    assert approval.status == Approval.Status.APPROVED


def test_a_call_whose_execution_was_lost_is_answered_once_with_an_unknown_outcome(alice, settings):
    approval = refund(249)
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    started = timezone.now() - timedelta(seconds=settings.EXECUTION_LEASE + 1)
    Approval.objects.filter(pk=approval.pk).update(execution_started_at=started)

    assert Approval.recover_stalled()["unknown"] == 1
    assert Approval.recover_stalled()["unknown"] == 0

    approval.refresh_from_db()
    assert approval.result_is_error and "effect is unknown" in approval.result["error"]
    assert approval.run.interactions.get(sequence=1).request["input"] == [approval.function_result()]
    assert AuditEvent.objects.filter(verb="function_call.outcome_unknown").count() == 1


def test_a_call_still_within_its_execution_lease_is_left_to_its_worker(alice):
    approval = refund(249)
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    Approval.objects.filter(pk=approval.pk).update(execution_started_at=timezone.now())

    assert Approval.recover_stalled() == {"requeued": 0, "settled": 0, "unknown": 0}
    approval.refresh_from_db()
    assert approval.settled_at is None
