"""Bulk decisions: a preview of the calls chosen by hand or by filter, then one verdict decided
call by call, with a result for each."""

import re

import pytest

from approvals.models import Approval
from tests.conftest import make_user
from tests.factories import requested_call

URL = "/approvals/bulk/"


def refund(amount=249, call_id="call_1", **kwargs):
    return requested_call("issue_refund", {"order_id": "A-1", "amount": amount, "reason": "x"}, call_id=call_id, **kwargs)


def item(approval):
    return f"{approval.pk}:{approval.arguments_hash}"


def results(body: str) -> dict[int, str]:
    """Each result row's approval id and its text (outcome and detail)."""
    rows = re.findall(r'<tr class="bulk-result bulk-(\w+)" data-approval="(\d+)">(.*?)</tr>', body, re.S)
    return {int(pk): (outcome, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))) for outcome, pk, html in rows}


@pytest.fixture
def dave(db):
    return make_user("dave", "reviewers")


# --- Preview ---------------------------------------------------------------------------------


def test_the_preview_shows_the_calls_chosen_by_hand_with_their_hashes(client, alice):
    first, second, other = refund(call_id="a"), refund(300, call_id="b"), refund(400, call_id="c")
    client.force_login(alice)
    response = client.get(URL, {"ids": [first.pk, second.pk]})
    body = response.content.decode()
    assert response.status_code == 200
    assert "The calls you selected" in body
    assert f'name="items" value="{item(first)}"' in body
    assert f'name="items" value="{item(second)}"' in body
    assert f"#{other.pk}<" not in body
    assert "&quot;amount&quot;: 300" in body  # the arguments, formatted
    assert ">Approve 2 calls</button>" in body and ">Reject 2 calls</button>" in body


def test_the_preview_selects_the_pending_calls_matching_the_queues_filters(client, alice):
    small, big = refund(call_id="a"), refund(1450, call_id="b")
    decided = refund(300, call_id="c")
    decided.approve(by=alice, shown_hash=decided.arguments_hash)
    client.force_login(alice)
    body = client.get(URL, {"requirement": "single"}).content.decode()
    assert "Pending calls matching the queue's filters" in body
    assert f'value="{item(small)}"' in body
    assert f'value="{big.pk}:' not in body
    assert f'value="{decided.pk}:' not in body
    # The way back keeps the filters.
    assert 'href="/approvals/?requirement=single"' in body


def test_the_preview_warns_about_calls_that_will_be_refused(client, alice, dave):
    theirs = refund(call_id="a")
    Approval.objects.filter(pk=theirs.pk).update(approver_group="finance-leads")
    held = refund(call_id="b")
    held.claim(by=dave)
    done = refund(call_id="c")
    done.reject(by=dave, shown_hash=done.arguments_hash, reason="No")
    client.force_login(alice)
    body = client.get(URL, {"ids": [theirs.pk, held.pk, done.pk]}).content.decode()
    assert "Only the finance-leads group may decide it: it will be refused." in body
    assert "dave holds it until" in body
    assert "already decided" in body


def test_someone_who_may_decide_nothing_gets_403(client, bob):
    approval = refund()
    client.force_login(bob)
    assert client.get(URL, {"ids": [approval.pk]}).status_code == 403
    assert client.post(URL, {"items": [item(approval)], "verdict": "approve"}).status_code == 403
    approval.refresh_from_db()
    assert approval.is_pending


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    assert client.get(URL)["Location"].startswith("/accounts/login/")
    assert client.post(URL)["Location"].startswith("/accounts/login/")


def test_it_refuses_other_methods(client, alice):
    client.force_login(alice)
    assert client.put(URL).status_code == 405
    assert client.delete(URL).status_code == 405


# --- Deciding --------------------------------------------------------------------------------


