import pytest

from approvals.models import Approval, AuditEvent
from tests.conftest import make_user
from tests.factories import make_pending_approval


def approve_url(approval: Approval) -> str:
    return f"/approvals/{approval.pk}/approve/"


def reject_url(approval: Approval) -> str:
    return f"/approvals/{approval.pk}/reject/"


@pytest.fixture
def approval(db):
    return make_pending_approval()


# --- Approve ---------------------------------------------------------------------------------


def test_a_reviewer_approves_a_call(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}, follow=True)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
    assert approval.decided_by == alice
    assert response.redirect_chain == [(f"/approvals/{approval.pk}/", 302)]
    assert "Approved issue_refund" in response.content.decode()
    event = AuditEvent.objects.get(verb="approval.approved")
    assert event.actor == "alice"
    assert event.object_id == str(approval.pk)


def test_approving_with_a_typed_result_settles_the_call(client, alice):
    approval = make_pending_approval(name="send_customer_email", requires_manual_result=True)
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "result": '{"sent": true}'})
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
    assert approval.result == {"sent": True}
    assert approval.settled_at is not None
    assert approval.run.interactions.count() == 2  # the follow-up carrying the result


def test_a_typed_result_that_is_not_json_is_refused_with_a_clear_error(client, alice):
    approval = make_pending_approval(name="send_customer_email", requires_manual_result=True)
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "result": "{sent: yes}"})
    assert response.status_code == 400
    assert "This is not valid JSON" in response.content.decode()
    approval.refresh_from_db()
    assert approval.is_pending
    assert not AuditEvent.objects.filter(verb="approval.approved").exists()


def test_a_missing_typed_result_is_refused(client, alice):
    approval = make_pending_approval(name="send_customer_email", requires_manual_result=True)
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "result": ""})
    assert response.status_code == 400
    approval.refresh_from_db()
    assert approval.is_pending


def test_a_stale_shown_hash_is_refused_and_changes_nothing(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": "0" * 64})
    assert response.status_code == 409
    body = response.content.decode()
    assert "The arguments changed since they were shown" in body
    # The page offers the current arguments again, with their hash.
    assert f'name="shown_hash" value="{approval.arguments_hash}"' in body
    approval.refresh_from_db()
    assert approval.is_pending
    assert approval.decided_by is None
    assert not AuditEvent.objects.filter(verb__startswith="approval.a").exists()


def test_a_second_approval_does_not_change_who_decided(client, alice, approval):
    dave = make_user("dave", "reviewers")
    client.force_login(alice)
    client.post(approve_url(approval), {"shown_hash": approval.arguments_hash})
    client.force_login(dave)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}, follow=True)
    approval.refresh_from_db()
    assert approval.decided_by == alice
    assert "Already decided by alice" in response.content.decode()
    assert AuditEvent.objects.filter(verb="approval.approved").count() == 1


def test_someone_who_may_not_decide_gets_403_on_approve(client, bob, approval):
    client.force_login(bob)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash})
    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.is_pending


def test_an_auditor_may_not_approve_either(client, carol, approval):
    client.force_login(carol)
    assert client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}).status_code == 403


def test_an_htmx_approve_redirects_the_client(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/approvals/{approval.pk}/"


def test_an_htmx_approve_that_is_refused_gets_only_the_decision_partial(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": "stale"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 409
    assert body.lstrip().startswith('<section id="approval-decision"')
    assert "<html" not in body


def test_approve_refuses_get(client, alice, approval):
    client.force_login(alice)
    assert client.get(approve_url(approval)).status_code == 405


def test_approve_redirects_anonymous_users_to_sign_in(client, approval):
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    approval.refresh_from_db()
    assert approval.is_pending


# --- Reject ----------------------------------------------------------------------------------


def test_a_reviewer_rejects_a_call_with_a_reason(client, alice, approval):
    client.force_login(alice)
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "Over the limit"})
    assert response.status_code == 302
    assert response["Location"] == f"/approvals/{approval.pk}/"
    approval.refresh_from_db()
    assert approval.status == Approval.Status.REJECTED
    assert approval.decided_by == alice
    assert approval.reason == "Over the limit"
    assert approval.result_is_error
    event = AuditEvent.objects.get(verb="approval.rejected")
    assert event.after["reason"] == "Over the limit"
    assert event.actor == "alice"


def test_a_rejection_without_a_reason_is_refused(client, alice, approval):
    client.force_login(alice)
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "   "})
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    approval.refresh_from_db()
    assert approval.is_pending


def test_a_rejection_with_a_stale_hash_is_refused_and_changes_nothing(client, alice, approval):
    client.force_login(alice)
    response = client.post(reject_url(approval), {"shown_hash": "f" * 64, "reason": "No"})
    assert response.status_code == 409
    approval.refresh_from_db()
    assert approval.is_pending
    assert not AuditEvent.objects.filter(verb="approval.rejected").exists()


def test_rejecting_an_approved_call_changes_nothing(client, alice, approval):
    client.force_login(alice)
    client.post(approve_url(approval), {"shown_hash": approval.arguments_hash})
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "Too late"},
                           follow=True)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
    assert approval.reason == ""
    assert "Already decided by alice" in response.content.decode()


def test_someone_who_may_not_decide_gets_403_on_reject(client, bob, approval):
    client.force_login(bob)
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "No"})
    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.is_pending


def test_an_htmx_reject_redirects_the_client(client, alice, approval):
    client.force_login(alice)
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "No"},
                           HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == f"/approvals/{approval.pk}/"


def test_reject_refuses_get(client, alice, approval):
    client.force_login(alice)
    assert client.get(reject_url(approval)).status_code == 405


def test_deciding_a_missing_approval_is_not_found(client, alice):
    client.force_login(alice)
    assert client.post("/approvals/999999/reject/", {"shown_hash": "x", "reason": "No"}).status_code == 404
