"""Run actions: start from the form, cancel, continue, run again, track an interaction."""

import pytest
from django.urls import reverse
from google import genai
from google.genai import types

from approvals.models import Approval
from audit.models import AuditEvent
from runs import execution
from runs.models import Interaction, Run
from tests.conftest import wait_for

MODEL = "gemini-3-flash-preview"


def settled(run, *statuses):
    statuses = statuses or Run.FINAL_STATUSES
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=statuses).exists())
    run.refresh_from_db()
    return run


# --- Start -------------------------------------------------------------------------------------


def test_the_start_form_lists_the_registered_tools(client, bob):
    client.force_login(bob)

    response = client.get(reverse("start_run"))

    assert response.status_code == 200
    assert b"lookup_order" in response.content and b"issue_refund" in response.content


def test_starting_a_run_creates_it_with_the_tool_declarations_and_redirects(client, bob):
    client.force_login(bob)

    response = client.post(reverse("start_run"), {
        "target": "model", "name": MODEL, "input": "Refund A-1001", "tools": ["lookup_order", "issue_refund"],
        "system_instruction": "Be brief.",
    })

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.created_by == bob and run.model == MODEL and run.system_instruction == "Be brief."
    assert [t["name"] for t in run.tools] == ["lookup_order", "issue_refund"]
    assert run.tool_names == ",lookup_order,issue_refund,"
    assert run.interactions.get().request["tools"][0]["parameters"]["required"] == ["order_id"]


@pytest.mark.parametrize("data,field", [
    ({"target": "model", "name": "", "input": "x"}, "name"),
    ({"target": "model", "name": "has space", "input": "x"}, "name"),
    ({"target": "model", "name": MODEL, "input": ""}, "input"),
    ({"target": "agent", "name": "deep-research-pro-preview-12-2025", "input": "x", "tools": ["lookup_order"]}, "tools"),
    ({"target": "model", "name": MODEL, "input": "x", "tools": ["rm_rf"]}, "tools"),
])
def test_the_start_form_shows_validation_errors_and_starts_nothing(client, bob, data, field):
    client.force_login(bob)

    response = client.post(reverse("start_run"), data)

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert b"field-error" in response.content
    assert not Run.objects.exists()


