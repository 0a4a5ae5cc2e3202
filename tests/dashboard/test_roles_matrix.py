"""The role matrix (``audit.roles``, the README's "Roles"): every role × action through the real
view, allowed or refused, plus the ownership rule of cancel and continue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from google import genai
from google.genai import types

from approvals.models import Approval
from audit.models import AuditEvent
from runs.models import Interaction, Run
from tests.conftest import make_user
from tests.factories import make_interaction, make_pending_approval, make_run

MODEL = "gemini-3-flash-preview"
ROLES = ("viewer", "engineer", "reviewer", "auditor", "admin")

# Who may do what, written out here rather than read from audit.roles, so a change to the matrix
# has to change this table (and the README's) too. "own": on the runs they started.
EXPECTED = {
    "read":       {"viewer": True, "engineer": True, "reviewer": True, "auditor": True, "admin": True},
    "start":      {"viewer": False, "engineer": True, "reviewer": False, "auditor": False, "admin": True},
    "cancel":     {"viewer": False, "engineer": "own", "reviewer": False, "auditor": False, "admin": True},
    "continue":   {"viewer": False, "engineer": "own", "reviewer": False, "auditor": False, "admin": True},
    "rerun":      {"viewer": False, "engineer": True, "reviewer": False, "auditor": False, "admin": True},
    "track":      {"viewer": False, "engineer": True, "reviewer": False, "auditor": False, "admin": True},
    "decide":     {"viewer": False, "engineer": False, "reviewer": True, "auditor": False, "admin": False},
    "read_audit": {"viewer": False, "engineer": False, "reviewer": True, "auditor": True, "admin": True},
    "export":     {"viewer": False, "engineer": False, "reviewer": True, "auditor": True, "admin": True},
    "administer": {"viewer": False, "engineer": False, "reviewer": False, "auditor": False, "admin": True},
}


@pytest.fixture
def vic(db) -> User:
    """A viewer: signed in, in no role's group."""
    return make_user("vic")


@pytest.fixture
def ada(db) -> User:
    """An admin: a superuser, in no group."""
    user = make_user("ada")
    user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def persona(request):
    """The persona of a role: vic, bob, alice, carol or ada (made when first asked for)."""
    names = {"viewer": "vic", "engineer": "bob", "reviewer": "alice", "auditor": "carol", "admin": "ada"}
    return lambda role: request.getfixturevalue(names[role])


@pytest.fixture
def elsewhere(api) -> genai.Client:
    """Another program's SDK client, talking to the same API."""
    return genai.Client(api_key="elsewhere", http_options=types.HttpOptions(
        base_url=api.url, retry_options=types.HttpRetryOptions(attempts=1)))


# One attempt per action, through the view a person uses: returns the response and whether the
# action took effect, read from the database.


def read(client, user):
    run = make_run(created_by=None)
    responses = [client.get(reverse("runs:list")), client.get(run.get_absolute_url()),
                 client.get(reverse("approvals:queue"))]
    worst = next((r for r in responses if r.status_code != 200), responses[0])
    return worst, all(r.status_code == 200 for r in responses)


def start(client, user):
    response = client.post(reverse("start_run"), {"target": "model", "name": MODEL, "input": "Hello"})
    return response, Run.objects.filter(created_by=user).exists()


def cancel(client, user):
    run = make_run(status=Run.Status.RUNNING, created_by=user)
    response = client.post(reverse("runs:cancel", args=[run.pk]))
    return response, Run.objects.filter(pk=run.pk, status=Run.Status.CANCELLED, cancelled_by=user).exists()


def _completed_run(created_by) -> Run:
    run = make_run(status=Run.Status.COMPLETED, created_by=created_by)
    make_interaction(run)
    return run


def continue_(client, user):
    run = _completed_run(user)
    response = client.post(reverse("runs:continue", args=[run.pk]), {"text": "And then?"})
    return response, run.interactions.filter(sequence=1).exists()


def rerun(client, user):
    source = _completed_run(make_user("frank"))
    response = client.post(reverse("runs:rerun", args=[source.pk]))
    return response, Run.objects.filter(source_run=source, created_by=user).exists()


def decide(client, user):
    approval = make_pending_approval(arguments={"order_id": "A-1003", "amount": 300.0, "reason": "Damaged"})
    response = client.post(reverse("approvals:approve", args=[approval.pk]), {"shown_hash": approval.arguments_hash})
    return response, Approval.objects.filter(pk=approval.pk, status=Approval.Status.APPROVED).exists()


def read_audit(client, user):
    response = client.get(reverse("audit:log"))
    return response, response.status_code == 200


def export(client, user):
    response = client.get(reverse("audit:download"))
    if response.status_code == 200:
        b"".join(response.streaming_content)
    return response, AuditEvent.objects.filter(verb="audit.exported", actor=user.username).exists()


def administer(client, user):
    approval = make_pending_approval()
    dave = make_user("dave", "reviewers")
    Approval.objects.filter(pk=approval.pk).update(claimed_by=dave, claimed_until=timezone.now() + timedelta(minutes=5))
    response = client.post(reverse("approvals:release", args=[approval.pk]))
    return response, Approval.objects.filter(pk=approval.pk, claimed_by=None).exists()


