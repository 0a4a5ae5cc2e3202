import csv
import io
import json

import pytest

from audit.models import AuditEvent
from tests.factories import make_pending_approval

URL = "/approvals/audit.csv"


@pytest.fixture
def decided(alice):
    approval = make_pending_approval()
    approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="=cmd|' /C calc'!A0")
    return approval


def read(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_an_auditor_downloads_the_log_as_csv(client, carol, decided):
    client.force_login(carol)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="handoff-audit.csv"'
    rows = list(csv.reader(io.StringIO(read(response))))
    assert tuple(rows[0]) == AuditEvent.EXPORT_FIELDS
    verbs = [row[AuditEvent.EXPORT_FIELDS.index("verb")] for row in rows[1:]]
    assert "approval.rejected" in verbs
    actors = [row[AuditEvent.EXPORT_FIELDS.index("actor")] for row in rows[1:]]
    assert "alice" in actors


def test_a_reviewer_may_download_it_too(client, alice, decided):
    client.force_login(alice)
    assert client.get(URL).status_code == 200


def test_it_exports_json_lines_on_request(client, carol, decided):
    client.force_login(carol)
    response = client.get(URL, {"format": "jsonl"})
    assert response["Content-Disposition"] == 'attachment; filename="handoff-audit.jsonl"'
    events = [json.loads(line) for line in read(response).splitlines()]
    rejected = next(e for e in events if e["verb"] == "approval.rejected")
    assert rejected["after"]["reason"] == "=cmd|' /C calc'!A0"


def test_an_unknown_format_is_a_bad_request(client, carol):
    client.force_login(carol)
    assert client.get(URL, {"format": "xml"}).status_code == 400


def test_someone_without_audit_rights_gets_403(client, bob, decided):
    client.force_login(bob)
    assert client.get(URL).status_code == 403


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_refuses_post(client, carol):
    client.force_login(carol)
    assert client.post(URL).status_code == 405
