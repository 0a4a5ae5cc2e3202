"""The API tokens page: one's own tokens, created (shown once) and revoked."""

import pytest

from audit.models import AuditEvent
from dashboard.models import ApiToken

pytestmark = pytest.mark.django_db
URL = "/account/tokens/"


def test_a_created_token_is_shown_once_and_works(client, alice):
    client.force_login(alice)
    response = client.post(URL, {"name": "refund-bot", "scopes": ["read", "decide"], "expires_days": 30})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = response.content.decode().split('class="json token-secret"')[1].split(">", 1)[1].split("<")[0]
    token = ApiToken.authenticate(secret)
    assert token.user == alice and token.name == "refund-bot" and token.scopes == ["read", "decide"]
    again = client.get(URL).content.decode()
    assert secret not in again and "refund-bot" in again and token.prefix in again
    assert client.get("/api/v1/approvals", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_an_invalid_form_is_a_400_naming_the_field(client, alice):
    client.force_login(alice)
    ApiToken.issue(alice, name="taken", scopes=["read"])
    response = client.post(URL, {"name": "taken", "scopes": ["read"], "expires_days": 30})
    assert response.status_code == 400 and "already has a token named" in response.content.decode()
    assert client.post(URL, {"name": "x", "scopes": ["root"], "expires_days": 30}).status_code == 400
    assert client.post(URL, {"name": "x", "scopes": ["read"], "expires_days": 999}).status_code == 400
    assert ApiToken.objects.count() == 1


def test_one_revokes_ones_own_tokens_only(client, alice, bob):
    mine, secret = ApiToken.issue(alice, name="mine", scopes=["read"])
    bobs, _ = ApiToken.issue(bob, name="bobs", scopes=["read"])
    client.force_login(alice)
    assert "bobs" not in client.get(URL).content.decode()
    assert client.post(f"/account/tokens/{bobs.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{mine.pk}/revoke/").status_code == 302
    assert ApiToken.authenticate(secret) is None
    bobs.refresh_from_db()
    assert bobs.revoked_at is None
    assert AuditEvent.objects.filter(verb="api_token.revoked", actor="alice").count() == 1


def test_signed_out_it_asks_for_a_sign_in(client):
    assert client.get(URL).status_code == 302
