"""The REST API (/api/v1/): bearer tokens, problem+json errors, and decisions through the same
model methods as the pages."""

import json

import pytest

from approvals.models import Approval
from audit import log
from audit.models import AuditEvent
from dashboard.models import ApiToken
from tests.factories import requested_call

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


@pytest.fixture
def refund():
    return requested_call("issue_refund", {"order_id": "A-1003", "amount": 450, "reason": "Arrived broken"})


def bearer(user, *scopes, name="ci"):
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user, name=name, scopes=list(scopes))[1]}"}


def decision_url(approval):
    return f"/api/v1/approvals/{approval.pk}/decision"


def test_no_token_or_an_unusable_one_is_a_401_problem(client, alice, refund):
    plain = client.get(f"/api/v1/approvals/{refund.pk}")
    assert plain.status_code == 401 and plain["Content-Type"] == PROBLEM
    assert plain.json()["status"] == 401 and "Bearer" in plain["WWW-Authenticate"]
    # A signed-in browser session is not a token.
    client.force_login(alice)
    assert client.get(f"/api/v1/approvals/{refund.pk}").status_code == 401
    headers = bearer(alice, "read")
    ApiToken.objects.get(name="ci").revoke(by=alice)
    assert client.get(f"/api/v1/approvals/{refund.pk}", **headers).status_code == 401


def test_get_gives_the_call_its_summary_hash_and_what_the_user_may_do(client, alice, bob, refund):
    body = client.get(f"/api/v1/approvals/{refund.pk}", **bearer(alice, "read", "decide")).json()
    assert body["function_name"] == "issue_refund" and body["status"] == "pending"
    assert body["summary"] == "Refund $450.00 on order A-1003: Arrived broken"
    assert body["arguments_hash"] == refund.arguments_hash
    assert body["actions"]["can_approve"] is True
    # The same call through a read-only token: the user may not decide through it.
    assert client.get(f"/api/v1/approvals/{refund.pk}", **bearer(alice, "read", name="r")).json()[
        "actions"]["can_approve"] is False
    assert client.get("/api/v1/approvals/999999", **bearer(bob, "read")).status_code == 404


def test_a_token_without_decide_is_refused_with_the_reason(client, alice, refund):
    response = client.post(decision_url(refund), {"decision": "approve", "arguments_hash": refund.arguments_hash},
                           content_type="application/json", **bearer(alice, "read"))
    assert response.status_code == 403 and response["Content-Type"] == PROBLEM
    assert "decide scope" in response.json()["detail"]
    refund.refresh_from_db()
    assert refund.is_pending


def test_a_user_without_the_role_is_refused_whatever_the_tokens_scopes(client, bob, refund):
    response = client.post(decision_url(refund), {"decision": "approve", "arguments_hash": refund.arguments_hash},
                           content_type="application/json", **bearer(bob, "read", "decide"))
    assert response.status_code == 403 and "bob may not decide function calls" in response.json()["detail"]


def test_an_approval_counts_once_and_is_audited_with_the_tokens_name(client, alice, refund):
    headers = bearer(alice, "read", "decide", name="refund bot")
    body = {"decision": "approve", "arguments_hash": refund.arguments_hash}
    first = client.post(decision_url(refund), body, content_type="application/json", **headers)
    assert first.status_code == 200 and first.json()["status"] == "approved"
    assert first.json()["decided_by"] == "alice"
    again = client.post(decision_url(refund), body, content_type="application/json", **headers)
    assert again.status_code == 409 and again["Content-Type"] == PROBLEM
    assert "Already decided by alice" in again.json()["detail"]
    event = AuditEvent.objects.filter(verb="approval.approved", object_id=str(refund.pk)).get()
    assert event.actor == "alice" and event.via == "api:refund bot"


def test_a_stale_hash_is_a_409_and_changes_nothing(client, alice, refund):
    response = client.post(decision_url(refund), {"decision": "approve", "arguments_hash": "0" * 64},
                           content_type="application/json", **bearer(alice, "decide"))
    assert response.status_code == 409 and "changed" in response.json()["detail"]
    refund.refresh_from_db()
    assert refund.is_pending


