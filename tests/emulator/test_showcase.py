"""The emulator's showcase scenario: ``[showcase:all_steps]`` answers with every step type, made
of the API's own documented examples, so a client can show each of them.

No Django and no database: these tests import only ``runs.emulator`` and the SDK.
"""

import base64
import json
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from google import genai
from google.genai import types
from google.genai.interactions import Interaction

from runs.emulator import EmulatorServer, showcase

MODEL = "gemini-3-flash-preview"
PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"
SHOWCASE_PAYLOADS = Path(showcase.__file__).resolve().parent / "payloads"
# Every step type of google-genai 3.3.0 (docs/interactions-api.md §5).
SDK_STEP_TYPES = {
    "user_input", "model_output", "thought", "function_call", "function_result",
    "code_execution_call", "code_execution_result", "url_context_call", "url_context_result",
    "google_search_call", "google_search_result", "mcp_server_tool_call", "mcp_server_tool_result",
    "file_search_call", "file_search_result", "google_maps_call", "google_maps_result",
    "retrieval_call", "retrieval_result", "processing_call", "processing_result",
}


@pytest.fixture
def emulator(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    server = EmulatorServer(host="127.0.0.1", port=0, background_polls=2).start()
    yield server
    server.stop()


def http(emulator, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("x-goog-api-key", "test")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def show(emulator, **body):
    status, document = http(emulator, "POST", "/v1/interactions",
                            {"model": MODEL, "input": "Show me every step [showcase:all_steps]", **body})
    assert status == 200, document
    return document


def reference(name):
    return json.loads((PAYLOADS / name).read_text())


def test_it_answers_completed_with_every_step_type_and_an_unknown_one(emulator):
    document = show(emulator)
    assert document["status"] == "completed"
    assert {step["type"] for step in document["steps"]} == SDK_STEP_TYPES | {"hologram_projection"}


def test_the_documented_examples_are_served_as_published(emulator):
    steps = show(emulator)["steps"]
    documented = [
        *reference("05f_all_step_type_examples_apiref.json").values(),
        *reference("05_google_search_steps_quickstart.json")["steps"][1:],
        *reference("05c_image_generation_output_quickstart.json")["steps"],
        *reference("05d_structured_output_quickstart.json")["steps"],
        *reference("01b_model_completed_with_thought_quickstart.json")["steps"],
    ]
    legacy = reference("07i_legacy_content_type_examples_apiref_2026-04.json")
    documented += [legacy[name] for name in ("Url Context Result", "Google Maps Result", "File Search Result",
                                             "Mcp Server Tool Result", "Function Result", "Google Maps Call")]
    for example in documented:
        assert example in steps, example
    # The cited answer of the search quickstart comes last, so it is the interaction's output.
    assert steps[-1] == reference("05_google_search_steps_quickstart.json")["steps"][-1]


def test_its_payload_files_are_copies_of_the_reference_payloads():
    for path in SHOWCASE_PAYLOADS.glob("*.json"):
        assert path.read_bytes() == (PAYLOADS / path.name).read_bytes(), path.name


def test_only_the_quickstart_search_call_without_an_id_keeps_it_from_validating(emulator):
    document = show(emulator)
    [missing_id] = [n for n, step in enumerate(document["steps"])
                    if step["type"] == "google_search_call" and "id" not in step]
    with pytest.raises(Exception) as error:
        Interaction.model_validate(document, strict=True)
    assert f"steps.{missing_id}.id" in str(error.value)
    assert "1 validation error for Interaction" in str(error.value)
    for n, step in enumerate(document["steps"]):
        if n == missing_id:
            continue
        [parsed] = Interaction.model_validate({"id": "v1_x", "status": "completed", "steps": [step]}, strict=True).steps
        assert getattr(parsed, "is_unknown", False) == (step["type"] == "hologram_projection"), step


def test_the_sdk_reads_it_as_an_interaction(emulator):
    client = genai.Client(api_key="test", http_options=types.HttpOptions(
        base_url=emulator.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=10_000))
    interaction = client.interactions.create(model=MODEL, input="[showcase:all_steps]")
    assert interaction.status == "completed"
    assert len(interaction.steps) == len(showcase.all_steps())
    assert interaction.output_text.endswith("Spain won Euro 2024, defeating England 2-1 in the final.")


def test_its_usage_fills_every_field(emulator):
    usage = show(emulator)["usage"]
    fields = ("total_input_tokens", "total_output_tokens", "total_thought_tokens", "total_cached_tokens",
              "total_tool_use_tokens")
    assert all(usage[field] > 0 for field in fields)
    assert usage["total_cached_tokens"] <= usage["total_input_tokens"]
    assert usage["total_tokens"] == sum(usage[field] for field in fields if field != "total_cached_tokens")


def test_it_is_deterministic(emulator):
    assert show(emulator)["steps"] == show(emulator)["steps"]


def test_its_image_is_a_real_png(emulator):
    [image] = [block for step in show(emulator)["steps"] if step["type"] == "model_output"
               for block in step.get("content", []) if block.get("type") == "image" and block["data"] != "BASE64_ENCODED_IMAGE"]
    data = base64.b64decode(image["data"], validate=True)
    assert image["mime_type"] == "image/png"
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (128, 80)


def test_a_background_showcase_answers_after_its_polls(emulator):
    created = show(emulator, background=True)
    assert created["status"] == "in_progress" and created["steps"] == []
    status, polled = http(emulator, "GET", f"/v1/interactions/{created['id']}")
    assert polled["status"] == "in_progress"
    status, done = http(emulator, "GET", f"/v1/interactions/{created['id']}")
    assert done["status"] == "completed" and len(done["steps"]) == len(showcase.all_steps())


def test_an_unknown_showcase_is_refused_rather_than_ignored(emulator):
    status, document = http(emulator, "POST", "/v1/interactions", {"model": MODEL, "input": "[showcase:everything]"})
    assert status == 400
    assert document == {"error": {"code": "invalid_request", "message": "Unknown showcase marker [showcase:everything]"}}
