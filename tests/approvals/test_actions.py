"""``Approval.actions_for``: what a person may do with a call is what the model lets them do.

Each case puts a call in a state, asks ``actions_for`` for one person, then takes every action
through the model method it names, each on its own, rolled back after: an action it allows
must succeed, one it refuses must be refused (``PermissionDenied``, ``DecisionRefused``, or
``False``). The expected set of allowed actions is spelled out too, so the two cannot agree by
both refusing everything.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from approvals.models import Actions, Approval, DecisionRefused
from approvals.policies import FINANCE_LEADS_GROUP
from tests.conftest import make_user
from tests.factories import requested_call

ACTIONS = ("approve", "edit", "respond", "reject", "claim", "release")


def small_refund(**kwargs) -> Approval:
    """One reviewer decides it."""
    return requested_call("issue_refund", {"order_id": "A-1", "amount": 300, "reason": "Broken"}, **kwargs)


def big_refund(**kwargs) -> Approval:
    """Four-eyes: two reviewers, neither of them a requester."""
    return requested_call("issue_refund", {"order_id": "A-1003", "amount": 1450, "reason": "Broken"}, **kwargs)


def customer_email() -> Approval:
    """No body in Handoff: a person types the result."""
    return requested_call("send_customer_email", {"to": "a@example.com", "subject": "Sorry", "body": "Refunded."})


def off_schema_refund() -> Approval:
    """Arguments outside the tool's schema: edited or rejected, never approved as they are."""
    return requested_call("issue_refund", {"order_id": "A-1", "amount": -5, "reason": "Broken"})


class RolledBack(Exception):
    pass


def attempt(approval: Approval, user, action: str) -> bool:
    """Whether the model takes ``action`` by ``user`` on ``approval`` as the page would post it,
    on a fresh copy of the row; everything it did is rolled back."""
    fresh = Approval.objects.select_related("run", "interaction", "claimed_by").get(pk=approval.pk)
    shown = fresh.arguments_hash
    edited = {**fresh.current_arguments, "amount": 250 if fresh.current_arguments.get("amount") == 300 else 1400}
    if fresh.function_name == "issue_refund" and fresh.schema_error:
        edited = {"order_id": "A-1", "amount": 250, "reason": "Broken"}
    calls = {
        "approve": lambda: fresh.approve(by=user, shown_hash=shown),
        "edit": lambda: fresh.approve(by=user, shown_hash=shown, arguments=edited),
        "respond": lambda: fresh.approve(by=user, shown_hash=shown, result={"sent": True}),
        "reject": lambda: fresh.reject(by=user, shown_hash=shown, reason="Not this one."),
        "claim": lambda: fresh.claim(by=user),
        "release": lambda: fresh.release(by=user),
    }
    try:
        with transaction.atomic():
            taken = calls[action]()
            raise RolledBack
    except RolledBack:
        return bool(taken)
    except (PermissionDenied, DecisionRefused):
        return False


def allowed(actions: Actions) -> set[str]:
    return {name for name in ACTIONS if getattr(actions, f"can_{name}")}


def assert_agrees(approval: Approval, user, expected: set[str]) -> Actions:
    actions = approval.actions_for(user)
    taken = {name for name in ACTIONS if attempt(approval, user, name)}
    assert allowed(actions) == taken, f"actions_for allows {sorted(allowed(actions))}, the model takes {sorted(taken)}"
    assert taken == expected
    return actions


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


@pytest.fixture
def erin(db):
    """A finance lead: decides the calls escalated to them."""
    return make_user("erin", FINANCE_LEADS_GROUP)


@pytest.fixture
def admin(db):
    """An admin who is in no approver group."""
    return User.objects.create_superuser("root", "root@example.com", "pw")


def test_a_reviewer_in_the_approver_group_may_take_every_decision_the_tool_allows(alice):
    actions = assert_agrees(small_refund(), alice, {"approve", "edit", "reject", "claim"})
    assert actions.may_decide and not actions.creator_blocked


def test_a_reviewer_outside_the_approver_group_may_do_nothing(alice, erin):
    approval = small_refund()
    Approval.objects.filter(pk=approval.pk).update(approver_group=FINANCE_LEADS_GROUP, escalated_at=timezone.now())
    approval.refresh_from_db()

    actions = assert_agrees(approval, alice, set())
    assert not actions.may_decide
    assert_agrees(approval, erin, {"approve", "edit", "reject", "claim"})


