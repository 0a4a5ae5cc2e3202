"""Idempotency-Key on the API's POSTs: a retry gets the first answer and changes nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import Approval, Decision
from dashboard import idempotency
from dashboard.models import ApiToken, IdempotentRequest
from runs.models import Run
from tests.factories import requested_call

pytestmark = pytest.mark.django_db


def auth(user, *scopes, name="ci"):
    return f"Bearer {ApiToken.issue(user, name=name, scopes=list(scopes))[1]}"


@pytest.fixture
def refund():
    return requested_call("issue_refund", {"order_id": "A-1003", "amount": 450, "reason": "Arrived broken"})


def post(client, path, body, token, key=None):
    headers = {"HTTP_AUTHORIZATION": token}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(path, body, content_type="application/json", **headers)


def test_a_retried_decision_gets_the_first_answer_and_decides_once(client, alice, refund):
    token = auth(alice, "read", "decide")
    body = {"decision": "approve", "arguments_hash": refund.arguments_hash}
    url = f"/api/v1/approvals/{refund.pk}/decision"
    first = post(client, url, body, token, key="k-1")
    retry = post(client, url, body, token, key="k-1")
    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content and retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Decision.objects.filter(approval=refund).count() == 1
    # Without the key, the same request again is a second request: the call was decided.
    assert post(client, url, body, token).status_code == 409


def test_a_retried_create_starts_one_run(client, bob):
    token = auth(bob, "run")
    body = {"model": "gemini-3-flash-preview", "input": "Hello"}
    first = post(client, "/api/v1/runs", body, token, key="start-1")
    retry = post(client, "/api/v1/runs", body, token, key="start-1")
    assert first.status_code == retry.status_code == 201 and retry.json()["id"] == first.json()["id"]
    assert Run.objects.count() == 1


def test_the_same_key_for_another_request_is_refused(client, alice, refund):
    token = auth(alice, "decide")
    url = f"/api/v1/approvals/{refund.pk}/decision"
    post(client, url, {"decision": "reject", "arguments_hash": refund.arguments_hash, "reason": "No"}, token, key="k")
    other = post(client, url, {"decision": "reject", "arguments_hash": refund.arguments_hash, "reason": "Other"},
                 token, key="k")
    assert other.status_code == 422 and other["Content-Type"] == "application/problem+json"
    assert "used for another request" in other.json()["detail"]


def test_a_key_belongs_to_its_token(client, alice, bob):
    body = {"model": "gemini-3-flash-preview", "input": "Hello"}
    from tests.conftest import make_user

    erin = make_user("erin", "engineers")
    first = post(client, "/api/v1/runs", body, auth(bob, "run"), key="shared")
    second = post(client, "/api/v1/runs", body, auth(erin, "run", name="erin"), key="shared")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"] and second.json()["created_by"] == "erin"


def test_a_request_in_progress_answers_409_until_its_lease_lapses(client, alice, refund):
    token = auth(alice, "decide")
    url = f"/api/v1/approvals/{refund.pk}/decision"
    body = {"decision": "approve", "arguments_hash": refund.arguments_hash}
    fingerprint = idempotency._sha256(b"POST", url.encode(),
                                      b'{"decision": "approve", "arguments_hash": "' + refund.arguments_hash.encode() + b'"}')
    IdempotentRequest.objects.create(owner=idempotency._sha256(token.encode()), key="busy", fingerprint=fingerprint)
    busy = post(client, url, body, token, key="busy")
    assert busy.status_code == 409 and busy["Retry-After"] == "1"
    assert Approval.objects.get(pk=refund.pk).is_pending
    IdempotentRequest.objects.filter(key="busy").update(created_at=timezone.now() - idempotency.LEASE * 2)
    served = post(client, url, body, token, key="busy")
    assert served.status_code == 200 and served.json()["status"] == "approved"


def test_unauthorized_answers_are_not_kept(client, alice):
    response = post(client, "/api/v1/runs", {"model": "m", "input": "x"}, "Bearer hnd_wrong", key="k")
    assert response.status_code == 401
    assert not IdempotentRequest.objects.exists()


def test_a_bad_key_is_refused_and_old_answers_are_pruned(client, alice):
    assert post(client, "/api/v1/runs", {}, auth(alice, "run"), key="x" * 256).status_code == 400
    IdempotentRequest.objects.create(owner="o", key="old", fingerprint="f", status_code=200,
                                     created_at=timezone.now() - timedelta(hours=25))
    IdempotentRequest.objects.create(owner="o", key="new", fingerprint="f", status_code=200)
    assert idempotency.prune() == 1
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]


def test_a_revoked_token_gets_no_answer_again(client, alice, refund):
    token = auth(alice, "read", "decide")
    url = f"/api/v1/approvals/{refund.pk}/decision"
    body = {"decision": "approve", "arguments_hash": refund.arguments_hash}
    assert post(client, url, body, token, key="k").status_code == 200
    ApiToken.objects.get(name="ci").revoke(by=alice)
    replay = post(client, url, body, token, key="k")
    assert replay.status_code == 401 and "Idempotent-Replayed" not in replay