def test_a_rejection_carries_its_reason_and_needs_one(client, alice, refund):
    headers = bearer(alice, "decide")
    missing = client.post(decision_url(refund), {"decision": "reject", "arguments_hash": refund.arguments_hash},
                          content_type="application/json", **headers)
    assert missing.status_code == 422 and missing["Content-Type"] == PROBLEM
    assert missing.json()["errors"] == [{"field": "reason", "message": "required to reject"}]
    rejected = client.post(decision_url(refund), {"decision": "reject", "arguments_hash": refund.arguments_hash,
                                                  "reason": "Needs a photo of the damage"},
                           content_type="application/json", **headers)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    refund.refresh_from_db()
    assert refund.status == Approval.Status.REJECTED and refund.reason == "Needs a photo of the damage"


def test_an_edit_is_judged_by_the_schema_and_the_policy_again(client, alice, refund):
    headers = bearer(alice, "decide")
    bad = client.post(decision_url(refund), {"decision": "edit", "arguments_hash": refund.arguments_hash,
                                             "arguments": {"order_id": "A-1003", "amount": -5, "reason": "x"}},
                      content_type="application/json", **headers)
    assert bad.status_code == 409 and "schema" in bad.json()["detail"]
    # Past the four-eyes threshold: one approval no longer settles it.
    bigger = client.post(decision_url(refund), {"decision": "edit", "arguments_hash": refund.arguments_hash,
                                                "arguments": {"order_id": "A-1003", "amount": 1450, "reason": "x"}},
                         content_type="application/json", **headers)
    assert bigger.status_code == 200, bigger.json()
    assert bigger.json()["status"] == "pending" and bigger.json()["approvals_required"] == 2
    assert bigger.json()["edited_arguments"]["amount"] == 1450 and bigger.json()["approvals_so_far"] == 1
    refund.refresh_from_db()
    assert refund.is_pending


