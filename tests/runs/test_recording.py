"""Recording what the API answered: every documented payload parses into the right steps."""

import json
from pathlib import Path

import pytest

from approvals.models import Approval
from runs import execution, gemini
from runs.models import Artifact, Interaction, Run
from tests.factories import keep_counts

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"


def interaction_payloads():
    return [
        pytest.param(path, data, id=path.stem)
        for path in sorted(PAYLOADS.glob("*.json"))
        if isinstance(data := json.loads(path.read_text()), dict) and "status" in data
    ]


def record_payload(payload: dict, *, tools=None) -> Interaction:
    run = Run.objects.create(model="gemini-3-flash-preview", input="hi", tools=tools or [])
    interaction = Interaction.objects.create(
        run=run, sequence=0, request={"model": run.model, "input": "hi"},
        dispatch=Interaction.Dispatch.SENDING,
    )
    keep_counts(run)
    execution.record(interaction, gemini.parse(json.dumps(payload)))
    interaction.refresh_from_db()
    return interaction


def test_the_payload_folder_holds_the_documented_interactions():
    assert len(list(interaction_payloads())) >= 20


@pytest.mark.parametrize("path,payload", interaction_payloads())
def test_it_records_each_documented_interaction_with_its_steps(db, path, payload):
    interaction = record_payload(payload)

    assert interaction.status == payload["status"]
    assert interaction.interaction_id == payload["id"]
    stored = list(interaction.steps.order_by("index"))
    if "outputs" not in payload:
        payload.setdefault("steps", [])
        assert [s.type for s in stored] == [s["type"] for s in payload["steps"]]
        assert [s.data for s in stored] == payload["steps"]
    else:
        # The legacy ``outputs`` shape: content blocks become model_output steps.
        assert [s.type for s in stored] == [
            "model_output" if o["type"] == "text" else o["type"] for o in payload["outputs"]
        ]
    for step in stored:
        if step.type == "function_call":
            assert step.call_id == step.data["id"]
            assert step.name == step.data["name"]


def test_it_keeps_the_usage_and_output_text_of_a_completed_interaction(db):
    payload = json.loads((PAYLOADS / "01_model_completed_apiref.json").read_text())
    interaction = record_payload(payload)

    assert interaction.usage["total_tokens"] == payload["usage"]["total_tokens"]
    assert interaction.output_text == payload["steps"][-1]["content"][0]["text"]
    run = interaction.run
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert run.total_tokens == payload["usage"]["total_tokens"]
    assert json.loads(interaction.artifacts.get(kind=Artifact.Kind.USAGE).content) == interaction.usage


def test_it_records_every_documented_step_type_and_keeps_unknown_ones(db):
    examples = json.loads((PAYLOADS / "05f_all_step_type_examples_apiref.json").read_text())
    unknown = {"type": "hologram_projection", "frames": 3, "nested": {"a": [1, 2]}}
    payload = {"id": "v1_all", "status": "completed", "steps": [*examples.values(), unknown]}

    interaction = record_payload(payload)

    stored = list(interaction.steps.order_by("index"))
    assert [s.type for s in stored] == [s["type"] for s in payload["steps"]]
    assert stored[-1].data == unknown
    assert not stored[-1].is_known
    assert all(s.is_known for s in stored[:-1])
    results = {s.call_id for s in stored if s.type.endswith("_result")}
    calls = {s.call_id for s in stored if s.type.endswith("_call")}
    assert results <= calls | {""}


def test_a_requires_action_payload_with_an_unknown_function_waits_for_a_typed_result(db):
    payload = json.loads((PAYLOADS / "02_function_call_requires_action_apiref.json").read_text())
    interaction = record_payload(payload)

    approval = Approval.objects.get(interaction=interaction)
    assert approval.status == Approval.Status.PENDING
    assert approval.requires_manual_result
    assert approval.call_id == payload["steps"][-1]["id"]
    interaction.run.refresh_from_db()
    assert interaction.run.status == Run.Status.WAITING_FOR_APPROVAL


def test_recording_a_stable_interaction_twice_changes_nothing(db):
    payload = json.loads((PAYLOADS / "01_model_completed_apiref.json").read_text())
    interaction = record_payload(payload)
    execution.record(interaction, gemini.parse(json.dumps(payload)))

    assert interaction.steps.count() == len(payload["steps"])
    interaction.run.refresh_from_db()
    assert interaction.run.total_tokens == payload["usage"]["total_tokens"]


def test_a_response_off_the_sdk_schema_is_recorded_with_a_note(db):
    # Google's quickstart shows a google_search_call without the id the SDK's schema requires.
    payload = json.loads((PAYLOADS / "05_google_search_steps_quickstart.json").read_text())

    interaction = record_payload(payload)

    assert interaction.status == "completed"
    assert "id" in interaction.schema_warning
    assert interaction.steps.count() == len(payload["steps"])


@pytest.mark.parametrize("body", ["not json", "[]", '{"id": "x"}', '{"id": "x", "status": "completed", "steps": "no"}'])
def test_a_body_that_is_not_an_interaction_is_refused_with_a_clear_error(body):
    with pytest.raises(gemini.MalformedResponse) as raised:
        gemini.parse(body)
    assert "not" in str(raised.value)
    assert raised.value.body == body


def test_the_request_manifest_redacts_secrets_by_exact_key_name():
    body = {
        "model": "m",
        "generation_config": {"max_output_tokens": 256},
        "tools": [{"type": "mcp_server", "name": "crm", "headers": {"Authorization": "Bearer abc"}}],
        "environment": {"env": {"token": "t0k", "PASSWORD": "hunter2", "tokens_budget": 5}},
    }

    manifest = gemini.request_manifest("POST", "/interactions", body)

    text = json.dumps(manifest)
    assert "abc" not in text and "t0k" not in text and "hunter2" not in text
    assert manifest["body"]["generation_config"]["max_output_tokens"] == 256
    assert manifest["body"]["environment"]["env"]["tokens_budget"] == 5
    assert manifest["headers"]["x-goog-api-key"] == gemini.REDACTED
    assert manifest["sdk"] == f"google-genai {gemini.SDK_VERSION}"
