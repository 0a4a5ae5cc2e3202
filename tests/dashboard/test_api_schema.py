"""schemathesis runs the API's OpenAPI schema against a live server: whatever it sends to each
operation, no 5xx, and every answer matches the schema (status, content type, body)."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
)

from dashboard.models import ApiToken
from tests.conftest import make_user
from tests.factories import requested_call

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 30  # per operation


def test_the_api_answers_every_request_as_its_schema_says(live_server, transactional_db, api):
    user = make_user("root", "reviewers", "engineers", "auditors")
    requested_call("issue_refund", {"order_id": "A-1003", "amount": 450, "reason": "Broken"})
    token = ApiToken.issue(user, name="schemathesis", scopes=["read", "run", "decide", "audit"])[1]
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_documented(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

        answers_as_documented()