def test_approving_mixed_calls_decides_each_on_its_own(client, alice, dave):
    plain = refund(call_id="plain")
    four_eyes = refund(1450, call_id="four_eyes")
    already = refund(300, call_id="already")
    already.reject(by=dave, shown_hash=already.arguments_hash, reason="Duplicate")
    not_mine = refund(400, call_id="not_mine")
    Approval.objects.filter(pk=not_mine.pk).update(approver_group="finance-leads")
    stale = refund(500, call_id="stale")
    client.force_login(alice)

    response = client.post(URL, {
        "items": [item(plain), item(four_eyes), item(already), item(not_mine), f"{stale.pk}:{'0' * 64}"],
        "verdict": "approve",
    })
    body = response.content.decode()
    assert response.status_code == 200
    got = results(body)
    assert got[plain.pk][0] == "approved"
    assert got[four_eyes.pk][0] == "partial" and "1 of 2 approvals" in got[four_eyes.pk][1]
    assert got[already.pk][0] == "already" and "Already decided by dave: Rejected." in got[already.pk][1]
    assert got[not_mine.pk][0] == "refused" and "Only members of the finance-leads group may decide" in got[not_mine.pk][1]
    assert got[stale.pk][0] == "refused" and "The arguments changed since they were shown" in got[stale.pk][1]

    statuses = dict(Approval.objects.values_list("pk", "status"))
    assert statuses[plain.pk] == Approval.Status.APPROVED
    assert statuses[four_eyes.pk] == Approval.Status.PENDING
    assert statuses[already.pk] == Approval.Status.REJECTED
    assert statuses[not_mine.pk] == Approval.Status.PENDING
    assert statuses[stale.pk] == Approval.Status.PENDING


def test_deciding_the_same_calls_again_reports_them_decided(client, alice):
    first, second = refund(call_id="a"), refund(300, call_id="b")
    four_eyes = refund(1450, call_id="c")
    client.force_login(alice)
    data = {"items": [item(first), item(second), item(four_eyes)], "verdict": "approve"}
    client.post(URL, data)
    got = results(client.post(URL, data).content.decode())
    assert got[first.pk][0] == got[second.pk][0] == "already"
    assert got[four_eyes.pk][0] == "refused" and "You approved this already" in got[four_eyes.pk][1]
    assert Approval.objects.get(pk=four_eyes.pk).decisions.count() == 1


def test_rejecting_needs_a_reason(client, alice):
    approval = refund()
    client.force_login(alice)
    response = client.post(URL, {"items": [item(approval)], "verdict": "reject", "reason": ""})
    body = response.content.decode()
    assert response.status_code == 400
    assert "Give a reason: each model is told why its call was rejected." in body
    # The preview is shown again with the calls posted.
    assert f'value="{item(approval)}"' in body
    approval.refresh_from_db()
    assert approval.is_pending


def test_rejecting_several_calls_tells_each_model_the_reason(client, alice):
    first, second = refund(call_id="a"), refund(1450, call_id="b")
    client.force_login(alice)
    got = results(client.post(URL, {"items": [item(first), item(second)], "verdict": "reject",
                                    "reason": "Fraud check pending"}).content.decode())
    assert got[first.pk][0] == got[second.pk][0] == "rejected"
    for approval in (first, second):
        approval.refresh_from_db()
        assert approval.status == Approval.Status.REJECTED
        assert approval.reason == "Fraud check pending"
        assert approval.result == {"error": "A reviewer rejected this call: Fraud check pending"}


def test_a_call_that_needs_a_typed_result_is_refused_not_approved(client, alice):
    email = requested_call("send_customer_email", {"to": "a@example.com", "subject": "Hi", "body": "x"})
    client.force_login(alice)
    got = results(client.post(URL, {"items": [item(email)], "verdict": "approve"}).content.decode())
    assert got[email.pk][0] == "refused"
    assert "type the result to send" in got[email.pk][1]


def test_a_missing_call_is_reported(client, alice):
    approval = refund()
    client.force_login(alice)
    got = results(client.post(URL, {"items": [item(approval), "999999:abc"], "verdict": "approve"}).content.decode())
    assert got[999999][0] == "missing"
    assert got[approval.pk][0] == "approved"


def test_nothing_selected_or_malformed_items_are_refused(client, alice):
    client.force_login(alice)
    response = client.post(URL, {"verdict": "approve"})
    assert response.status_code == 400
    assert "Select at least one call." in response.content.decode()
    assert client.post(URL, {"items": ["x:y"], "verdict": "approve"}).status_code == 400
    assert client.post(URL, {"items": ["1:abc"], "verdict": "maybe"}).status_code == 400


def test_an_htmx_decision_gets_only_the_results(client, alice):
    approval = refund()
    client.force_login(alice)
    response = client.post(URL, {"items": [item(approval)], "verdict": "approve"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="bulk-decision"')
    assert "<html" not in body
    assert results(body)[approval.pk][0] == "approved"
    assert "HX-Request" in response["Vary"]


def test_an_htmx_preview_gets_only_the_preview(client, alice):
    approval = refund()
    client.force_login(alice)
    body = client.get(URL, {"ids": [approval.pk]}, HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<section id="bulk-decision"')
    assert f'value="{item(approval)}"' in body
