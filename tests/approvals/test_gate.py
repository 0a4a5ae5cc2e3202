"""The gate holds on every path that changes what runs (issue 9, findings 1-3): an edit is
judged by the policy of the edited arguments, whoever asked for a call may not approve it where
policy says so, and the model's arguments are checked against the tool's schema before policy.

The real policy and schema (``approvals.tools``), the real recording (``execution.record``)
and the model methods every interface calls; no worker (tasks queued on commit do not run inside
a test's transaction).
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from approvals.models import Approval, Decision, DecisionRefused
from audit.models import AuditEvent
from runs import execution, gemini
from runs.models import Interaction, Run
from tests.conftest import make_user
from tests.factories import keep_counts, make_interaction, make_run, requested_call


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


@pytest.fixture
def erin(db):
    return make_user("erin", "reviewers")


def refund(amount, *, created_by=None, **arguments) -> Approval:
    return requested_call(
        "issue_refund", {"order_id": "A-1001", "amount": amount, "reason": "Damaged", **arguments},
        created_by=created_by,
    )


def edited(amount) -> dict:
    return {"order_id": "A-1001", "amount": amount, "reason": "Damaged"}


# --- 1. An edit is judged by the policy of the edited arguments ---------------------------------


def test_an_edit_past_the_four_eyes_threshold_needs_two_reviewers_not_the_editor_alone(alice, dave, erin, bob):
    approval = refund(249, created_by=bob)
    assert approval.approvals_required == 1 and approval.creator_may_approve

    assert approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments=edited(99999)) is True

    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING
    assert approval.current_arguments["amount"] == 99999
    assert approval.approvals_required == 2 and not approval.creator_may_approve
    assert "two reviewers" in approval.policy and "after an edit by alice" in approval.policy
    assert approval.approvals_so_far() == 1
    event = AuditEvent.objects.get(verb="approval.edited")
    assert event.before["approvals_required"] == 1 and event.after["approvals_required"] == 2

    # The second pair of eyes approves the arguments in force; then it runs.
    assert approval.approve(by=dave, shown_hash=approval.arguments_hash) is True
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED and approval.decided_by == dave


def test_approvals_given_to_the_arguments_before_an_edit_do_not_count(alice, dave, erin):
    approval = refund(1450)
    model_hash = approval.arguments_hash
    assert approval.approve(by=dave, shown_hash=model_hash) is True  # 1 of 2, on the model's arguments

    assert approval.approve(by=alice, shown_hash=model_hash, arguments=edited(1400)) is True

    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING
    assert approval.approvals_so_far() == 1  # alice's; dave's was for other arguments
    # dave must look again: what he approved is not what would run.
    with pytest.raises(DecisionRefused, match="changed since they were shown"):
        approval.approve(by=dave, shown_hash=model_hash)
    assert approval.approve(by=dave, shown_hash=approval.arguments_hash) is True
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED


def test_an_edit_below_a_threshold_keeps_the_stricter_requirement(alice):
    approval = refund(1450)

    approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments=edited(150))

    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING
    assert approval.approvals_required == 2 and not approval.creator_may_approve


def test_a_requester_who_edits_a_call_into_four_eyes_cannot_approve_it_and_nothing_is_stored(alice):
    approval = refund(249, created_by=alice)  # alice may approve a $249 refund of her own run

    with pytest.raises(PermissionDenied, match="may not approve"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments=edited(5000))

    approval.refresh_from_db()
    assert approval.edited_arguments is None and approval.approvals_required == 1
    assert not Decision.objects.exists()
    assert not AuditEvent.objects.filter(verb__in=["approval.edited", "approval.approved"]).exists()


def test_the_page_refuses_an_edit_that_makes_the_editor_a_barred_requester(client, alice):
    approval = refund(249, created_by=alice)
    client.force_login(alice)

    response = client.post(reverse("approvals:approve", args=[approval.pk]), {
        "shown_hash": approval.arguments_hash, "arguments": json.dumps(edited(5000)),
    })

    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.edited_arguments is None and approval.status == Approval.Status.PENDING


# --- 2. Whoever asked for a call is a requester ---------------------------------------------------


def continued_by(user, *, started_by, amount=1450) -> Approval:
    """A completed run ``started_by`` made, continued by ``user`` with a message whose answer
    asks for a refund of ``amount``."""
    run = make_run(status=Run.Status.COMPLETED, created_by=started_by, output_text="Your order shipped.")
    make_interaction(run, sequence=0, requested_by=started_by)
    follow_up = execution.continue_run(run.pk, text="Actually, refund it all.", by=user)
    payload = {"id": "v1_continued", "status": "requires_action", "steps": [
        {"type": "function_call", "id": "call_refund", "name": "issue_refund",
         "arguments": {"order_id": "A-1003", "amount": amount, "reason": "Asked in a continuation"}},
    ]}
    execution.record(follow_up, gemini.parse(json.dumps(payload)))
    return Approval.objects.get(interaction=follow_up)


def test_whoever_continued_a_run_may_not_approve_the_four_eyes_call_it_led_to(alice, bob, dave, erin):
    approval = continued_by(alice, started_by=bob)
    assert approval.interaction.requested_by == alice
    assert approval.is_requester(alice) and approval.is_requester(bob) and not approval.is_requester(dave)

    with pytest.raises(PermissionDenied, match="may not approve"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash)
    assert not Decision.objects.exists()

    assert approval.approve(by=dave, shown_hash=approval.arguments_hash) is True
    assert approval.approve(by=erin, shown_hash=approval.arguments_hash) is True
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED


def test_a_requester_may_still_reject_the_call(alice, bob):
    approval = continued_by(alice, started_by=bob)

    assert approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="I asked by mistake") is True


def test_the_approval_page_shows_a_continuing_reviewer_no_approve_button(client, alice, bob):
    approval = continued_by(alice, started_by=bob)
    client.force_login(alice)

    page = client.get(approval.get_absolute_url()).content.decode()
    refused = client.post(reverse("approvals:approve", args=[approval.pk]), {"shown_hash": approval.arguments_hash})

    assert 'name="reject"' in page or "Reject" in page
    assert reverse("approvals:approve", args=[approval.pk]) not in page
    assert refused.status_code == 403


def test_interactions_remember_who_asked_for_them(alice, bob):
    run = execution.create_run(model="gemini-3-flash-preview", input="Hello", created_by=bob)

    first = run.interactions.get()
    first.interaction_id = "v1_first"
    follow_up = execution.continue_with(first, input=[{"type": "function_result", "call_id": "c", "result": {}}])

    assert first.requested_by == bob
    assert follow_up.requested_by is None  # it carries results, not anyone's input


# --- 3. The model's arguments are checked against the tool's schema ----------------------------------


def test_arguments_outside_the_schema_never_run_at_once(client, alice):
    approval = refund(-500)  # by its policy alone, "within $200: runs at once"

    assert approval.status == Approval.Status.PENDING
    assert "amount" in approval.schema_error and "minimum" in approval.schema_error
    assert "do not fit issue_refund's schema" in approval.policy
    event = AuditEvent.objects.get(verb="approval.requested")
    assert event.after["policy"] == approval.policy
    client.force_login(alice)
    page = client.get(approval.get_absolute_url()).content.decode()
    assert "do not fit the tool's schema" in page and approval.schema_error in page


def test_a_call_outside_the_schema_cannot_be_approved_as_it_is_only_edited_or_rejected(alice):
    approval = refund(-500)

    with pytest.raises(DecisionRefused, match="do not fit"):
        approval.approve(by=alice, shown_hash=approval.arguments_hash)
    assert approval.approve(by=alice, shown_hash=approval.arguments_hash, arguments=edited(50)) is True

    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED and approval.schema_error == ""


def test_missing_and_unexpected_arguments_wait_for_a_person(db):
    missing = requested_call("issue_refund", {"order_id": "A-1001", "amount": 20}, call_id="c1")
    extra = requested_call("issue_refund", {"order_id": "A-1001", "amount": 20, "reason": "x", "to": "me"},
                           call_id="c2")
    not_an_object = requested_call("lookup_order", ["A-1001"], call_id="c3")

    for approval in (missing, extra, not_an_object):
        assert approval.status == Approval.Status.PENDING, approval.policy
        assert approval.schema_error


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_json_cannot_carry_is_recorded_and_waits_for_a_person(client, alice, literal):
    run = Run.objects.create(model="gemini-3-flash-preview", input="x")
    interaction = Interaction.objects.create(run=run, sequence=0, request={})
    keep_counts(run)
    body = ('{"id": "v1_odd", "status": "requires_action", "steps": [{"type": "function_call", "id": "c1",'
            f' "name": "issue_refund", "arguments": {{"order_id": "A-1001", "amount": {literal}, "reason": "x"}}}}]}}')

    execution.record(interaction, gemini.parse(body))

    approval = Approval.objects.get(interaction=interaction)
    assert approval.status == Approval.Status.PENDING
    assert approval.arguments["amount"] == literal and "amount" in approval.schema_error
    client.force_login(alice)
    assert client.get(approval.get_absolute_url()).status_code == 200


def test_a_huge_amount_needs_four_eyes_and_its_policy_text_stays_short(client, alice):
    approval = refund(1e308)

    assert approval.status == Approval.Status.PENDING and approval.approvals_required == 2
    assert len(approval.policy) < 200
    client.force_login(alice)
    assert client.get(approval.get_absolute_url()).status_code == 200
    assert client.get(reverse("approvals:queue")).status_code == 200
