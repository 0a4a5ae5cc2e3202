import re
from datetime import timedelta
from itertools import product

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Approval
from tests.conftest import make_user
from tests.factories import (
    function_call, make_approval, make_interaction, make_pending_approval, make_run, make_step, requested_call,
)

URL = "/approvals/"


def refund(amount=249, **kwargs):
    return requested_call("issue_refund", {"order_id": "A-1003", "amount": amount, "reason": "Broken"}, **kwargs)


def tab_counts(body: str) -> dict[str, int]:
    return {state: int(n) for state, n in re.findall(r'data-state="(\w+)">\w+ <span class="count">(\d+)</span>', body)}


def listed(body: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="approval-row-(\d+)"', body)]


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


def test_it_lists_pending_approvals_oldest_first(client, bob):
    first = make_pending_approval(arguments={"order_id": "A-1001", "amount": 249.0})
    second = make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0})
    client.force_login(bob)
    response = client.get(URL)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("A-1001") < body.index("A-1003")
    assert listed(body) == [first.pk, second.pk]
    assert f'href="/runs/{first.run_id}/"' in body
    assert f'href="/runs/{second.run_id}/"' in body
    assert "Refunds above $200 need a reviewer" in body
    assert "just now" in body


def args_cell(body: str) -> str:
    return body.split('class="args-cell"')[1].split(">", 1)[1].split("</td>")[0]


def test_without_a_summary_it_previews_arguments_as_compact_truncated_json(client, bob):
    make_pending_approval(arguments={"note": "x" * 500})  # not issue_refund's schema: no summary
    client.force_login(bob)
    cell = args_cell(client.get(URL).content.decode())
    assert "call-summary" not in cell
    preview = cell.split('<summary class="mono small"')[1].split(">", 1)[1].split("</summary>")[0]
    assert preview.startswith("{&quot;note&quot;: &quot;xxx")
    assert preview.endswith("x…")
    assert preview.count("x") < 90
    # The full arguments are one click away, in the same cell.
    assert cell.count("x") > 500


def test_the_tools_summary_line_comes_first_with_the_full_arguments_one_click_away(client, bob):
    make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0, "reason": "Arrived broken"})
    client.force_login(bob)
    cell = args_cell(client.get(URL).content.decode())
    assert '<div class="call-summary">Refund $1,450.00 on order A-1003: Arrived broken</div>' in cell
    assert cell.index("call-summary") < cell.index("<details")
    assert "&quot;amount&quot;: 1450.0" in cell.split("<pre")[1]


def test_the_summary_follows_an_edit(client, bob):
    approval = make_pending_approval(arguments={"order_id": "A-1003", "amount": 1450.0, "reason": "Broken"})
    Approval.objects.filter(pk=approval.pk).update(
        edited_arguments={"order_id": "A-1003", "amount": 150.0, "reason": "Partial refund"})
    client.force_login(bob)
    cell = args_cell(client.get(URL).content.decode())
    assert "Refund $150.00 on order A-1003: Partial refund" in cell
    assert "1,450" not in cell


def test_the_decided_tab_shows_who_decided_and_why_latest_first(client, alice, bob):
    run = make_run()
    interaction = make_interaction(run)
    now = timezone.now()
    older = make_approval(interaction, make_step(interaction, function_call("delete_account")),
                          status=Approval.Status.REJECTED, decided_by=alice, decided_at=now - timedelta(minutes=5),
                          reason="Never delete without a ticket")
    newer = make_approval(interaction, make_step(interaction, function_call("issue_refund")),
                          status=Approval.Status.APPROVED, decided_by=alice, decided_at=now)
    client.force_login(bob)
    body = client.get(URL, {"state": "decided"}).content.decode()
    assert listed(body) == [newer.pk, older.pk]
    assert "delete_account" in body
    assert "pill-rejected" in body
    assert ">alice<" in body
    assert "Never delete without a ticket" in body
    assert 'aria-current="page" data-state="decided"' in body


def test_the_expired_tab_lists_expired_calls(client, bob):
    expired = make_pending_approval()
    Approval.objects.filter(pk=expired.pk).update(status=Approval.Status.EXPIRED, decided_at=timezone.now(),
                                                  reason="No reviewer decided before the deadline.")
    make_pending_approval()
    client.force_login(bob)
    body = client.get(URL, {"state": "expired"}).content.decode()
    assert listed(body) == [expired.pk]
    assert "No reviewer decided before the deadline." in body


