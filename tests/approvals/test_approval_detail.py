from datetime import timedelta

from django.utils import timezone

from approvals.models import Approval
from tests.conftest import make_user
from tests.factories import make_pending_approval, make_step, requested_call, text_output


def url(approval: Approval) -> str:
    return f"/approvals/{approval.pk}/"


def test_it_shows_what_is_being_decided(client, alice):
    approval = make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0, "reason": "Damaged"})
    client.force_login(alice)
    response = client.get(url(approval))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Refund a customer for an order. Amount in USD." in body  # the tool's description
    assert "&quot;amount&quot;: 1450.0" in body
    assert "Refunds above $200 need a reviewer" in body
    assert f'href="/runs/{approval.run_id}/"' in body
    assert "pill-waiting_for_approval" in body
    assert approval.call_id in body
    assert approval.interaction.interaction_id in body


def test_a_reviewer_gets_approve_edit_and_reject_with_the_shown_hash(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert body.count(f'action="/approvals/{approval.pk}/approve/"') == 2  # as shown, and edited
    assert f'action="/approvals/{approval.pk}/reject/"' in body
    assert body.count(f'name="shown_hash" value="{approval.arguments_hash}"') == 3
    assert 'name="reason"' in body
    assert 'name="result"' not in body


def test_the_edit_form_is_prefilled_with_the_arguments_in_force(client, alice):
    approval = make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0, "reason": "Damaged"})
    Approval.objects.filter(pk=approval.pk).update(edited_arguments={"order_id": "A-1003", "amount": 900.0, "reason": "Damaged"})
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    textarea = body.split('name="arguments"')[1].split("</textarea>")[0]
    assert "&quot;amount&quot;: 900.0" in textarea
    assert "Edit arguments…" in body


def test_only_the_decisions_the_tool_allows_are_offered(client, alice):
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(allowed_decisions=["reject"])
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' not in body
    assert f'action="/approvals/{approval.pk}/reject/"' in body


def test_a_call_without_a_body_asks_for_the_result(client, alice):
    approval = make_pending_approval(name="update_crm_ticket", requires_manual_result=True)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "Not a tool registered in Handoff" in body
    assert 'name="result"' in body
    assert "required" in body.split('name="result"')[1].split(">")[0]
    assert ">Send this result</button>" in body
    assert 'name="arguments"' not in body  # no body to run edited arguments with


def test_someone_who_may_not_decide_sees_the_call_but_no_forms(client, carol):
    approval = make_pending_approval()
    client.force_login(carol)
    body = client.get(url(approval)).content.decode()
    assert "issue_refund" in body
    assert "/approve/" not in body
    assert "/reject/" not in body
    assert "Only members of the reviewers group may decide" in body


def test_a_decided_call_shows_the_outcome(client, alice, bob):
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(
        status=Approval.Status.REJECTED, decided_by=alice, decided_at=timezone.now(), reason="Needs a manager",
        result={"error": "A reviewer rejected this call: Needs a manager"}, result_is_error=True,
        settled_at=timezone.now(),
    )
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "Outcome" in body
    assert "pill-rejected" in body
    assert "alice" in body
    assert "Needs a manager" in body
    assert "A reviewer rejected this call: Needs a manager" in body
    assert "/approve/" not in body


def test_it_shows_the_steps_before_the_call(client, bob):
    approval = make_pending_approval()
    # The model spoke before asking; what it says after the call is not context.
    interaction = approval.interaction
    call = interaction.steps.get()
    call.index = 1
    call.save()
    make_step(interaction, text_output("Let me check that order."), index=0)
    make_step(interaction, text_output("AFTER THE CALL"), index=2)
    client.force_login(bob)
    body = client.get(url(approval)).content.decode()
    assert "Before this call" in body
    assert "Let me check that order." in body
    assert "AFTER THE CALL" not in body


