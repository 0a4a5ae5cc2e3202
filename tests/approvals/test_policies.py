"""Policy per tool and per argument, four-eyes, creator and group rules, edited arguments."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied

from approvals.models import Approval, Decision, DecisionRefused
from audit.models import AuditEvent
from approvals.policies import FINANCE_LEADS_GROUP
from tests.conftest import make_user
from tests.factories import requested_call


def refund(amount, **kwargs):
    return requested_call("issue_refund", {"order_id": "A-1003", "amount": amount, "reason": "Broken"}, **kwargs)


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


def test_a_small_refund_runs_at_once(db):
    approval = refund(150)

    assert approval.status == Approval.Status.AUTO
    assert "within $200" in approval.policy


def test_a_refund_above_200_needs_one_reviewer_within_four_hours(db):
    approval = refund(249)

    assert approval.status == Approval.Status.PENDING
    assert approval.approvals_required == 1 and approval.creator_may_approve
    assert timedelta(hours=3, minutes=59) < approval.deadline_at - approval.created_at <= timedelta(hours=4)
    assert approval.remind_at == approval.deadline_at - timedelta(minutes=30)
    assert approval.allowed_decisions == ["approve", "edit", "reject"]


def test_a_refund_above_1000_needs_two_different_reviewers(alice, dave):
    approval = refund(1450)
    assert approval.approvals_required == 2 and not approval.creator_may_approve
    assert approval.on_deadline == "escalate" and approval.escalate_to == FINANCE_LEADS_GROUP

    assert approval.approve(by=alice, shown_hash=approval.arguments_hash)
    assert approval.status == Approval.Status.PENDING and approval.approvals_so_far() == 1
    with pytest.raises(DecisionRefused, match="needs another reviewer"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash)
    assert approval.approve(by=dave, shown_hash=approval.arguments_hash)

    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED and approval.decided_by == dave
    assert list(approval.decisions.values_list("user__username", flat=True)) == ["alice", "dave"]
    counts = [e.after["approvals"] for e in AuditEvent.objects.filter(verb="approval.approved").order_by("id")]
    assert counts == ["1 of 2", "2 of 2"]


def test_the_person_who_started_the_run_may_not_approve_it_but_may_reject(alice):
    approval = refund(1450, created_by=alice)

    with pytest.raises(PermissionDenied, match="started or continued its run"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash)
    assert approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="Fraud suspected")
    assert approval.status == Approval.Status.REJECTED


def test_only_members_of_the_approver_group_may_decide(bob, carol):
    approval = refund(249)

    for user in (bob, carol):
        with pytest.raises(PermissionDenied, match="reviewers group"):
            approval.approve(by=user, shown_hash=approval.arguments_hash)
    assert not Decision.objects.exists()


def test_one_rejection_settles_a_four_eyes_call_with_the_reason(alice, dave):
    approval = refund(1450)
    approval.approve(by=alice, shown_hash=approval.arguments_hash)

    assert approval.reject(by=dave, shown_hash=approval.arguments_hash, reason="Over the limit")

    approval.refresh_from_db()
    assert approval.status == Approval.Status.REJECTED and approval.result_is_error
    assert "Over the limit" in approval.result["error"]
    assert approval.settled_at is not None


def test_edited_arguments_are_validated_kept_beside_the_originals_and_sent(alice):
    approval = refund(249)
    original = dict(approval.arguments)

    with pytest.raises(DecisionRefused, match="amount"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments={**original, "amount": "lots"})
    with pytest.raises(DecisionRefused, match="Additional properties"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments={**original, "bonus": 1})
    assert approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments={**original, "amount": 120.0})

    approval.refresh_from_db()
    assert approval.arguments == original
    assert approval.edited_arguments["amount"] == 120.0 and approval.current_arguments["amount"] == 120.0
    assert approval.status == Approval.Status.APPROVED
    edited = AuditEvent.objects.get(verb="approval.edited")
    assert edited.before["arguments"] == original and edited.after["arguments"]["amount"] == 120.0


def test_an_edit_resets_earlier_approvals_of_the_old_arguments(alice, dave):
    approval = refund(1450)
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    old_hash = approval.arguments_hash

    approval.approve(by=dave, shown_hash=old_hash, arguments={**approval.arguments, "amount": 1200.0})
    approval.refresh_from_db()

    # Alice approved other arguments: her approval does not count for the edited ones.
    assert approval.status == Approval.Status.PENDING and approval.approvals_so_far() == 1
    with pytest.raises(DecisionRefused, match="changed since they were shown"):
        approval.approve(by=alice, shown_hash=old_hash)
    assert approval.approve(by=alice, shown_hash=approval.arguments_hash)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED


def test_a_tool_without_a_body_is_answered_by_hand_and_cannot_be_edited(alice):
    approval = requested_call("send_customer_email", {"to": "c@example.com", "subject": "Refund", "body": "Done"})

    assert approval.allowed_decisions == ["reject", "respond"]
    with pytest.raises(DecisionRefused, match="does not allow"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash, result={"sent": True},
                         arguments={"to": "x", "subject": "y", "body": "z"})
    assert approval.approve(by=alice, shown_hash=approval.arguments_hash, result={"sent": True})
    assert approval.result == {"sent": True}


def test_an_escalated_call_is_decided_by_the_finance_leads(alice):
    erin = make_user("erin", "reviewers", FINANCE_LEADS_GROUP)
    approval = refund(1450)
    Approval.objects.filter(pk=approval.pk).update(approver_group=FINANCE_LEADS_GROUP)
    approval.refresh_from_db()

    with pytest.raises(PermissionDenied, match="finance-leads"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash)
    assert approval.approve(by=erin, shown_hash=approval.arguments_hash)