def test_invalid_input_names_the_field(client, alice, refund):
    response = client.post(decision_url(refund), {"decision": "approve_all", "arguments_hash": "x"},
                           content_type="application/json", **bearer(alice, "decide"))
    assert response.status_code == 422 and response["Content-Type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["decision"]


def test_the_openapi_schema_is_3_1_and_the_docs_load_nothing_from_elsewhere(client):
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.1")

    def no_duplicates(pairs):
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), f"a key written twice: {keys}"
        return dict(pairs)

    json.loads(schema.content, object_pairs_hook=no_duplicates)  # Swagger UI refuses a duplicated key
    assert "/api/v1/approvals/{approval_id}/decision" in schema.json()["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "swagger-ui-bundle" in page and "cdn." not in page and "https://" not in page


def test_the_list_takes_the_queues_filters_and_pages_by_keyset(client, alice):
    refunds = [requested_call("issue_refund", {"order_id": f"A-{n}", "amount": 300 + n, "reason": "x"},
                              call_id=f"call_{n}") for n in range(5)]
    requested_call("lookup_order", {"order_id": "A-1"}, call_id="call_lookup")  # runs at once: never listed
    headers = bearer(alice, "read")
    first = client.get("/api/v1/approvals", {"limit": 2}, **headers).json()
    assert [a["id"] for a in first["results"]] == [r.pk for r in refunds[:2]]
    second = client.get(first["next"], **headers).json()
    third = client.get(second["next"], **headers).json()
    assert [a["id"] for a in second["results"] + third["results"]] == [r.pk for r in refunds[2:]]
    assert third["next"] is None
    only = client.get("/api/v1/approvals", {"run": refunds[3].run_id}, **headers).json()
    assert [a["id"] for a in only["results"]] == [refunds[3].pk]
    assert client.get("/api/v1/approvals", {"state": "decided"}, **headers).json()["results"] == []
    # The contract's form (docs/contracts.md): ?status=pending, results with name and arguments.
    pending = client.get("/api/v1/approvals", {"status": "pending"}, **headers).json()["results"]
    assert [a["id"] for a in pending] == [r.pk for r in refunds]
    assert {"id", "run_id", "call_id", "name", "arguments", "arguments_hash"} <= pending[0].keys()
    assert pending[0]["name"] == "issue_refund" and pending[0]["arguments"]["order_id"] == "A-0"
    assert client.get("/api/v1/approvals", {"status": "approved"}, **headers).json()["results"] == []


def test_a_bad_filter_is_a_422_naming_it(client, alice):
    response = client.get("/api/v1/approvals", {"state": "lost", "status": "auto", "limit": 0},
                          **bearer(alice, "read"))
    assert response.status_code == 422 and response["Content-Type"] == PROBLEM
    assert {e["field"] for e in response.json()["errors"]} == {"state", "status", "limit"}


def test_claim_and_release_follow_the_pages_rules(client, alice, refund):
    from tests.conftest import make_user

    dave = make_user("dave", "reviewers")
    mine, his = bearer(alice, "decide"), bearer(dave, "decide", name="dave's")
    claimed = client.post(f"/api/v1/approvals/{refund.pk}/claim", **mine)
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "alice"
    taken = client.post(f"/api/v1/approvals/{refund.pk}/claim", **his)
    assert taken.status_code == 409 and "alice holds this call" in taken.json()["detail"]
    assert client.post(f"/api/v1/approvals/{refund.pk}/release", **his).status_code == 403
    released = client.post(f"/api/v1/approvals/{refund.pk}/release", **mine)
    assert released.status_code == 200 and released.json()["claimed_by"] is None
    assert client.post(f"/api/v1/approvals/{refund.pk}/release", **mine).status_code == 409
    event = AuditEvent.objects.filter(verb="approval.claimed", object_id=str(refund.pk)).get()
    assert event.via == "api:ci"


def test_audit_events_stream_as_json_lines_with_the_pages_filters(client, alice, refund):
    import json

    from audit import chain

    headers = bearer(alice, "read", "audit")
    response = client.get("/api/v1/audit/events", {"verb": "approval"}, **headers)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert lines and {line["verb"].split(".")[0] for line in lines} == {"approval"}
    assert all(line == AuditEvent.objects.get(pk=line["id"]).as_dict() for line in lines)
    exported = AuditEvent.objects.filter(verb="audit.exported").latest("id")
    assert exported.actor == "alice" and exported.via == "api:ci"
    bad = client.get("/api/v1/audit/events", {"since": "yesterday"}, **headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"
    # Without the audit scope the same user is refused.
    assert client.get("/api/v1/audit/events", **bearer(alice, "read", name="reader")).status_code == 403

    assert client.get("/api/v1/audit/verification", **headers).json()["state"] == "never"
    log.seal()
    chain.verify_and_record()
    status = client.get("/api/v1/audit/verification", **headers).json()
    assert status["state"] == "holds" and status["links_checked"] > 0 and status["unsealed"] == 0


def test_past_the_rate_limit_a_token_gets_429_with_retry_after(client, alice, refund, monkeypatch):
    from dashboard.api import api

    throttle = api.throttle[0] if isinstance(api.throttle, list) else api.throttle
    monkeypatch.setattr(throttle, "num_requests", 3)
    monkeypatch.setattr(throttle, "duration", 60)
    headers, other = bearer(alice, "read"), bearer(alice, "read", name="other")
    statuses = [client.get(f"/api/v1/approvals/{refund.pk}", **headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get(f"/api/v1/approvals/{refund.pk}", **headers)
    assert limited["Content-Type"] == PROBLEM and 1 <= int(limited["Retry-After"]) <= 60
    # Counted per token: another token of the same user is not held back.
    assert client.get(f"/api/v1/approvals/{refund.pk}", **other).status_code == 200
