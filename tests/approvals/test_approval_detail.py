from django.utils import timezone

from approvals.models import Approval
from runs.models import Run
from tests.factories import make_interaction, make_pending_approval, make_step, text_output


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


def test_a_reviewer_gets_both_forms_with_the_shown_hash(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' in body
    assert f'action="/approvals/{approval.pk}/reject/"' in body
    assert body.count(f'name="shown_hash" value="{approval.arguments_hash}"') == 2
    assert 'name="reason"' in body
    assert 'name="result"' not in body


def test_a_call_without_a_body_asks_for_the_result(client, alice):
    approval = make_pending_approval(name="update_crm_ticket", requires_manual_result=True)
    client.force_login(alice)
    body = client.get(url(approval)).content.decode()
    assert "Not a tool registered in Handoff" in body
    assert 'name="result"' in body
    assert "required" in body.split('name="result"')[1].split(">")[0]


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