def test_it_escapes_the_arguments(client, alice):
    approval = make_pending_approval(arguments={"note": "<script>alert(1)</script>"})
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_an_htmx_request_gets_only_the_decision(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    response = client.get(url(approval), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="approval-decision"')
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_it_answers_404_for_a_missing_approval(client, alice):
    client.force_login(alice)
    assert client.get("/approvals/999999/").status_code == 404


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    approval = make_pending_approval()
    response = client.get(url(approval))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_refuses_post(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    assert client.post(url(approval)).status_code == 405


# --- What is being decided -------------------------------------------------------------------


def test_it_shows_the_models_stated_reason_from_before_the_call(client, bob):
    approval = make_pending_approval()
    interaction = approval.interaction
    call = interaction.steps.get()
    call.index = 2
    call.save()
    make_step(interaction, {"type": "thought", "signature": "c2ln",
                            "summary": [{"type": "text", "text": "The order totals $1,450; a full refund fits."}]}, index=0)
    make_step(interaction, text_output("I will refund the broken monitor."), index=1)
    make_step(interaction, text_output("SAID AFTER THE CALL"), index=3)
    client.force_login(bob)
    body = client.get(url(approval)).content.decode()
    reason = body.split("The model's stated reason")[1].split("Why it waits")[0]
    assert "Thought summary" in reason
    assert "The order totals $1,450; a full refund fits." in reason
    assert "Model said" in reason
    assert "I will refund the broken monitor." in reason
    assert "SAID AFTER THE CALL" not in reason


def test_without_a_stated_reason_there_is_no_such_section(client, bob):
    approval = make_pending_approval()
    client.force_login(bob)
    assert "stated reason" not in client.get(url(approval)).content.decode()


def test_edited_arguments_are_shown_beside_the_models(client, bob):
    approval = make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0, "reason": "Damaged"})
    Approval.objects.filter(pk=approval.pk).update(edited_arguments={"order_id": "A-1003", "amount": 900.0, "reason": "Damaged"})
    client.force_login(bob)
    body = client.get(url(approval)).content.decode()
    original = body.split('class="json arguments arguments-original"')[1].split("</pre>")[0]
    edited = body.split('class="json arguments arguments-edited"')[1].split("</pre>")[0]
    assert "1450.0" in original and "900.0" in edited
    assert "The model's arguments" in body


def test_it_shows_four_eyes_progress_who_approved_deadline_and_group(client, alice):
    dave = make_user("dave", "reviewers")
    approval = requested_call("issue_refund", {"order_id": "A-1003", "amount": 1450, "reason": "Broken"})
    approval.approve(by=dave, shown_hash=approval.arguments_hash)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "1 of 2 (four-eyes: different people)" in body
    assert "Decisions so far · 1 of 2 approvals" in body
    assert "<strong>dave</strong>" in body
    assert "1h 59m left" in body or "2h 00m left" in body
    assert "then escalated to finance-leads" in body
    assert "reviewers group" in body
    assert "not whoever started or continued the run" in body
    # alice may still approve: she is the second pair of eyes.
    assert f'action="/approvals/{approval.pk}/approve/"' in body


def test_the_reviewer_who_approved_already_is_told_it_waits_for_another(client, alice):
    approval = requested_call("issue_refund", {"order_id": "A-1003", "amount": 1450, "reason": "Broken"})
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "You approved these arguments: the call waits for another reviewer" in body
    assert f'action="/approvals/{approval.pk}/approve/"' not in body
    assert f'action="/approvals/{approval.pk}/reject/"' in body


def test_the_runs_creator_may_reject_but_not_approve_where_policy_says_so(client, alice):
    approval = requested_call("issue_refund", {"order_id": "A-1003", "amount": 1450, "reason": "Broken"}, created_by=alice)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "you started or continued its run), so you may not approve it" in body
    assert f'action="/approvals/{approval.pk}/approve/"' not in body
    assert f'action="/approvals/{approval.pk}/reject/"' in body


def test_an_overdue_and_escalated_call_says_so(client, alice):
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(
        deadline_at=timezone.now() - timedelta(minutes=3), escalated_at=timezone.now() - timedelta(hours=1),
        approver_group="finance-leads",
    )
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "overdue by 3m 0" in body  # 3m 00s, or a second or so more
    assert "escalated" in body
    # Escalated to a group alice is not in: she sees it, and no forms.
    assert "Only members of the finance-leads group may decide this call" in body
    assert "/approve/" not in body


def test_a_finance_lead_decides_an_escalated_call(client, db):
    lead = make_user("erin", "finance-leads")
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(approver_group="finance-leads")
    client.force_login(lead)
    body = client.get(url(approval)).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' in body


# --- Claims on the page ----------------------------------------------------------------------


def test_an_unclaimed_call_offers_a_claim(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "No one has claimed this call." in body
    assert f'action="/approvals/{approval.pk}/claim/"' in body


def test_a_call_claimed_by_someone_else_shows_who_and_offers_no_decision(client, alice):
    dave = make_user("dave", "reviewers")
    approval = make_pending_approval()
    approval.claim(by=dave)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "<strong>dave</strong> has claimed this call until" in body
    assert "/approve/" not in body and "/reject/" not in body
    assert "/claim/" not in body and "/release/" not in body


def test_the_holder_may_renew_or_release_and_decide(client, alice):
    approval = make_pending_approval()
    approval.claim(by=alice)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "You hold this call" in body
    assert ">Renew claim</button>" in body
    assert f'action="/approvals/{approval.pk}/release/"' in body
    assert f'action="/approvals/{approval.pk}/approve/"' in body


def test_an_admin_may_release_someone_elses_claim(client, db):
    from django.contrib.auth.models import User

    dave = make_user("dave", "reviewers")
    approval = make_pending_approval()
    approval.claim(by=dave)
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    body = client.get(url(approval)).content.decode()
    assert ">Release dave's claim</button>" in body


def test_a_decided_call_lists_the_decisions(client, alice):
    approval = requested_call("issue_refund", {"order_id": "A-1003", "amount": 249, "reason": "Broken"})
    approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="Photo missing")
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "Outcome" in body
    assert "Decisions so far" in body
    assert "“Photo missing”" in body