def test_the_runs_creator_may_reject_but_not_approve_where_policy_forbids_it(alice):
    actions = assert_agrees(big_refund(created_by=alice), alice, {"reject", "claim"})
    assert actions.may_decide and actions.creator_blocked


def test_the_runs_creator_may_approve_where_policy_allows_it(alice):
    actions = assert_agrees(small_refund(created_by=alice), alice, {"approve", "edit", "reject", "claim"})
    assert not actions.creator_blocked


def test_who_approved_under_four_eyes_may_only_reject_and_the_second_reviewer_may_approve(alice, dave):
    approval = big_refund()
    assert approval.approve(by=dave, shown_hash=approval.arguments_hash)
    approval.refresh_from_db()

    assert_agrees(approval, dave, {"reject", "claim"})
    assert_agrees(approval, alice, {"approve", "edit", "reject", "claim"})


def test_an_engineer_may_do_nothing(bob):
    actions = assert_agrees(small_refund(created_by=bob), bob, set())
    assert actions == Actions()


def test_an_admin_outside_the_group_decides_nothing(admin):
    actions = assert_agrees(small_refund(), admin, set())
    assert not actions.may_decide


def test_a_claim_by_another_holds_off_everyone_but_its_holder_and_an_admin(alice, dave, admin):
    approval = small_refund()
    assert approval.claim(by=dave)
    approval.refresh_from_db()

    held_off = assert_agrees(approval, alice, set())
    holder = assert_agrees(approval, dave, {"approve", "edit", "reject", "claim", "release"})
    assert_agrees(approval, admin, {"release"})
    assert held_off.may_decide and held_off.claimed_by_other and not held_off.claimed_by_me
    assert holder.claimed_by_me and not holder.claimed_by_other


def test_a_lapsed_claim_holds_no_one_off(alice, dave, admin):
    approval = small_refund()
    assert approval.claim(by=dave)
    Approval.objects.filter(pk=approval.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    approval.refresh_from_db()

    assert_agrees(approval, alice, {"approve", "edit", "reject", "claim"})
    assert_agrees(approval, admin, set())


def test_a_call_without_a_body_is_answered_with_a_typed_result_or_rejected(alice):
    assert_agrees(customer_email(), alice, {"respond", "reject", "claim"})


def test_arguments_outside_the_schema_are_edited_or_rejected_never_approved_as_they_are(alice):
    approval = off_schema_refund()
    assert approval.schema_error

    assert_agrees(approval, alice, {"edit", "reject", "claim"})


def test_a_tool_that_allows_only_rejection_offers_only_that(alice):
    approval = small_refund()
    Approval.objects.filter(pk=approval.pk).update(allowed_decisions=["reject"])
    approval.refresh_from_db()

    assert_agrees(approval, alice, {"reject", "claim"})


def test_a_decided_call_offers_nothing_to_anyone(alice, dave, admin):
    approval = small_refund()
    assert approval.reject(by=dave, shown_hash=approval.arguments_hash, reason="No.")

    for user in (alice, dave, admin):
        assert assert_agrees(approval, user, set()) == Actions()


def test_it_reads_the_progress_a_list_annotates_without_a_query_per_row(alice, dave, django_assert_num_queries):
    approval = big_refund(created_by=alice)
    approval.approve(by=dave, shown_hash=approval.arguments_hash)
    alice = User.objects.get(pk=alice.pk)
    alice.group_names = frozenset(alice.groups.values_list("name", flat=True))  # as RoleBackend gives it
    rows = list(Approval.objects.filter(pk=approval.pk).with_progress(alice).select_related("run", "claimed_by"))

    with django_assert_num_queries(0):
        actions = rows[0].actions_for(alice)
    assert actions.creator_blocked and actions.can_reject and not actions.can_approve
    assert actions == approval.actions_for(User.objects.get(pk=alice.pk))


def test_who_approved_the_arguments_shown_may_not_replace_them_with_an_edit(dave):
    approval = big_refund()
    assert approval.approve(by=dave, shown_hash=approval.arguments_hash)
    edited = {"order_id": "A-1003", "amount": 1400, "reason": "Broken"}

    with pytest.raises(DecisionRefused, match="You approved this already"):
        approval.approve(by=dave, shown_hash=approval.arguments_hash, arguments=edited)
    approval.refresh_from_db()
    assert approval.edited_arguments is None and approval.approvals_so_far() == 1
