"""API tokens: per user, named, scoped, expiring, stored hashed, shown once; a token acts with
its user's roles limited to its scopes, and what it does is audited with its name."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from audit import chain, context, log, roles
from audit.exports import export_lines
from audit.models import AuditEvent
from dashboard.models import ApiToken, digest
from tests.factories import requested_call

pytestmark = pytest.mark.django_db


def test_a_token_is_shown_once_and_stored_as_its_hash(alice):
    token, secret = ApiToken.issue(alice, name="ci", scopes=["read", "decide"])
    assert secret.startswith("hnd_") and len(secret) >= 40
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in json.dumps(row, default=str)
    assert row["digest"] == digest(secret) and row["prefix"] == secret[:12]
    assert row["scopes"] == ["read", "decide"]
    assert ApiToken.authenticate(secret).pk == token.pk
    assert ApiToken.authenticate(secret + "x") is None
    assert ApiToken.authenticate("Bearer " + secret) is None


def test_revoked_expired_and_deactivated_tokens_do_not_authenticate(alice, bob):
    _, revoked = ApiToken.issue(alice, name="old", scopes=["read"])
    ApiToken.objects.get(name="old").revoke(by=alice)
    assert ApiToken.authenticate(revoked) is None

    expiring, expired = ApiToken.issue(alice, name="short", scopes=["read"], expires_days=1)
    ApiToken.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ApiToken.authenticate(expired) is None

    _, bobs = ApiToken.issue(bob, name="bob's", scopes=["read"])
    bob.is_active = False
    bob.save()
    assert ApiToken.authenticate(bobs) is None


def test_issue_refuses_what_it_cannot_keep(alice):
    ApiToken.issue(alice, name="ci", scopes=["read"])
    with pytest.raises(ValueError, match="already has a token named 'ci'"):
        ApiToken.issue(alice, name="ci", scopes=["read"])
    with pytest.raises(ValueError, match="unknown: admin"):
        ApiToken.issue(alice, name="x", scopes=["read", "admin"])
    with pytest.raises(ValueError, match="1 to 366 days"):
        ApiToken.issue(alice, name="x", scopes=["read"], expires_days=0)
    # A revoked name may be used again.
    ApiToken.objects.get(name="ci").revoke(by=alice)
    ApiToken.issue(alice, name="ci", scopes=["read"])


def test_scopes_limit_the_users_roles_on_every_check(alice, bob):
    read_only = ApiToken.issue(alice, name="reader", scopes=["read"])[0].act_as()
    assert roles.may(alice, "decide")
    assert not roles.may(read_only, "decide") and roles.may(read_only, "read")
    assert not roles.allowed(read_only)["export"]
    # No scope gives administer, whatever the user's roles.
    everything = ApiToken.issue(alice, name="all", scopes=list(roles.SCOPES))[0].act_as()
    assert roles.may(everything, "decide") and not roles.may(everything, "administer")
    # A scope never gives what the user's roles do not.
    bobs = ApiToken.issue(bob, name="bob", scopes=["decide"])[0].act_as()
    assert not roles.may(bobs, "decide")
    # The user object the token was issued with keeps its full rights.
    assert not hasattr(alice, "api_scopes") and roles.may(alice, "decide")


def test_a_token_without_decide_cannot_decide_through_the_model(alice):
    approval = requested_call("issue_refund", {"order_id": "A-1003", "amount": 450, "reason": "Broken"})
    reader = ApiToken.issue(alice, name="reader", scopes=["read"])[0].act_as()
    with pytest.raises(PermissionDenied, match="alice's API token may not decide function calls: that takes the decide scope"):
        approval.approve(by=reader, shown_hash=approval.arguments_hash)
    approval.refresh_from_db()
    assert approval.is_pending
    decider = ApiToken.issue(alice, name="decider", scopes=["read", "decide"])[0].act_as()
    assert approval.approve(by=decider, shown_hash=approval.arguments_hash)


def test_events_written_with_a_token_name_it_and_the_chain_holds(alice):
    token, _ = ApiToken.issue(alice, name="deploy bot", scopes=["decide"])
    before = AuditEvent.objects.order_by("id").last()
    assert before.verb == "api_token.created" and before.via == ""
    assert "via" not in before.as_dict()  # events without it hash as they did before it existed
    reset = context.via.set(token.via)
    try:
        with transaction.atomic():
            event = log.record(actor=alice, verb="run.cancelled", obj=None, object_type="run", object_id="1")
    finally:
        context.via.reset(reset)
    event.refresh_from_db()
    assert event.via == "api:deploy bot" and event.as_dict()["via"] == "api:deploy bot"
    log.seal()
    assert chain.verify().ok
    lines = [json.loads(line) for line in "".join(export_lines(AuditEvent.objects.all(), "jsonl")).splitlines()]
    assert [line.get("via", "") for line in lines][-1] == "api:deploy bot"
    assert all(line == AuditEvent.objects.get(pk=line["id"]).as_dict() for line in lines)
    csv_text = "".join(export_lines(AuditEvent.objects.all(), "csv"))
    assert csv_text.splitlines()[0].endswith(",request_id,via")
    assert csv_text.splitlines()[-1].endswith(",api:deploy bot")


def test_the_command_prints_the_token_as_its_last_line(alice):
    out = StringIO()
    call_command("create_api_token", "--user", "alice", "--name", "ci", "--scope", "read", "--scope", "decide",
                 "--expires-days", "30", stdout=out)
    secret = out.getvalue().splitlines()[-1]
    token = ApiToken.authenticate(secret)
    assert token.name == "ci" and token.scopes == ["read", "decide"] and token.user == alice
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    created = AuditEvent.objects.filter(verb="api_token.created").latest("id")
    assert created.actor == "system:command" and created.after["name"] == "ci"


def test_the_command_refuses_an_unknown_user_and_a_taken_name(alice):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "--user", "nobody", stdout=StringIO())
    call_command("create_api_token", "--user", "alice", "--name", "ci", stdout=StringIO())
    with pytest.raises(CommandError, match="already has a token named 'ci'"):
        call_command("create_api_token", "--user", "alice", "--name", "ci", stdout=StringIO())