def test_the_start_page_needs_a_signed_in_user(client):
    response = client.get(reverse("start_run"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- Cancel ------------------------------------------------------------------------------------


def test_cancelling_a_background_run_cancels_the_live_interaction_on_the_api(worker, api, client, bob):
    run = execution.create_run(agent="deep-research-pro-preview-12-2025", input="Long research", background=True,
                               created_by=bob)
    wait_for(lambda: Interaction.objects.filter(run=run, dispatch=Interaction.Dispatch.SENT).exists())
    client.force_login(bob)

    response = client.post(reverse("runs:cancel", args=[run.pk]))

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.cancelled_by == bob
    interaction = run.interactions.get()
    wait_for(lambda: Interaction.objects.filter(pk=interaction.pk, status="cancelled").exists())
    assert api.requests_for(method="POST", path_suffix=f"/interactions/{interaction.interaction_id}/cancel")
    assert AuditEvent.objects.filter(verb="run.cancelled", actor="bob", run_id=run.pk).exists()


def test_cancelling_a_run_waiting_for_approval_expires_its_approvals(worker, api, client, bob, alice):
    from approvals import tools

    run = execution.create_run(model=MODEL, input="Refund A-1001", tools=tools.declarations(["lookup_order", "issue_refund"]),
                               created_by=bob)
    run = settled(run, Run.Status.WAITING_FOR_APPROVAL)
    refund = Approval.objects.get(run=run, status=Approval.Status.PENDING)
    client.force_login(bob)

    client.post(reverse("runs:cancel", args=[run.pk]))

    refund.refresh_from_db()
    assert refund.status == Approval.Status.EXPIRED and "cancelled by bob" in refund.reason
    assert not refund.approve(by=alice, shown_hash=refund.arguments_hash)
    creates = api.requests_for(method="POST", path_suffix="/interactions")
    assert len(creates) == 2  # no follow-up was sent for the expired call


def test_cancelling_a_finished_run_says_it_cannot(client, bob):
    run = Run.objects.create(model=MODEL, input="x", status=Run.Status.COMPLETED, created_by=bob)
    client.force_login(bob)

    response = client.post(reverse("runs:cancel", args=[run.pk]), follow=True)

    assert b"only an active run can be cancelled" in response.content
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED


@pytest.mark.parametrize("name", ["runs:cancel", "runs:continue", "runs:rerun"])
def test_run_actions_are_post_only(client, bob, name):
    run = Run.objects.create(model=MODEL, input="x")
    client.force_login(bob)

    assert client.get(reverse(name, args=[run.pk])).status_code == 405


@pytest.mark.parametrize("name", ["runs:cancel", "runs:continue", "runs:rerun"])
def test_run_actions_need_a_signed_in_user(db, client, name):
    run = Run.objects.create(model=MODEL, input="x")

    response = client.post(reverse(name, args=[run.pk]))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- Continue and run again ----------------------------------------------------------------------


def test_continuing_a_completed_run_chains_a_new_interaction(worker, api, client, bob):
    run = settled(execution.create_run(model=MODEL, input="Name a colour.", created_by=bob))
    first = run.interactions.get()
    client.force_login(bob)

    client.post(reverse("runs:continue", args=[run.pk]), {"text": "And another one?"})
    run = settled(run)

    assert run.status == Run.Status.COMPLETED
    second = run.interactions.get(sequence=1)
    assert second.previous_interaction_id == first.interaction_id
    body = api.requests_for(method="POST", path_suffix="/interactions")[-1]["body"]
    assert body["previous_interaction_id"] == first.interaction_id and body["input"] == "And another one?"
    assert "And another one?" in run.input_text
    assert AuditEvent.objects.filter(verb="run.continued", actor="bob").exists()


def test_an_active_run_cannot_be_continued(client, bob):
    run = Run.objects.create(model=MODEL, input="x", status=Run.Status.RUNNING, created_by=bob)
    client.force_login(bob)

    response = client.post(reverse("runs:continue", args=[run.pk]), {"text": "more"}, follow=True)

    assert b"Only a completed run can be continued" in response.content
    assert not run.interactions.exists()


def test_run_again_starts_a_new_run_with_the_same_request(worker, api, client, bob):
    source = settled(execution.create_run(model=MODEL, input="Same again", system_instruction="Be terse."))
    client.force_login(bob)

    response = client.post(reverse("runs:rerun", args=[source.pk]))

    run = Run.objects.exclude(pk=source.pk).get()
    assert response["Location"] == run.get_absolute_url()
    assert run.source_run == source and run.created_by == bob
    assert run.interactions.get().request == source.interactions.get().request
    assert settled(run).status == Run.Status.COMPLETED


# --- Track -------------------------------------------------------------------------------------


@pytest.fixture
def elsewhere(api) -> genai.Client:
    """Another program's SDK client, talking to the same API."""
    return genai.Client(api_key="elsewhere", http_options=types.HttpOptions(
        base_url=api.url, retry_options=types.HttpRetryOptions(attempts=1)))


def test_tracking_an_interaction_started_elsewhere_records_it_as_a_run(worker, api, elsewhere, client, bob):
    started = elsewhere.interactions.create(model=MODEL, input="Started in a notebook")
    client.force_login(bob)

    response = client.post(reverse("runs:track"), {"interaction_id": started.id})

    run = Run.objects.get()
    assert response["Location"] == run.get_absolute_url()
    assert run.status == Run.Status.COMPLETED and run.model == MODEL
    assert run.input == "Started in a notebook"
    assert run.interactions.get().interaction_id == started.id
    assert run.output_text == started.output_text


def test_a_tracked_background_interaction_is_polled_until_it_ends(worker, api, elsewhere, client, bob):
    started = elsewhere.interactions.create(agent="deep-research-pro-preview-12-2025", input="Go", background=True)
    client.force_login(bob)

    client.post(reverse("runs:track"), {"interaction_id": started.id})

    run = settled(Run.objects.get())
    assert run.status == Run.Status.COMPLETED and run.agent == "deep-research-pro-preview-12-2025"
    assert run.interactions.get().poll_count >= 1


def test_tracking_an_unknown_or_already_tracked_id_explains_why(worker, api, elsewhere, client, bob):
    client.force_login(bob)

    unknown = client.post(reverse("runs:track"), {"interaction_id": "v1_nope"})
    started = elsewhere.interactions.create(model=MODEL, input="x")
    client.post(reverse("runs:track"), {"interaction_id": started.id})
    again = client.post(reverse("runs:track"), {"interaction_id": started.id})
    garbage = client.post(reverse("runs:track"), {"interaction_id": "<script>"})

    assert unknown.status_code == 400 and b"404" in unknown.content
    assert again.status_code == 400 and b"already recorded" in again.content
    assert garbage.status_code == 400 and b"letters, digits" in garbage.content
    assert Run.objects.count() == 1


def test_a_run_action_on_no_such_run_is_404_and_on_anothers_run_403(client, bob, alice):
    """``runs.views._get_run_for_user``: the lookup first (404), then the right on that run (403:
    an engineer cancels only the runs they started)."""
    client.force_login(bob)
    assert client.post(reverse("runs:cancel", args=[999999])).status_code == 404
    run = Run.objects.create(model="m", input="x", created_by=alice, status=Run.Status.RUNNING)
    assert client.post(reverse("runs:cancel", args=[run.pk])).status_code == 403
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
