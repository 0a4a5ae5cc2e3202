"""The request id audit events carry: a client's ``X-Request-ID`` only when it is a plain token,
else a fresh one, so a header cannot write markup, newlines or kilobytes into the audit log."""

import re

import pytest

from audit.models import AuditEvent

HEX_ID = re.compile(r"[0-9a-f]{32}")


def failed_sign_in(client, request_id: str):
    # A failed sign-in is audited while the request is served, so its event carries the id.
    return client.post("/accounts/login/", {"username": "alice", "password": "wrong"},
                       headers={"X-Request-ID": request_id})


@pytest.mark.parametrize("hostile", [
    "abc\r\nSet-Cookie: sessionid=stolen",
    "abc\ndef",
    "A" * 10_240,
    "<script>alert(1)</script>",
    "a" * 65,
    "naïve",
    "two words",
], ids=["CRLF header", "newline", "10 KB", "markup", "65 characters", "non-ASCII", "space"])
def test_a_hostile_request_id_is_replaced_by_a_fresh_one(client, alice, hostile):
    response = failed_sign_in(client, hostile)

    event = AuditEvent.objects.get(verb="user.sign_in_failed")
    assert HEX_ID.fullmatch(event.request_id)
    assert response["X-Request-ID"] == event.request_id
    assert "stolen" not in response.serialize_headers().decode()


def test_a_well_formed_request_id_from_a_proxy_is_kept(client, alice):
    response = failed_sign_in(client, "req-7f3a:edge-1.b_2")

    assert AuditEvent.objects.get(verb="user.sign_in_failed").request_id == "req-7f3a:edge-1.b_2"
    assert response["X-Request-ID"] == "req-7f3a:edge-1.b_2"


def test_without_a_request_id_one_is_made(client, alice):
    response = failed_sign_in(client, "")

    assert HEX_ID.fullmatch(AuditEvent.objects.get(verb="user.sign_in_failed").request_id)
    assert HEX_ID.fullmatch(response["X-Request-ID"])