def test_reviewers_see_the_action_buttons(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' in body
    assert f'action="/approvals/{approval.pk}/reject/"' in body
    assert f'action="/approvals/{approval.pk}/claim/"' in body
    assert f'value="{approval.arguments_hash}"' in body
    assert ">Review</a>" in body
    assert 'action="/approvals/claim-next/"' in body
    assert f'name="ids" value="{approval.pk}" form="bulk-form"' in body


def test_a_call_needing_a_typed_result_has_no_one_click_approve(client, alice):
    approval = make_pending_approval(name="send_email", requires_manual_result=True)
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' not in body
    assert f'action="/approvals/{approval.pk}/reject/"' in body
    assert ">Review</a>" in body


def test_a_call_whose_tool_does_not_allow_plain_approval_has_no_one_click_approve(client, alice):
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(allowed_decisions=["edit", "reject"])
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/approve/"' not in body


def test_others_see_the_queue_without_buttons(client, bob):
    approval = make_pending_approval()
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert "issue_refund" in body
    assert "/approve/" not in body
    assert "/claim" not in body
    assert "/bulk/" not in body
    assert f'href="/approvals/{approval.pk}/" data-key="open">View</a>' in body


def test_it_shows_four_eyes_progress_deadline_and_claims(client, alice, dave):
    four_eyes = refund(1450, call_id="call_big")
    four_eyes.approve(by=dave, shown_hash=four_eyes.arguments_hash)
    claimed = refund(249, call_id="call_small")
    claimed.claim(by=dave)
    overdue = make_pending_approval()
    Approval.objects.filter(pk=overdue.pk).update(deadline_at=timezone.now() - timedelta(minutes=12))
    client.force_login(alice)
    body = client.get(URL).content.decode()
    row = {pk: body.split(f'<tr id="approval-row-{pk}"')[1].split("</tr>")[0] for pk in listed(body)}

    assert "four-eyes" in row[four_eyes.pk]
    assert "1 of 2 approvals" in row[four_eyes.pk]
    assert "1h 59m left" in row[four_eyes.pk] or "2h 00m left" in row[four_eyes.pk]
    until = timezone.localtime(Approval.objects.get(pk=claimed.pk).claimed_until).strftime("%H:%M")
    assert f'<span class="claim">dave</span> <span class="muted small">until {until}</span>' in row[claimed.pk]
    # Someone else holds it: alice may not claim or approve it meanwhile.
    assert "/claim/" not in row[claimed.pk] and "/approve/" not in row[claimed.pk]
    assert "/release/" not in row[claimed.pk]
    assert "is-overdue" in row[overdue.pk]
    assert "overdue by 12m 0" in row[overdue.pk]  # 12m 00s, or a second or so more


def test_an_admin_sees_release_on_someone_elses_claim(client, dave):
    approval = refund()
    approval.claim(by=dave)
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/release/"' in body


def test_the_holder_sees_release_on_their_own_claim(client, alice):
    approval = refund()
    approval.claim(by=alice)
    client.force_login(alice)
    body = client.get(URL).content.decode()
    assert f'action="/approvals/{approval.pk}/release/"' in body
    assert ">You</span>" in body
    assert f'action="/approvals/{approval.pk}/approve/"' in body


def test_it_filters_by_tool_run_age_assignee_policy_requirement_and_group(client, alice, dave):
    small = refund(249, call_id="c1")
    big = refund(1450, call_id="c2")
    email = requested_call("send_customer_email", {"to": "a@example.com", "subject": "Hi", "body": "Sorry"})
    old = refund(300, call_id="c3")
    Approval.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=5))
    small.claim(by=alice)
    big.claim(by=dave)
    Approval.objects.filter(pk=email.pk).update(approver_group="finance-leads")
    client.force_login(alice)

    def pks(**query):
        return set(listed(client.get(URL, query).content.decode()))

    assert pks(tool="send_customer_email") == {email.pk}
    assert pks(run=big.run_id) == {big.pk}
    assert pks(age="4h") == {old.pk}
    assert pks(age="1d") == set()
    assert pks(assignee="me") == {small.pk}
    assert pks(assignee="dave") == {big.pk}
    assert pks(policy="two reviewers") == {big.pk}
    assert pks(requirement="four-eyes") == {big.pk}
    assert pks(requirement="single") == {small.pk, email.pk, old.pk}
    assert pks(group="finance-leads") == {email.pk}
    assert pks(tool="issue_refund", requirement="single") == {small.pk, old.pk}


def test_calls_run_at_once_by_policy_are_not_in_the_queue(client, alice):
    auto = refund(50)
    assert auto.status == Approval.Status.AUTO
    client.force_login(alice)
    for state in ("pending", "claimed", "decided", "expired"):
        body = client.get(URL, {"state": state}).content.decode()
        assert auto.pk not in listed(body)


