"""Sign-in throttling (django-axes): wrong passwords in a row lock one username from one address
out for a cool-off, the right password included, with a page that says so."""

from datetime import timedelta

from django.conf import settings
from django.db.models import F

from tests.conftest import PASSWORD

URL = "/accounts/login/"


def sign_in(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def lock_out(client, username: str, address: str = "127.0.0.1") -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, username, "wrong", address)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_after_100_wrong_passwords_the_right_one_is_refused(client, alice):
    for _ in range(100):
        assert sign_in(client, "alice", "wrong").status_code in (200, 429)

    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 429
    assert not signed_in(client)
    body = response.content.decode()
    assert "Sign-in locked for now" in body
    assert f"after {settings.AXES_FAILURE_LIMIT} in a row" in body
    assert "Try again in 15 minutes" in body
    assert response["Retry-After"] == "900"


def test_a_few_wrong_passwords_then_the_right_one_signs_in(client, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, "alice", "wrong")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()

    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 302
    assert signed_in(client)


def test_the_lock_holds_one_username_from_one_address_only(client, alice, bob):
    lock_out(client, "alice", "10.0.0.1")
    assert sign_in(client, "alice", PASSWORD, "10.0.0.1").status_code == 429

    assert sign_in(client, "bob", PASSWORD, "10.0.0.1").status_code == 302
    client.logout()
    assert sign_in(client, "alice", PASSWORD, "10.0.0.2").status_code == 302


def test_the_right_password_works_again_once_the_cool_off_has_passed(client, alice):
    from axes.models import AccessAttempt

    lock_out(client, "alice")
    assert sign_in(client, "alice", PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))

    assert sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)
