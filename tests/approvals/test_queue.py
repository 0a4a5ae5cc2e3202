from django.utils import timezone

from approvals.models import Approval
from tests.factories import function_call, make_approval, make_interaction, make_pending_approval, make_run, make_step

URL = "/approvals/"


def test_it_lists_pending_approvals_oldest_first(client, bob):
    first = make_pending_approval(arguments={"order_id": "A-1001", "amount": 249.0})
    second = make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0})
    client.force_login(bob)
    response = client.get(URL)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("A-1001") < body.index("A-1003")
    assert f'href="/runs/{first.run_id}/"' in body
    assert f'href="/runs/{second.run_id}/"' in body
    assert "Refunds above $200 need a reviewer" in body
    assert "just now" in body


def test_it_previews_arguments_as_compact_truncated_json(client, bob):
    make_pending_approval(arguments={"note": "x" * 500})
    client.force_login(bob)
    body = client.get(URL).content.decode()
    cell = body.split('class="mono clip args-cell"')[1].split(">", 1)[1].split("</td>")[0]
    assert cell.startswith("{&quot;note&quot;: &quot;xxx")
    assert cell.endswith("x…")
    assert cell.count("x") < 90


def test_it_shows_recent_decisions_with_who_and_why(client, alice, bob):
    run = make_run()
    interaction = make_interaction(run)
    make_approval(interaction, make_step(interaction, function_call("delete_account")),
                  status=Approval.Status.REJECTED, decided_by=alice, decided_at=timezone.now(),
                  reason="Never delete without a ticket")
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert "Recently decided" in body
    assert "delete_account" in body
    assert "pill-rejected" in body
    assert ">alice<" in body
    assert "Never delete without a ticket" in body


def test_reviewers_see_the_action_buttons(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' in body
    assert f'value="{approval.arguments_hash}"' in body
    assert ">Review</a>" in body


def test_a_call_needing_a_typed_result_has_no_one_click_approve(client, alice):
    approval = make_pending_approval(name="send_email", requires_manual_result=True)
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' not in body
    assert ">Review</a>" in body


def test_others_see_the_queue_without_buttons(client, bob):
    approval = make_pending_approval()
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert "issue_refund" in body
    assert "/approve/" not in body
    assert f'href="/approvals/{approval.pk}/">View</a>' in body


def test_it_polls_while_open(client, bob):
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert 'hx-get="/approvals/" hx-trigger="every 2s" hx-swap="outerHTML"' in body


def test_an_htmx_request_gets_only_the_queue(client, bob):
    make_pending_approval()
    client.force_login(bob)
    response = client.get(URL, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="approval-queue"')
    assert "<html" not in body
    assert "issue_refund" in body
    assert "HX-Request" in response["Vary"]


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_refuses_post(client, alice):
    client.force_login(alice)
    assert client.post(URL).status_code == 405