ATTEMPTS = {"read": read, "start": start, "cancel": cancel, "continue": continue_, "rerun": rerun,
            "decide": decide, "read_audit": read_audit, "export": export, "administer": administer}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ATTEMPTS))
def test_each_role_may_take_exactly_the_actions_of_the_matrix(client, persona, role, action):
    user = persona(role)
    client.force_login(user)

    response, took_effect = ATTEMPTS[action](client, user)

    if EXPECTED[action][role]:
        assert response.status_code in (200, 302), response.content.decode()[:500]
        assert took_effect
    else:
        assert response.status_code == 403
        assert not took_effect
        assert b"may not" in response.content


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_track_an_interaction_only_as_the_matrix_says(api, elsewhere, client, persona, role):
    started = elsewhere.interactions.create(model=MODEL, input="Started in a notebook")
    user = persona(role)
    client.force_login(user)
    before = len(api.requests)

    response = client.post(reverse("runs:track"), {"interaction_id": started.id})

    if EXPECTED["track"][role]:
        assert response.status_code == 302
        assert Run.objects.filter(created_by=user, interactions__interaction_id=started.id).exists()
    else:
        assert response.status_code == 403
        assert not Run.objects.exists()
        # Refused before anything is asked of the API.
        assert len(api.requests) == before


def test_the_matrix_in_runs_roles_is_the_one_these_tests_check(persona):
    from audit import roles

    for action, cells in EXPECTED.items():
        for role, expected in cells.items():
            assert roles.may(persona(role), action) == bool(expected), (role, action)


def test_bob_cannot_cancel_alices_four_eyes_run_and_its_approval_stays_pending(client, alice, bob):
    approval = make_pending_approval()
    Run.objects.filter(pk=approval.run_id).update(created_by=alice)
    Approval.objects.filter(pk=approval.pk).update(approvals_required=2, creator_may_approve=False)
    client.force_login(bob)

    response = client.post(reverse("runs:cancel", args=[approval.run_id]))

    assert response.status_code == 403
    assert b"engineers may only cancel runs they started or continued" in response.content
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING
    assert Run.objects.get(pk=approval.run_id).status == Run.Status.WAITING_FOR_APPROVAL


def test_an_engineer_may_not_continue_someone_elses_run(client, alice, bob):
    run = _completed_run(alice)
    client.force_login(bob)

    response = client.post(reverse("runs:continue", args=[run.pk]), {"text": "Hijack"})

    assert response.status_code == 403
    assert not run.interactions.filter(sequence=1).exists()


def test_an_engineer_who_continued_a_run_may_cancel_it(client, alice, bob):
    run = make_run(status=Run.Status.RUNNING, created_by=alice)
    make_interaction(run, requested_by=alice)
    make_interaction(run, requested_by=bob, status=Interaction.Status.IN_PROGRESS)
    client.force_login(bob)

    response = client.post(reverse("runs:cancel", args=[run.pk]))

    assert response.status_code == 302
    assert Run.objects.get(pk=run.pk).status == Run.Status.CANCELLED


def test_an_admin_may_cancel_and_continue_anyones_run(client, alice, ada):
    running = make_run(status=Run.Status.RUNNING, created_by=alice)
    completed = _completed_run(alice)
    client.force_login(ada)

    assert client.post(reverse("runs:cancel", args=[running.pk])).status_code == 302
    assert client.post(reverse("runs:continue", args=[completed.pk]), {"text": "More"}).status_code == 302
    assert Run.objects.get(pk=running.pk).status == Run.Status.CANCELLED
    assert completed.interactions.filter(sequence=1).exists()


def test_the_run_page_shows_only_the_actions_the_user_may_take(client, alice, bob, carol):
    mine = make_run(status=Run.Status.RUNNING, created_by=bob)
    theirs = make_run(status=Run.Status.RUNNING, created_by=alice)
    done = _completed_run(alice)

    client.force_login(bob)
    own_page = client.get(mine.get_absolute_url()).content.decode()
    other_page = client.get(theirs.get_absolute_url()).content.decode()
    done_page = client.get(done.get_absolute_url()).content.decode()
    client.force_login(carol)
    auditor_page = client.get(done.get_absolute_url()).content.decode()
    # The polled header alone (an htmx partial) follows the same rule.
    partial = client.get(theirs.get_absolute_url(), headers={"HX-Request": "true", "HX-Target": "run-header"})

    assert "Cancel run" in own_page and "Run again" in own_page
    assert "Cancel run" not in other_page and "Run again" in other_page
    assert "Continue the conversation" not in done_page
    for text in ("Cancel run", "Run again", "Continue the conversation"):
        assert text not in auditor_page
    assert "Run again" not in partial.content.decode()


@pytest.mark.parametrize("role,shown", [("viewer", False), ("engineer", True), ("auditor", False), ("admin", True)])
def test_the_new_run_button_shows_to_those_who_may_start_runs(client, persona, role, shown):
    client.force_login(persona(role))

    for url in (reverse("home"), reverse("runs:list")):
        assert ('href="/runs/new/"' in client.get(url).content.decode()) == shown


def test_the_approvals_queue_offers_no_decision_to_an_auditor(client, carol):
    make_pending_approval()
    client.force_login(carol)

    body = client.get(reverse("approvals:queue")).content.decode()

    assert "Only reviewers may decide" in body
    assert ">Review</a>" not in body and "Claim next" not in body
