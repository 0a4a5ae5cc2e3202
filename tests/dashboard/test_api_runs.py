"""The REST API's runs: create, get, steps, cancel, continue, and tracking an interaction
started elsewhere, with a real worker and the emulator over HTTP."""

from django.test import Client
from google import genai
from google.genai import types

from dashboard.models import ApiToken
from runs.models import Run
from tests.conftest import wait_for

PROBLEM = "application/problem+json"


def client_for(user, *scopes, name="ci") -> Client:
    token = ApiToken.issue(user, name=name, scopes=list(scopes))[1]
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def settled(run_id: int) -> Run:
    wait_for(lambda: Run.objects.filter(pk=run_id, status__in=Run.FINAL_STATUSES).exists(), timeout=30)
    return Run.objects.get(pk=run_id)


def test_an_engineer_starts_a_run_reads_it_and_its_steps_and_continues_it(worker, bob):
    api = client_for(bob, "read", "run")
    created = api.post("/api/v1/runs", {"model": "gemini-3-flash-preview", "input": "Hello there"},
                       content_type="application/json")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    assert created.json()["created_by"] == "bob" and created.json()["status"] in ("queued", "running")
    assert settled(run_id).status == Run.Status.COMPLETED

    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "completed" and run["output_text"]
    assert run["interactions"][0]["interaction_id"].startswith("v1_") and run["interactions"][0]["usage"]
    first = api.get(f"/api/v1/runs/{run_id}/steps", {"limit": 1}).json()
    steps = first["results"]
    following = first["next"]
    while following:
        page = api.get(following).json()
        steps += page["results"]
        following = page["next"]
    assert len(steps) == run["interactions"][0]["step_count"] and len({s["id"] for s in steps}) == len(steps)

    continued = api.post(f"/api/v1/runs/{run_id}/continue", {"input": "And again"}, content_type="application/json")
    assert continued.status_code == 200 and len(continued.json()["interactions"]) == 2
    assert settled(run_id).interactions.count() == 2
    # A completed run cannot be cancelled: 409, as problem+json.
    refused = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert refused.status_code == 409 and refused["Content-Type"] == PROBLEM


def test_starting_needs_the_run_scope_and_a_role_that_may(worker, alice, bob):
    body = {"model": "gemini-3-flash-preview", "input": "Hello"}
    no_scope = client_for(bob, "read").post("/api/v1/runs", body, content_type="application/json")
    assert no_scope.status_code == 403 and "run scope" in no_scope.json()["detail"]
    reviewer = client_for(alice, "read", "run").post("/api/v1/runs", body, content_type="application/json")
    assert reviewer.status_code == 403 and "alice may not start runs" in reviewer.json()["detail"]
    assert not Run.objects.exists()


def test_the_start_pages_checks_name_the_field(worker, bob):
    api = client_for(bob, "run")
    both = api.post("/api/v1/runs", {"model": "m", "agent": "a", "input": "x"}, content_type="application/json")
    assert both.status_code == 422
    unknown = api.post("/api/v1/runs", {"model": "gemini-3-flash-preview", "input": "x", "tools": ["no_such_tool"]},
                       content_type="application/json")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "tools"
    spaced = api.post("/api/v1/runs", {"model": "gemini 3", "input": "x"}, content_type="application/json")
    assert spaced.status_code == 422 and spaced.json()["errors"] == [
        {"field": "model", "message": "A model or agent name has no spaces."}]
    assert not Run.objects.exists()


def test_an_interaction_started_elsewhere_is_tracked_by_id(worker, api, bob):
    elsewhere = genai.Client(api_key="elsewhere", http_options=types.HttpOptions(
        base_url=api.url, retry_options=types.HttpRetryOptions(attempts=1)))
    started = elsewhere.interactions.create(model="gemini-3-flash-preview", input="Started by another service")
    handoff = client_for(bob, "read", "run")

    tracked = handoff.post("/api/v1/interactions", {"interaction_id": started.id}, content_type="application/json")
    assert tracked.status_code == 201, tracked.content
    assert tracked.json()["interactions"][0]["interaction_id"] == started.id
    again = handoff.post("/api/v1/interactions", {"interaction_id": started.id}, content_type="application/json")
    assert again.status_code == 409 and "already recorded" in again.json()["detail"]
    bad = handoff.post("/api/v1/interactions", {"interaction_id": "../x"}, content_type="application/json")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "interaction_id"
    missing = handoff.post("/api/v1/interactions", {"interaction_id": "v1_nosuchinteraction"},
                           content_type="application/json")
    assert missing.status_code == 404 and missing["Content-Type"] == PROBLEM
