"""The admin shows every model and lets nobody change recorded data."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

from approvals.models import Approval
from audit.models import AuditEvent
from dashboard.models import ApiToken
from runs.models import Artifact, Interaction, Run, Step

RECORDED = [Run, Interaction, Step, Artifact, Approval, AuditEvent, ApiToken]


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.mark.parametrize("model", RECORDED, ids=lambda m: m.__name__)
def test_every_model_has_a_read_only_admin(client, superuser, model):
    client.force_login(superuser)
    opts = model._meta

    changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))

    assert model in admin.site._registry
    assert changelist.status_code == 200
    assert add.status_code == 403


def test_a_recorded_run_cannot_be_changed_or_deleted_in_the_admin(client, superuser):
    run = Run.objects.create(model="m", input="x")
    client.force_login(superuser)

    change = client.post(reverse("admin:runs_run_change", args=[run.pk]), {"model": "other"})
    delete = client.post(reverse("admin:runs_run_delete", args=[run.pk]), {"post": "yes"})

    run.refresh_from_db()
    assert run.model == "m"
    assert change.status_code == 403 and delete.status_code == 403


def test_the_token_admin_never_shows_a_tokens_hash(client, superuser):
    token, secret = ApiToken.issue(superuser, name="ci", scopes=["read"])
    client.force_login(superuser)
    body = client.get(reverse("admin:dashboard_apitoken_change", args=[token.pk])).content.decode()
    assert token.prefix in body and token.digest not in body and secret not in body
