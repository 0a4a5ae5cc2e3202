"""The emulator's wire protocol, driven by the real google-genai SDK (and raw HTTP where the
SDK would hide something): routes, envelopes, errors, auth, streaming, the request log.

No Django and no database: these tests import only ``runs.emulator``.
"""

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from google import genai
from google.genai import _interactions as api_errors
from google.genai import types
from google.genai.interactions import Interaction, InteractionSSEEvent
from pydantic import TypeAdapter

from runs.emulator import EmulatorServer
from tests.emulator.conftest import make_client

MODEL = "gemini-2.5-flash"
LOOKUP_TOOLS = [
    {
        "type": "function",
        "name": "lookup_order",
        "description": "Look an order up by id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    }
]
ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
SSE_EVENT = TypeAdapter(InteractionSSEEvent)


def http(emulator, method, path, body=None, headers=None, key="test"):
    """One raw HTTP request: returns (status, headers, body bytes)."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + path, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("x-goog-api-key", key)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def sse_data(raw):
    """The JSON ``data:`` payloads of an SSE body, plus whether it ended with [DONE]."""
    events, done = [], False
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line.startswith("data: ")]
        for line in lines:
            payload = line[len("data: "):]
            if payload == "[DONE]":
                done = True
            else:
                events.append(json.loads(payload))
    return events, done


def test_it_answers_a_create_on_the_default_v1_path_with_a_full_envelope(emulator, client):
    interaction = client.interactions.create(model=MODEL, input="Say hello")

    assert interaction.status == "completed"
    assert interaction.output_text
    (request,) = emulator.requests_for(method="POST", path_suffix="/interactions")
    assert request["path"] == "/v1/interactions"
    status, _, raw = http(emulator, "GET", f"/v1/interactions/{interaction.id}?stream=false")
    document = json.loads(raw)
    assert status == 200
    assert re.fullmatch(r"v1_emu\d{10}", document["id"])
    assert document["object"] == "interaction"
    assert document["model"] == MODEL
    assert ISO_SECONDS.match(document["created"]) and ISO_SECONDS.match(document["updated"])
    assert set(document["usage"]) >= {
        "total_input_tokens", "total_output_tokens", "total_thought_tokens",
        "total_cached_tokens", "total_tool_use_tokens", "total_tokens", "input_tokens_by_modality",
    }
    Interaction.model_validate(document, strict=True)


def test_it_accepts_any_version_segment_and_no_segment_at_all(emulator):
    paths = ("/v1/interactions", "/v1beta/interactions", "/interactions", "/emu/v1/interactions")
    for path in paths:
        status, _, raw = http(emulator, "POST", path, {"model": MODEL, "input": "hi"})
        assert status == 200, path
        interaction_id = json.loads(raw)["id"]
        assert http(emulator, "GET", f"{path}/{interaction_id}")[0] == 200

    beta = make_client(emulator.url, api_version="v1beta")
    assert beta.interactions.create(model=MODEL, input="hi").status == "completed"
    assert emulator.requests[-1]["path"] == "/v1beta/interactions"


def test_it_gives_counter_based_ids_that_never_repeat_within_a_server(emulator, client):
    first = client.interactions.create(model=MODEL, input="one")
    second = client.interactions.create(model=MODEL, input="two")
    emulator.reset()
    third = client.interactions.create(model=MODEL, input="three")

    assert [first.id, second.id, third.id] == [
        "v1_emu0000000001", "v1_emu0000000002", "v1_emu0000000003"]


def test_it_puts_the_id_tag_into_interaction_and_call_ids():
    with EmulatorServer(port=0, id_tag="t42") as server:
        # Keep the client referenced: a dropped genai.Client closes its HTTP pool.
        tagged_client = make_client(server.url)
        created = tagged_client.interactions.create(
            model=MODEL, input="Where is A-1001?", tools=LOOKUP_TOOLS)

    assert created.id == "v1_emut420000000001"
    assert created.steps[-1].id == "call_t4200001"


def test_get_returns_the_stored_interaction_and_adds_the_input_only_when_asked(emulator, client):
    created = client.interactions.create(model=MODEL, input="Tell me about tides")

    fetched = client.interactions.get(created.id)
    with_input = client.interactions.get(created.id, include_input=True)

    assert fetched.id == created.id
    assert fetched.output_text == created.output_text
    assert fetched.input is None
    assert with_input.input == "Tell me about tides"
    assert emulator.requests[-1]["query"] == {"stream": "false", "include_input": "true"}


def test_delete_answers_an_empty_object_and_a_later_get_is_not_found(emulator, client):
    created = client.interactions.create(model=MODEL, input="forget me")

    assert client.interactions.delete(created.id) is None
    with pytest.raises(api_errors.NotFoundError) as raised:
        client.interactions.get(created.id)

    assert raised.value.body == {
        "error": {"code": "not_found", "message": f"Interaction {created.id} was not found."}}
    status, _, raw = http(emulator, "DELETE", f"/v1/interactions/{created.id}")
    assert status == 404 and json.loads(raw)["error"]["code"] == "not_found"


def test_delete_answers_200_with_an_empty_json_object(emulator, client):
    created = client.interactions.create(model=MODEL, input="delete me")

    status, headers, raw = http(emulator, "DELETE", f"/v1/interactions/{created.id}")

    assert (status, json.loads(raw)) == (200, {})
    assert headers["Content-Type"].startswith("application/json")


def test_cancel_stops_a_running_background_interaction(emulator, client):
    started = client.interactions.create(
        agent="deep-research-pro-preview-12-2025", input="History of TPUs", background=True)

    cancelled = client.interactions.cancel(started.id)

    assert cancelled.status == "cancelled"
    assert cancelled.steps == []
    assert client.interactions.get(started.id).status == "cancelled"
    (request,) = emulator.requests_for(method="POST", path_suffix="/cancel")
    assert request["path"] == f"/v1/interactions/{started.id}/cancel"
    assert request["body"] is None


def test_cancel_refuses_anything_but_a_running_background_interaction(client):
    finished = client.interactions.create(model=MODEL, input="quick one")

    with pytest.raises(api_errors.BadRequestError) as raised:
        client.interactions.cancel(finished.id)
    with pytest.raises(api_errors.NotFoundError):
        client.interactions.cancel("v1_emu9999999999")

    assert raised.value.body["error"]["code"] == "invalid_request"
    message = raised.value.body["error"]["message"]
    assert "only background interactions that are in progress" in message


def test_it_answers_401_without_an_api_key_or_with_an_empty_one(emulator):
    for key in (None, ""):
        body = {"model": MODEL, "input": "hi"}
        status, _, raw = http(emulator, "POST", "/v1/interactions", body, key=key)
        assert status == 401
        assert json.loads(raw)["error"]["code"] == "unauthenticated"
    assert emulator.interaction_ids == []


def test_the_sdk_raises_an_authentication_error_for_a_401(emulator):
    blank_key = genai.Client(api_key=" ", http_options=types.HttpOptions(
        base_url=emulator.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=10_000))

    with pytest.raises(api_errors.AuthenticationError):
        blank_key.interactions.create(model=MODEL, input="hi")


def test_it_rejects_a_body_that_is_not_json(emulator):
    status, _, raw = http(emulator, "POST", "/v1/interactions", b"{not json")

    assert status == 400
    assert json.loads(raw) == {"error": {"code": "invalid_request",
                                         "message": "Invalid JSON payload received."}}


def test_it_requires_exactly_one_of_model_and_agent(emulator):
    for body in ({"input": "hi"}, {"model": MODEL, "agent": "deep-research-pro-preview-12-2025"}):
        status, _, raw = http(emulator, "POST", "/v1/interactions", body)
        assert status == 400
        message = json.loads(raw)["error"]["message"]
        assert message == "Exactly one of 'model' or 'agent' must be set."


def test_it_answers_404_for_an_unknown_previous_interaction(client):
    with pytest.raises(api_errors.NotFoundError) as raised:
        client.interactions.create(
            model=MODEL, input="again", previous_interaction_id="v1_emu0000000404")

    assert raised.value.body["error"]["code"] == "not_found"


def test_it_answers_unknown_routes_and_methods_with_json_errors(emulator):
    status, _, raw = http(emulator, "GET", "/v1/models")
    assert (status, json.loads(raw)["error"]["code"]) == (404, "not_found")
    status, _, raw = http(emulator, "PUT", "/v1/interactions/v1_emu0000000001", {})
    assert (status, json.loads(raw)["error"]["code"]) == (405, "method_not_allowed")


def test_it_streams_a_plain_answer_that_the_sdk_parses_into_typed_events(client):
    events = list(client.interactions.create(model=MODEL, input="Count to three", stream=True))

    kinds = [event.event_type for event in events]
    assert kinds[0] == "interaction.created"
    assert kinds[-1] == "interaction.completed"
    assert kinds[1:-1] == ["step.start", "step.delta", "step.delta", "step.stop",
                           "step.start"] + ["step.delta"] * (len(kinds) - 8) + ["step.stop"]
    numbers = range(1, len(events) + 1)
    assert [event.event_id for event in events] == [f"evt_{n:04d}" for n in numbers]
    streamed_text = "".join(
        event.delta.text for event in events
        if event.event_type == "step.delta" and event.delta.type == "text")
    finished = events[-1].interaction
    assert finished.status == "completed"
    assert finished.usage.total_tokens > 0
    assert client.interactions.get(finished.id).output_text == streamed_text


def test_it_streams_a_function_call_as_empty_arguments_then_an_arguments_delta(client):
    events = list(client.interactions.create(
        model=MODEL, input="Where is order A-1001?", tools=LOOKUP_TOOLS, stream=True))

    starts = [event for event in events if event.event_type == "step.start"]
    call_start = starts[-1]
    assert call_start.step.type == "function_call"
    assert call_start.step.name == "lookup_order"
    assert call_start.step.arguments == {}
    (arguments,) = [event.delta.arguments for event in events
                    if event.event_type == "step.delta" and event.delta.type == "arguments_delta"]
    assert json.loads(arguments) == {"order_id": "A-1001"}
    assert events[-1].interaction.status == "requires_action"


def test_it_frames_server_sent_events_with_event_type_and_event_id_and_ends_with_done(emulator):
    status, headers, raw = http(emulator, "POST", "/v1/interactions",
                                {"model": MODEL, "input": "Stream please", "stream": True},
                                headers={"Accept": "text/event-stream"})

    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    blocks = [block for block in raw.decode().split("\n\n") if block]
    for block in blocks[:-1]:
        event_line, data_line = block.split("\n")
        data = json.loads(data_line[len("data: "):])
        assert event_line == f"event: {data['event_type']}"
        assert data["event_id"].startswith("evt_")
        parsed = SSE_EVENT.validate_python(data, strict=True)
        assert not getattr(parsed, "is_unknown", False)
    assert blocks[-1].endswith("data: [DONE]")
    events, done = sse_data(raw)
    assert done
    assert "steps" not in events[-1]["interaction"]
    assert events[-1]["interaction"]["usage"]["total_tokens"] > 0


def test_a_streamed_get_resumes_after_last_event_id(client):
    created = client.interactions.create(model=MODEL, input="Resume me")

    everything = list(client.interactions.get(created.id, stream=True))
    resumed = list(client.interactions.get(created.id, stream=True, last_event_id="evt_0003"))

    assert everything[0].event_type == "interaction.created"
    assert [event.event_id for event in resumed] == [event.event_id for event in everything[3:]]
    assert resumed[-1].interaction.status == "completed"


def test_the_async_client_round_trips_create_get_cancel_and_delete(emulator):
    async def round_trip():
        async_client = make_client(emulator.url)
        interactions = async_client.aio.interactions
        created = await interactions.create(model=MODEL, input="async hello")
        fetched = await interactions.get(created.id)
        running = await interactions.create(model=MODEL, input="slowly", background=True)
        cancelled = await interactions.cancel(running.id)
        deleted = await interactions.delete(created.id)
        events = [event async for event in await interactions.create(
            model=MODEL, input="stream", stream=True)]
        return created, fetched, cancelled, deleted, events

    created, fetched, cancelled, deleted, events = asyncio.run(round_trip())

    assert fetched.output_text == created.output_text
    assert cancelled.status == "cancelled"
    assert deleted is None
    assert events[-1].event_type == "interaction.completed"


def test_it_logs_every_request_in_order_with_the_api_key_redacted(emulator, client):
    created = client.interactions.create(model=MODEL, input="log me", labels={"team": "support"})
    client.interactions.get(created.id)
    before = time.time()

    log = emulator.requests

    assert [(entry["method"], entry["path"]) for entry in log] == [
        ("POST", "/v1/interactions"), ("GET", f"/v1/interactions/{created.id}")]
    assert log[0]["body"] == {"model": MODEL, "input": "log me", "labels": {"team": "support"}}
    assert log[0]["headers"]["x-goog-api-key"] == "<redacted>"
    assert log[0]["headers"]["user-agent"].startswith("google-genai-sdk/")
    assert log[1]["body"] is None
    assert log[1]["query"] == {"stream": "false"}
    assert log[0]["received_at"] <= log[1]["received_at"] <= before
    assert emulator.requests_for(method="GET") == [log[1]]
    assert emulator.requests_for(path_suffix="/interactions") == [log[0]]


def test_the_request_log_and_reset_are_served_over_http_for_another_process(emulator, client):
    created = client.interactions.create(model=MODEL, input="visible elsewhere")

    status, _, raw = http(emulator, "GET", "/_emulator/requests", key=None)
    assert status == 200
    (entry,) = json.loads(raw)
    assert entry["body"]["input"] == "visible elsewhere"
    assert entry["headers"]["x-goog-api-key"] == "<redacted>"

    assert http(emulator, "POST", "/_emulator/reset", key=None)[0] == 200
    assert emulator.requests == []
    with pytest.raises(api_errors.NotFoundError):
        client.interactions.get(created.id)


def test_a_held_create_is_logged_at_once_and_stored_after_release_even_if_the_client_gave_up(
        emulator, client):
    release = threading.Event()
    emulator.hold_next_create(release)

    with pytest.raises(api_errors.APITimeoutError):
        client.interactions.create(model=MODEL, input="held", timeout=0.3)

    assert [entry["body"]["input"] for entry in emulator.requests] == ["held"]
    assert emulator.interaction_ids == []
    release.set()
    deadline = time.time() + 5
    while not emulator.interaction_ids and time.time() < deadline:
        time.sleep(0.01)
    (stored_id,) = emulator.interaction_ids
    assert emulator.interaction(stored_id)["input"] == "held"
    assert client.interactions.create(model=MODEL, input="not held").status == "completed"


def test_stop_closes_the_port_and_open_connections(emulator, client):
    client.interactions.create(model=MODEL, input="warm the connection pool")

    emulator.stop()

    with pytest.raises(api_errors.APIConnectionError):
        client.interactions.create(model=MODEL, input="after stop")


def test_the_run_emulator_command_prints_its_url_and_stops_cleanly_on_sigterm():
    # A separate process: the command is the only part of the emulator that imports Django.
    project = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SECRET_KEY": "emulator-test-only", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_emulator", "--port", "0", "--id-tag=", "--state="],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "run_emulator printed nothing within 30 s"
        line = process.stdout.readline().strip()
        match = re.fullmatch(
            r"Interactions API emulator listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        command_client = make_client(match.group(1))
        assert command_client.interactions.create(model=MODEL, input="hi").id == "v1_emu0000000001"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_importing_the_emulator_needs_neither_django_nor_the_sdk():
    project = Path(__file__).resolve().parents[2]
    check = ("import sys, runs.emulator; "
             "assert 'django' not in sys.modules and 'google.genai' not in sys.modules")

    subprocess.run([sys.executable, "-c", check], cwd=project, check=True)
