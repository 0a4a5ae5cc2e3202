"""Claim, release and claim-next from the queue and the approval page."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import Approval
from audit.models import AuditEvent
from tests.conftest import make_user
from tests.factories import requested_call


def refund(amount=249, call_id="call_1", **kwargs):
    return requested_call("issue_refund", {"order_id": "A-1", "amount": amount, "reason": "x"}, call_id=call_id, **kwargs)


def claim_url(approval):
    return f"/approvals/{approval.pk}/claim/"


def release_url(approval):
    return f"/approvals/{approval.pk}/release/"


CLAIM_NEXT = "/approvals/claim-next/"


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


@pytest.fixture
def admin(db):
    return User.objects.create_superuser("root", "root@example.com", "pw")


# --- Claim -----------------------------------------------------------------------------------


def test_a_reviewer_claims_a_call(client, alice):
    approval = refund()
    client.force_login(alice)
    response = client.post(claim_url(approval), follow=True)
    approval.refresh_from_db()
    assert approval.claimed_by == alice and approval.is_claimed
    assert response.redirect_chain == [(f"/approvals/{approval.pk}/", 302)]
    until = timezone.localtime(approval.claimed_until).strftime("%H:%M")
    assert f"You hold issue_refund #{approval.pk} until {until}." in response.content.decode()
    assert AuditEvent.objects.filter(verb="approval.claimed", actor="alice").exists()


def test_claiming_from_the_queue_goes_back_to_the_queue(client, alice):
    approval = refund()
    client.force_login(alice)
    response = client.post(claim_url(approval), {"next": f"/approvals/?tool=issue_refund#approval-row-{approval.pk}"})
    assert response["Location"] == f"/approvals/?tool=issue_refund#approval-row-{approval.pk}"


def test_a_call_someone_else_holds_is_not_taken(client, alice, dave):
    approval = refund()
    approval.claim(by=dave)
    client.force_login(alice)
    response = client.post(claim_url(approval), follow=True)
    approval.refresh_from_db()
    assert approval.claimed_by == dave
    assert "dave has claimed this call until" in response.content.decode()


def test_a_lapsed_claim_can_be_taken(client, alice, dave):
    approval = refund()
    approval.claim(by=dave)
    Approval.objects.filter(pk=approval.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    client.force_login(alice)
    client.post(claim_url(approval))
    approval.refresh_from_db()
    assert approval.claimed_by == alice


def test_a_decided_call_cannot_be_claimed(client, alice):
    approval = refund()
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    client.force_login(alice)
    response = client.post(claim_url(approval), follow=True)
    assert "Already decided: Approved. Nothing to claim." in response.content.decode()
    approval.refresh_from_db()
    assert approval.claimed_by is None


def test_someone_outside_the_group_gets_403_on_claim(client, bob):
    approval = refund()
    client.force_login(bob)
    assert client.post(claim_url(approval)).status_code == 403
    approval.refresh_from_db()
    assert approval.claimed_by is None


def test_claim_redirects_anonymous_users_to_sign_in(client, db):
    approval = refund()
    response = client.post(claim_url(approval))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_claim_refuses_get(client, alice):
    approval = refund()
    client.force_login(alice)
    assert client.get(claim_url(approval)).status_code == 405


def test_an_htmx_claim_redirects_the_client(client, alice):
    approval = refund()
    client.force_login(alice)
    response = client.post(claim_url(approval), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/approvals/{approval.pk}/"


def test_claiming_a_missing_call_is_not_found(client, alice):
    client.force_login(alice)
    assert client.post("/approvals/999999/claim/").status_code == 404


# --- Release ---------------------------------------------------------------------------------


def test_the_holder_releases_a_claim(client, alice):
    approval = refund()
    approval.claim(by=alice)
    client.force_login(alice)
    response = client.post(release_url(approval), follow=True)
    approval.refresh_from_db()
    assert approval.claimed_by is None and not approval.is_claimed
    assert f"Released your claim on issue_refund #{approval.pk}." in response.content.decode()


def test_another_reviewer_gets_403_on_release(client, alice, dave):
    approval = refund()
    approval.claim(by=dave)
    client.force_login(alice)
    assert client.post(release_url(approval)).status_code == 403
    approval.refresh_from_db()
    assert approval.claimed_by == dave


def test_an_admin_releases_someone_elses_claim(client, admin, dave):
    approval = refund()
    approval.claim(by=dave)
    client.force_login(admin)
    response = client.post(release_url(approval), {"next": "/approvals/"}, follow=True)
    approval.refresh_from_db()
    assert approval.claimed_by is None
    assert response.redirect_chain == [("/approvals/", 302)]
    assert f"Released dave&#x27;s claim on issue_refund #{approval.pk}." in response.content.decode()
    assert AuditEvent.objects.filter(verb="approval.released", actor="root").exists()


def test_releasing_an_unclaimed_call_changes_nothing(client, bob):
    approval = refund()
    client.force_login(bob)
    response = client.post(release_url(approval), follow=True)
    assert "No one holds a claim on this call." in response.content.decode()
    assert not AuditEvent.objects.filter(verb="approval.released").exists()


def test_release_refuses_get(client, alice):
    approval = refund()
    client.force_login(alice)
    assert client.get(release_url(approval)).status_code == 405


def test_release_redirects_anonymous_users_to_sign_in(client, db):
    approval = refund()
    assert client.post(release_url(approval))["Location"].startswith("/accounts/login/")


def test_an_htmx_release_redirects_the_client(client, alice):
    approval = refund()
    approval.claim(by=alice)
    client.force_login(alice)
    response = client.post(release_url(approval), HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == f"/approvals/{approval.pk}/"


# --- Claim next ------------------------------------------------------------------------------


def test_claim_next_takes_the_oldest_unclaimed_call_and_opens_it(client, alice, dave):
    first, second, third = (refund(call_id=f"call_{i}") for i in range(3))
    first.claim(by=dave)
    client.force_login(alice)
    response = client.post(CLAIM_NEXT)
    assert response["Location"] == f"/approvals/{second.pk}/"
    second.refresh_from_db()
    assert second.claimed_by == alice
    third.refresh_from_db()
    assert third.claimed_by is None


def test_claim_next_keeps_to_the_queues_filters(client, alice):
    refund(call_id="call_small")
    email = requested_call("send_customer_email", {"to": "a@example.com", "subject": "Hi", "body": "x"})
    client.force_login(alice)
    response = client.post(CLAIM_NEXT, {"tool": "send_customer_email"})
    assert response["Location"] == f"/approvals/{email.pk}/"


def test_claim_next_with_nothing_left_goes_back_to_the_queue(client, alice):
    client.force_login(alice)
    response = client.post(CLAIM_NEXT, {"tool": "issue_refund"}, follow=True)
    assert response.redirect_chain == [("/approvals/?tool=issue_refund", 302)]
    assert "Nothing left for you to claim with these filters." in response.content.decode()


def test_claim_next_skips_calls_of_other_groups(client, alice):
    approval = refund()
    Approval.objects.filter(pk=approval.pk).update(approver_group="finance-leads")
    client.force_login(alice)
    client.post(CLAIM_NEXT)
    approval.refresh_from_db()
    assert approval.claimed_by is None


def test_someone_who_may_decide_nothing_gets_403_on_claim_next(client, bob):
    refund()
    client.force_login(bob)
    assert client.post(CLAIM_NEXT).status_code == 403


def test_claim_next_refuses_get(client, alice):
    client.force_login(alice)
    assert client.get(CLAIM_NEXT).status_code == 405


def test_claim_next_redirects_anonymous_users_to_sign_in(client, db):
    assert client.post(CLAIM_NEXT)["Location"].startswith("/accounts/login/")


def test_an_htmx_claim_next_redirects_the_client(client, alice):
    approval = refund()
    client.force_login(alice)
    response = client.post(CLAIM_NEXT, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == f"/approvals/{approval.pk}/"


def test_a_member_of_the_admins_group_releases_someone_elses_claim_too(client, dave):
    erin = make_user("erin", "admins")
    approval = refund()
    approval.claim(by=dave)
    client.force_login(erin)

    client.post(release_url(approval))

    approval.refresh_from_db()
    assert approval.claimed_by is None
    assert AuditEvent.objects.filter(verb="approval.released", actor="erin").exists()
