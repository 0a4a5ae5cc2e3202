import pytest
from django.contrib import messages

from approvals.models import Approval, arguments_hash
from audit.models import AuditEvent
from tests.conftest import make_user
from tests.factories import make_pending_approval, requested_call


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
    assert response.status_code == 409  # the lost race: never a 500, nor a success
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


def test_a_rejection_is_confirmed_as_a_warning_not_a_success(client, alice, approval):
    client.force_login(alice)
    response = client.post(
        reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "Over the limit"}, follow=True
    )
    assert [(m.level, str(m)) for m in response.context["messages"]] == [
        (messages.WARNING, "Rejected issue_refund: the model is told why.")
    ]
    body = response.content.decode()
    assert (
        '<li class="message message-warning" role="status">'
        "Rejected issue_refund: the model is told why.</li>"
    ) in body
    assert "message-success" not in body


def test_an_approval_is_still_confirmed_as_a_success(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}, follow=True)
    assert [m.level for m in response.context["messages"]] == [messages.SUCCESS]


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
    assert response.status_code == 409
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


# --- Edit, then approve ----------------------------------------------------------------------

EDITED = '{"order_id": "A-1003", "amount": 900, "reason": "Damaged, partial refund"}'


def test_a_reviewer_edits_the_arguments_then_approves(client, alice, approval):
    original = dict(approval.arguments)
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "arguments": EDITED}, follow=True)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
    assert approval.arguments == original  # the model's, kept
    assert approval.edited_arguments == {"order_id": "A-1003", "amount": 900, "reason": "Damaged, partial refund"}
    assert approval.current_arguments["amount"] == 900
    assert "Approved issue_refund with edited arguments" in response.content.decode()
    assert AuditEvent.objects.get(verb="approval.edited").after["arguments"] == approval.edited_arguments
    decision = approval.decisions.get()
    assert decision.arguments == approval.edited_arguments


def test_edited_arguments_that_are_not_json_are_refused_in_the_form(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "arguments": "{amount: 900"})
    body = response.content.decode()
    assert response.status_code == 400
    assert "This is not valid JSON" in body
    assert '<details class="edit-arguments" open>' in body
    # What was typed is kept, to be corrected.
    assert "{amount: 900" in body.split('name="arguments"')[1].split("</textarea>")[0]
    approval.refresh_from_db()
    assert approval.is_pending and approval.edited_arguments is None


def test_edited_arguments_outside_the_schema_are_refused_in_the_form(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {
        "shown_hash": approval.arguments_hash,
        "arguments": '{"order_id": "A-1003", "amount": -5, "reason": "x"}',
    })
    body = response.content.decode()
    assert response.status_code == 400
    assert "The edited arguments do not fit issue_refund&#x27;s schema (amount: -5 is less than the minimum of 0)" in body
    approval.refresh_from_db()
    assert approval.is_pending and approval.edited_arguments is None
    assert not approval.decisions.exists()


def test_edited_arguments_must_be_an_object(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "arguments": "[1, 2]"})
    assert response.status_code == 400
    assert "must be a JSON object" in response.content.decode()


def test_an_edit_on_stale_arguments_is_refused_with_the_current_ones(client, alice, approval):
    Approval.objects.filter(pk=approval.pk).update(
        edited_arguments={"order_id": "A-1003", "amount": 10, "reason": "x"},
        arguments_hash=arguments_hash({"order_id": "A-1003", "amount": 10, "reason": "x"}),
    )
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "arguments": EDITED})
    body = response.content.decode()
    assert response.status_code == 409
    assert "The arguments changed since they were shown" in body
    approval.refresh_from_db()
    assert f'name="shown_hash" value="{approval.arguments_hash}"' in body
    assert "&quot;amount&quot;: 10" in body.split('name="arguments"')[1].split("</textarea>")[0]
    assert approval.is_pending


def test_an_edit_the_tool_does_not_allow_is_refused(client, alice, approval):
    Approval.objects.filter(pk=approval.pk).update(allowed_decisions=["approve", "reject"])
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "arguments": EDITED})
    assert response.status_code == 409
    assert "does not allow this decision (edit)" in response.content.decode()
    approval.refresh_from_db()
    assert approval.is_pending and approval.edited_arguments is None


# --- Four-eyes, groups, claims, next ---------------------------------------------------------


def big_refund(**kwargs):
    return requested_call("issue_refund", {"order_id": "A-1003", "amount": 1450, "reason": "Broken"}, **kwargs)


def test_four_eyes_needs_a_second_reviewer_through_the_view(client, alice):
    dave = make_user("dave", "reviewers")
    approval = big_refund()
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}, follow=True)
    assert "1 of 2 approvals, waiting for another reviewer" in response.content.decode()
    approval.refresh_from_db()
    assert approval.is_pending
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash})
    assert response.status_code == 409
    assert "You approved this already" in response.content.decode()
    client.force_login(dave)
    client.post(approve_url(approval), {"shown_hash": approval.arguments_hash})
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED


def test_the_runs_creator_gets_403_where_policy_forbids_it(client, alice):
    approval = big_refund(created_by=alice)
    client.force_login(alice)
    assert client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}).status_code == 403
    approval.refresh_from_db()
    assert approval.is_pending


def test_an_escalated_call_is_for_its_new_group(client, alice):
    lead = make_user("erin", "finance-leads")
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(approver_group="finance-leads")
    client.force_login(alice)
    assert client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}).status_code == 403
    client.force_login(lead)
    assert client.post(approve_url(approval), {"shown_hash": approval.arguments_hash}).status_code == 302
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED and approval.decided_by == lead


def test_a_call_claimed_by_someone_else_is_refused(client, alice, approval):
    dave = make_user("dave", "reviewers")
    approval.claim(by=dave)
    client.force_login(alice)
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "No"})
    assert response.status_code == 409
    assert "dave has claimed this call" in response.content.decode()


def test_a_decision_from_the_queue_goes_back_to_the_queue(client, alice, approval):
    client.force_login(alice)
    response = client.post(approve_url(approval), {"shown_hash": approval.arguments_hash, "next": "/approvals/?tool=issue_refund"})
    assert response["Location"] == "/approvals/?tool=issue_refund"


def test_a_next_address_on_another_site_is_ignored(client, alice, approval):
    client.force_login(alice)
    response = client.post(reject_url(approval), {"shown_hash": approval.arguments_hash, "reason": "No",
                                                  "next": "https://evil.example.com/"})
    assert response["Location"] == f"/approvals/{approval.pk}/"