@pytest.fixture
def mixed_queue(alice, dave):
    """Calls in every state, from two tools, two groups and several ages."""
    now = timezone.now()
    calls = [refund(amount, call_id=f"call_{i}") for i, amount in enumerate([249, 300, 1450, 1500, 260, 700])]
    calls.append(requested_call("send_customer_email", {"to": "a@example.com", "subject": "Hi", "body": "x"}))
    calls[0].claim(by=alice)
    calls[2].claim(by=dave)
    calls[1].approve(by=alice, shown_hash=calls[1].arguments_hash)
    calls[3].approve(by=dave, shown_hash=calls[3].arguments_hash)  # 1 of 2: still pending
    calls[4].reject(by=dave, shown_hash=calls[4].arguments_hash, reason="No")
    Approval.objects.filter(pk=calls[5].pk).update(deadline_at=now - timedelta(seconds=1))
    calls[5].expire(now=now)
    Approval.objects.filter(pk__in=[calls[0].pk, calls[4].pk]).update(created_at=now - timedelta(hours=6))
    Approval.objects.filter(pk=calls[6].pk).update(approver_group="finance-leads")
    # A claim that lapsed is no claim.
    Approval.objects.filter(pk=calls[3].pk).update(claimed_by=alice, claimed_until=now - timedelta(minutes=1))
    return calls


FILTERS = [
    {},
    {"tool": "issue_refund"},
    {"tool": "send_customer_email"},
    {"age": "1h"},
    {"assignee": "me"},
    {"assignee": "dave"},
    {"requirement": "four-eyes"},
    {"requirement": "single", "tool": "issue_refund"},
    {"policy": "reviewer"},
    {"group": "finance-leads"},
    {"run": "999999"},
    {"run": "not-a-number"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "none")
def test_the_count_of_every_tab_is_the_length_of_its_list(client, alice, mixed_queue, filters):
    client.force_login(alice)
    counts = {}
    for state in ("pending", "claimed", "decided", "expired"):
        body = client.get(URL, {**filters, "state": state}).content.decode()
        counts = tab_counts(body)
        assert counts[state] == len(listed(body)), (state, filters)
        # Every tab's count agrees whichever tab is open.
        assert counts == tab_counts(client.get(URL, {**filters, "state": "pending"}).content.decode())
    if not filters:
        assert counts == {"pending": 4, "claimed": 2, "decided": 2, "expired": 1}


def test_an_invalid_filter_is_shown_and_left_out(client, alice, mixed_queue):
    client.force_login(alice)
    body = client.get(URL, {"run": "abc", "age": "forever"}).content.decode()
    assert "Run: A run is named by its number." in body
    assert "Age: Select a valid choice" in body
    assert tab_counts(body)["pending"] == 4


def test_it_takes_a_few_queries_whatever_the_size_of_the_queue(client, alice, dave):
    for i in range(12):
        approval = refund(1450 if i % 2 else 249, call_id=f"call_{i}")
        if i % 3 == 0:
            approval.claim(by=dave)
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL).status_code == 200
    assert len(queries) <= 12


def test_it_polls_while_open_with_its_filters(client, bob):
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert 'hx-get="/approvals/" hx-trigger="every 2s" hx-swap="outerHTML"' in body
    body = client.get(URL, {"state": "claimed", "tool": "issue_refund"}).content.decode()
    assert 'hx-get="/approvals/?tool=issue_refund&amp;state=claimed" hx-trigger="every 2s"' in body


def test_an_htmx_request_gets_only_the_queue_and_the_badge(client, bob):
    make_pending_approval()
    make_pending_approval()
    client.force_login(bob)
    response = client.get(URL, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="approval-queue"')
    assert "<html" not in body
    assert "issue_refund" in body
    assert "HX-Request" in response["Vary"]
    # The navigation badge, swapped out of band so it follows the queue.
    assert re.search(r'<span id="nav-approvals-badge" class="badge" hx-swap-oob="true"[^>]*>2</span>', body)


def test_the_full_page_has_one_badge_and_no_out_of_band_swap(client, bob):
    make_pending_approval()
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert body.count('id="nav-approvals-badge"') == 1
    assert "hx-swap-oob" not in body


def test_the_badge_is_hidden_when_nothing_is_pending(client, bob):
    client.force_login(bob)
    body = client.get("/").content.decode()
    assert re.search(r'<span id="nav-approvals-badge" class="badge" title="0 pending" hidden>0</span>', body)


def test_it_loads_the_keyboard_script_from_static_files(client, bob):
    client.force_login(bob)
    body = client.get(URL).content.decode()
    assert '<script src="/static/js/desk.js" defer></script>' in body
    assert "<kbd>j</kbd>" in body


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_refuses_post(client, alice):
    client.force_login(alice)
    assert client.post(URL).status_code == 405


@pytest.mark.parametrize("state,assignee", list(product(["pending", "claimed"], ["", "me"])))
def test_claimed_calls_are_in_both_the_pending_and_claimed_tabs(client, alice, state, assignee):
    approval = refund()
    approval.claim(by=alice)
    refund(300, call_id="call_other")
    client.force_login(alice)
    body = client.get(URL, {"state": state, "assignee": assignee}).content.decode()
    assert approval.pk in listed(body)
