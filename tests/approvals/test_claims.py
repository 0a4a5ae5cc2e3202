"""Claims: a lease on a pending call, visible to others, lapsing by itself."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import Approval, DecisionRefused
from audit.models import AuditEvent
from tests.conftest import make_user
from tests.factories import requested_call


def refund(amount=249, call_id="call_1"):
    return requested_call("issue_refund", {"order_id": "A-1", "amount": amount, "reason": "x"}, call_id=call_id)


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


def test_a_claim_keeps_others_from_deciding_until_it_lapses(alice, dave):
    approval = refund()

    assert approval.claim(by=alice)
    assert not approval.claim(by=dave)
    with pytest.raises(DecisionRefused, match="alice has claimed this call"):
        approval.approve(by=dave, shown_hash=approval.arguments_hash)

    Approval.objects.filter(pk=approval.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    approval.refresh_from_db()
    assert not approval.is_claimed
    assert approval.approve(by=dave, shown_hash=approval.arguments_hash)


def test_the_holder_renews_and_releases_a_claim_and_an_admin_can_free_it(alice, dave):
    approval = refund()
    admin = User.objects.create_superuser("root", "root@example.com", "pw")

    assert approval.claim(by=alice) and approval.claim(by=alice)
    assert not approval.release(by=dave)
    assert approval.release(by=alice) and approval.claimed_by is None
    approval.claim(by=dave)
    assert approval.release(by=admin)
    verbs = list(AuditEvent.objects.filter(object_id=str(approval.pk)).values_list("verb", flat=True))
    assert verbs.count("approval.claimed") == 3 and verbs.count("approval.released") == 2


def test_claim_next_hands_out_the_oldest_unclaimed_call_the_reviewer_may_decide(alice, dave):
    first, second, third = (refund(call_id=f"call_{i}") for i in range(3))

    assert Approval.claim_next(by=alice) == first
    assert Approval.claim_next(by=dave) == second
    assert Approval.claim_next(by=alice) == third
    assert Approval.claim_next(by=dave) is None


def test_claim_next_skips_calls_the_reviewer_already_approved(alice, dave):
    four_eyes = refund(amount=1450, call_id="call_big")
    four_eyes.approve(by=alice, shown_hash=four_eyes.arguments_hash)

    assert Approval.claim_next(by=alice) is None
    assert Approval.claim_next(by=dave) == four_eyes


def test_someone_outside_the_group_cannot_claim(bob):
    approval = refund()

    with pytest.raises(Exception, match="reviewers group"):
        approval.claim(by=bob)
