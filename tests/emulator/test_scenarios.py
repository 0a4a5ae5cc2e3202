"""The emulator's deterministic scenarios, driven by the real google-genai SDK: plain answers,
the three-turn order-support flow, parallel calls, background runs, and faults.

No Django and no database: these tests import only ``runs.emulator``.
"""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from google.genai import _interactions as api_errors
from google.genai import types
from google.genai.interactions import Interaction, InteractionSSEEvent
from pydantic import TypeAdapter

from runs.emulator import EmulatorServer
from tests.emulator.conftest import make_client
from runs.emulator.scenarios import refund_reason

MODEL = "gemini-2.5-flash"
AGENT = "deep-research-pro-preview-12-2025"
ORDER_TOOLS = [
    {
        "type": "function",
        "name": "lookup_order",
        "description": "Look an order up by id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
    {
        "type": "function",
        "name": "issue_refund",
        "description": "Refund an order.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "amount": {"type": "number"},
                "reason": {"type": "string"},
            },
            "required": ["order_id", "amount", "reason"],
        },
    },
]
LOOKED_UP = {
    "order_id": "A-1001",
    "total": 249.0,
    "currency": "USD",
    "status": "delivered",
    "items": [{"sku": "KETTLE-1", "name": "Glass kettle", "quantity": 1}],
}
SSE_EVENT = TypeAdapter(InteractionSSEEvent)


def http(emulator, method, path, body=None):
    """One raw HTTP request with an API key: returns (status, body bytes)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("x-goog-api-key", "test")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def create_raw(emulator, body):
    status, raw = http(emulator, "POST", "/v1/interactions", body)
    assert status == 200, raw
    return json.loads(raw)


def assert_strictly_valid(document):
    """The document validates as an Interaction, and no known step fell back to Unknown."""
    interaction = Interaction.model_validate(document, strict=True)
    for step in interaction.steps or []:
        if getattr(step, "is_unknown", False):
            assert step.raw["type"] == "hologram_projection"
    return interaction


def function_results(interaction, result_for):
    """One function_result per function_call of ``interaction``, with ``result_for(call)``."""
    return [
        {
            "type": "function_result",
            "call_id": step.id,
            "name": step.name,
            "result": result_for(step),
        }
        for step in interaction.steps
        if step.type == "function_call"
    ]


def ask_support(client, text, **options):
    """Turn 1 of order support: a customer message, with the order tools declared."""
    return client.interactions.create(model=MODEL, tools=ORDER_TOOLS, input=text, **options)


def answer_calls(client, interaction, result_for, **options):
    """The follow-up that answers every function call of ``interaction``."""
    return client.interactions.create(
        model=MODEL, previous_interaction_id=interaction.id,
        input=function_results(interaction, result_for), **options)


# -- plain answers -------------------------------------------------------------


def test_it_answers_a_plain_question_with_a_thought_and_usage(client):
    interaction = client.interactions.create(model=MODEL, input="What makes tides happen?")

    assert interaction.status == "completed"
    thought, answer = interaction.steps
    assert thought.type == "thought"
    assert thought.signature
    assert thought.summary[0].text
    assert answer.type == "model_output"
    assert "What makes tides happen?" in interaction.output_text
    usage = interaction.usage
    assert usage.total_input_tokens > 0
    assert usage.total_output_tokens > 0
    assert usage.total_thought_tokens > 0
    assert usage.total_tokens == (usage.total_input_tokens + usage.total_output_tokens
                                  + usage.total_thought_tokens + usage.total_tool_use_tokens)


def test_the_plain_answer_and_its_usage_depend_only_on_the_input(client):
    first = client.interactions.create(model=MODEL, input="Explain rainbows")
    again = client.interactions.create(model=MODEL, input="Explain rainbows")
    other = client.interactions.create(model=MODEL, input="Explain thunder")

    assert first.id != again.id
    assert first.output_text == again.output_text
    assert first.usage == again.usage
    assert first.steps[0].signature == again.steps[0].signature
    assert other.output_text != first.output_text


def test_it_answers_content_block_input_and_chains_plain_turns(client):
    first = client.interactions.create(
        model=MODEL, input=[{"type": "text", "text": "Name a colour"}])
    second = client.interactions.create(
        model=MODEL, input="Another one", previous_interaction_id=first.id)

    assert "Name a colour" in first.output_text
    assert second.previous_interaction_id == first.id
    assert "Another one" in second.output_text
    # A chained turn re-reads the previous turn, so it costs more input tokens.
    assert second.usage.total_input_tokens > first.usage.total_input_tokens


# -- order support ---------------------------------------------------------------


def test_it_walks_the_order_support_flow_in_three_turns(emulator, client):
    turn1 = ask_support(
        client, "Hi, my kettle from order A-1001 arrived damaged. Can I get my money back?")

    assert turn1.status == "requires_action"
    thought, lookup = turn1.steps
    assert thought.type == "thought" and "look the order up" in thought.summary[0].text
    assert (lookup.type, lookup.name, lookup.arguments) == (
        "function_call", "lookup_order", {"order_id": "A-1001"})
    assert lookup.id.startswith("call_")
    assert turn1.output_text == ""

    turn2 = answer_calls(client, turn1, lambda call: LOOKED_UP, tools=ORDER_TOOLS)

    assert turn2.status == "requires_action"
    assert turn2.previous_interaction_id == turn1.id
    (refund,) = [step for step in turn2.steps if step.type == "function_call"]
    assert refund.name == "issue_refund"
    assert refund.arguments == {
        "order_id": "A-1001", "amount": 249.0, "reason": "Item arrived damaged"}
    assert refund.id != lookup.id

    issued = {"refund_id": "R-77", "status": "issued", "amount": 249.0}
    turn3 = answer_calls(client, turn2, lambda call: issued, tools=ORDER_TOOLS)

    assert turn3.status == "completed"
    assert turn3.steps[-1].type == "model_output"
    assert "refund of $249.00 for order A-1001" in turn3.output_text

    follow_up = emulator.requests_for(method="POST", path_suffix="/interactions")[1]
    assert follow_up["body"] == {
        "model": MODEL,
        "previous_interaction_id": turn1.id,
        "input": [{"type": "function_result", "call_id": lookup.id, "name": "lookup_order",
                   "result": LOOKED_UP}],
        "tools": ORDER_TOOLS,
    }


def test_it_takes_the_order_id_from_the_input_and_defaults_to_a_1001(client):
    named = ask_support(client, "Order Z-90210 is late")
    unnamed = ask_support(client, "My parcel is late")

    assert named.steps[-1].arguments == {"order_id": "Z-90210"}
    assert unnamed.steps[-1].arguments == {"order_id": "A-1001"}


def test_it_refunds_249_when_the_lookup_result_has_no_total(client):
    turn1 = ask_support(client, "A-1001 never arrived")
    turn2 = answer_calls(
        client, turn1, lambda call: [{"type": "text", "text": "order found, shipped"}])

    assert turn2.steps[-1].arguments == {
        "order_id": "A-1001", "amount": 249.0, "reason": "Order never arrived"}


def test_it_reads_the_total_from_a_json_string_result(client):
    turn1 = ask_support(client, "Refund C-3003 please")
    turn2 = answer_calls(
        client, turn1, lambda call: json.dumps({"order_id": "C-3003", "total": "89.90"}))

    assert turn2.steps[-1].arguments == {
        "order_id": "C-3003", "amount": 89.9, "reason": "Customer requested a refund"}


@pytest.mark.parametrize("result, is_error", [
    ({"error": "Rejected by reviewer: no photo of the damage"}, None),
    ("Rejected by reviewer: no photo of the damage", True),
    ([{"type": "text", "text": "Rejected by reviewer: no photo of the damage"}], True),
])
def test_it_writes_a_different_reply_when_the_refund_is_rejected(client, result, is_error):
    turn1 = ask_support(client, "A-1001 arrived broken")
    turn2 = answer_calls(client, turn1, lambda call: LOOKED_UP)
    answers = function_results(turn2, lambda call: result)
    if is_error:
        answers[0]["is_error"] = True

    turn3 = client.interactions.create(
        model=MODEL, previous_interaction_id=turn2.id, input=answers)

    assert turn3.status == "completed"
    assert "wasn't able to issue a refund for order A-1001" in turn3.output_text
    assert '"Rejected by reviewer: no photo of the damage"' in turn3.output_text
    assert "Good news" not in turn3.output_text


def test_it_confirms_the_amount_a_reviewer_edited_into_the_refund(client):
    turn1 = ask_support(client, "A-1001 arrived damaged")
    turn2 = answer_calls(client, turn1, lambda call: LOOKED_UP)
    turn3 = answer_calls(client, turn2, lambda call: {"status": "issued", "amount": 150})

    assert "refund of $150.00 for order A-1001" in turn3.output_text


def test_it_makes_parallel_calls_for_several_orders_and_refunds_each(client):
    turn1 = ask_support(client, "Orders A-1001 and B-2002 both arrived damaged.")

    calls = [step for step in turn1.steps if step.type == "function_call"]
    assert [call.arguments["order_id"] for call in calls] == ["A-1001", "B-2002"]
    assert len({call.id for call in calls}) == 2

    totals = {"A-1001": 249.0, "B-2002": 35.5}
    turn2 = answer_calls(client, turn1, lambda call: {
        "order_id": call.arguments["order_id"], "total": totals[call.arguments["order_id"]]})
    refunds = [
        (step.name, step.arguments["order_id"], step.arguments["amount"])
        for step in turn2.steps
        if step.type == "function_call"
    ]
    assert refunds == [("issue_refund", "A-1001", 249.0), ("issue_refund", "B-2002", 35.5)]

    turn3 = answer_calls(client, turn2, lambda call: {"status": "issued"})
    assert "$249.00 for order A-1001" in turn3.output_text
    assert "$35.50 for order B-2002" in turn3.output_text


def test_it_rejects_a_function_result_whose_call_id_was_never_made(client):
    turn1 = ask_support(client, "A-1001 arrived damaged")

    with pytest.raises(api_errors.BadRequestError) as raised:
        client.interactions.create(
            model=MODEL, previous_interaction_id=turn1.id,
            input=[{"type": "function_result", "call_id": "call_bogus", "result": LOOKED_UP}])

    assert raised.value.body["error"] == {
        "code": "invalid_request",
        "message": f"function_result call_id call_bogus does not match any pending "
                   f"function_call of interaction {turn1.id}."}


def test_it_rejects_a_follow_up_that_leaves_a_pending_call_unanswered(client):
    turn1 = ask_support(client, "A-1001 and B-2002, please")
    first_call, second_call = [step for step in turn1.steps if step.type == "function_call"]

    with pytest.raises(api_errors.BadRequestError) as partial:
        client.interactions.create(
            model=MODEL, previous_interaction_id=turn1.id,
            input=[{"type": "function_result", "call_id": first_call.id, "result": LOOKED_UP}])
    with pytest.raises(api_errors.BadRequestError) as text_only:
        client.interactions.create(
            model=MODEL, previous_interaction_id=turn1.id, input="never mind")

    assert second_call.id in partial.value.body["error"]["message"]
    assert first_call.id not in partial.value.body["error"]["message"]
    assert f"{first_call.id}, {second_call.id}" in text_only.value.body["error"]["message"]


def test_it_rejects_a_duplicate_follow_up_for_calls_already_answered(emulator, client):
    turn1 = ask_support(client, "A-1001 arrived damaged")
    answer_calls(client, turn1, lambda call: LOOKED_UP)

    with pytest.raises(api_errors.BadRequestError) as raised:
        answer_calls(client, turn1, lambda call: LOOKED_UP)

    call_id = turn1.steps[-1].id
    assert raised.value.body["error"] == {
        "code": "invalid_request",
        "message": f"function_result for call_id {call_id} was already received."}
    assert len(emulator.interaction_ids) == 2


def test_only_one_of_many_concurrent_identical_follow_ups_is_accepted(emulator, client):
    turn1 = ask_support(client, "A-1001 arrived damaged")
    body = {"model": MODEL, "previous_interaction_id": turn1.id,
            "input": function_results(turn1, lambda call: LOOKED_UP)}
    statuses = []
    start = threading.Barrier(20)

    def send():
        start.wait()
        statuses.append(http(emulator, "POST", "/v1/interactions", body)[0])

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [400] * 19
    assert len(emulator.interaction_ids) == 2


def test_it_rejects_function_results_for_an_interaction_that_made_no_calls(client):
    plain = client.interactions.create(model=MODEL, input="hello")

    with pytest.raises(api_errors.BadRequestError):
        client.interactions.create(
            model=MODEL, previous_interaction_id=plain.id,
            input=[{"type": "function_result", "call_id": "call_00001", "result": "x"}])


def test_it_continues_a_stateless_history_that_carries_its_own_function_calls(client):
    message = "My order A-1001 arrived damaged"
    turn1 = ask_support(client, message, store=False)
    history = [
        {"type": "user_input", "content": [{"type": "text", "text": message}]},
        *[step.to_dict() for step in turn1.steps],
        *function_results(turn1, lambda call: LOOKED_UP),
    ]

    turn2 = ask_support(client, history, store=False)

    assert turn2.steps[-1].arguments == {
        "order_id": "A-1001", "amount": 249.0, "reason": "Item arrived damaged"}
    with pytest.raises(api_errors.NotFoundError):
        client.interactions.get(turn1.id)


def test_refund_reasons_come_from_the_customers_words():
    assert refund_reason("The mug arrived cracked") == "Item arrived damaged"
    assert refund_reason("It never arrived") == "Order never arrived"
    assert refund_reason("You sent the wrong size") == "Wrong item delivered"
    assert refund_reason("Please refund me") == "Customer requested a refund"


# -- background runs ---------------------------------------------------------------


def test_a_background_agent_run_stays_in_progress_until_the_configured_number_of_polls(client):
    started = client.interactions.create(agent=AGENT, input="History of TPUs", background=True)

    assert (started.status, started.steps, started.agent) == ("in_progress", [], AGENT)
    statuses = [client.interactions.get(started.id).status for _ in range(3)]
    assert statuses == ["in_progress", "in_progress", "completed"]

    finished = client.interactions.get(started.id)
    assert [step.type for step in finished.steps] == [
        "thought", "code_execution_call", "code_execution_result",
        "google_search_call", "google_search_result", "model_output"]
    _, code_call, code_result, search_call, search_result, report = finished.steps
    assert code_call.arguments.language == "python" and code_call.arguments.code
    assert code_result.call_id == code_call.id and code_result.result
    assert search_call.arguments.queries[0] == "History of TPUs"
    assert search_result.call_id == search_call.id
    assert search_result.result[0].search_suggestions
    (text,) = report.content
    (citation,) = text.annotations
    assert citation.type == "url_citation" and citation.url.startswith("https://")
    cited = text.text.encode()[citation.start_index:citation.end_index].decode()
    assert "History of TPUs" in cited
    assert finished.output_text.startswith("# Research report: History of TPUs")
    assert finished.usage.total_tool_use_tokens > 0


def test_the_number_of_polls_before_a_background_run_finishes_is_configurable():
    with EmulatorServer(port=0, background_polls=5) as server:
        slow_client = make_client(server.url)
        started = slow_client.interactions.create(
            agent=AGENT, input="Ocean currents", background=True)
        statuses = [slow_client.interactions.get(started.id).status for _ in range(5)]

    assert statuses == ["in_progress"] * 4 + ["completed"]


def test_a_background_model_request_finishes_with_the_plain_answer(client):
    started = client.interactions.create(
        model=MODEL, input="Why is the sky blue?", background=True)
    for _ in range(3):
        latest = client.interactions.get(started.id)

    assert started.status == "in_progress"
    assert latest.status == "completed"
    assert [step.type for step in latest.steps] == ["thought", "model_output"]
    assert "Why is the sky blue?" in latest.output_text


def test_a_background_run_cannot_be_continued_while_it_is_still_running(client):
    started = client.interactions.create(model=MODEL, input="Long task", background=True)

    with pytest.raises(api_errors.BadRequestError) as raised:
        client.interactions.create(
            model=MODEL, input="and then?", previous_interaction_id=started.id)

    assert "still in progress" in raised.value.body["error"]["message"]


def test_a_streamed_background_agent_run_streams_every_step_to_completion(client):
    events = list(client.interactions.create(
        agent=AGENT, input="Solar sails", background=True, stream=True))

    started = [event.step.type for event in events if event.event_type == "step.start"]
    assert started == ["thought", "code_execution_call", "code_execution_result",
                       "google_search_call", "google_search_result", "model_output"]
    deltas = [event.delta for event in events if event.event_type == "step.delta"]
    annotation_deltas = [delta for delta in deltas if delta.type == "text_annotation_delta"]
    assert annotation_deltas[0].annotations[0].type == "url_citation"
    assert events[-1].interaction.status == "completed"
    assert client.interactions.get(events[0].interaction.id).status == "completed"


# -- faults ------------------------------------------------------------------------


def test_a_failed_fault_gives_a_failed_interaction_with_errors_and_no_output(client):
    interaction = client.interactions.create(model=MODEL, input="Summarise this [fault:failed]")

    assert interaction.status == "failed"
    assert interaction.steps == []
    assert interaction.output_text == ""
    (error,) = interaction.errors
    assert error.code == "internal" and error.message
    assert client.interactions.get(interaction.id).status == "failed"


@pytest.mark.parametrize("status, exception, code", [
    (429, api_errors.RateLimitError, "resource_exhausted"),
    (500, api_errors.InternalServerError, "internal"),
    (503, api_errors.InternalServerError, "unavailable"),
])
def test_an_http_fault_answers_with_that_status_every_time(
        emulator, client, status, exception, code):
    for _ in range(2):
        with pytest.raises(exception) as raised:
            client.interactions.create(model=MODEL, input=f"hello [fault:{status}]")
        assert raised.value.status_code == status
        assert raised.value.body["error"]["code"] == code
    assert emulator.interaction_ids == []


@pytest.mark.parametrize("marker", ["[fault:429x2]", "[fault:503x2]"])
def test_a_counted_http_fault_fails_twice_then_the_sdk_retry_succeeds(emulator, client, marker):
    retrying = make_client(emulator.url, retry_options=types.HttpRetryOptions(
        attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0))

    interaction = retrying.interactions.create(model=MODEL, input=f"hello {marker}")

    assert interaction.status == "completed"
    assert len(emulator.requests_for(method="POST", path_suffix="/interactions")) == 3
    # The count is per request body: a different body starts again from zero.
    with pytest.raises(api_errors.APIStatusError):
        client.interactions.create(model=MODEL, input=f"other {marker}")


def test_a_slow_fault_delays_the_answer_by_the_given_seconds(client):
    started = time.monotonic()
    interaction = client.interactions.create(model=MODEL, input="take your time [fault:slow=0.6]")

    assert time.monotonic() - started >= 0.6
    assert interaction.status == "completed"
    with pytest.raises(api_errors.APITimeoutError):
        client.interactions.create(model=MODEL, input="too slow [fault:slow=1.5]", timeout=0.3)


def test_a_malformed_fault_answers_200_with_a_body_that_is_not_an_interaction(emulator, client):
    lenient = client.interactions.create(model=MODEL, input="[fault:malformed]")
    status, raw = http(
        emulator, "POST", "/v1/interactions", {"model": MODEL, "input": "[fault:malformed]"})

    assert lenient.status is None
    assert status == 200
    document = json.loads(raw)
    assert document["steps"] == "not-a-list" and "status" not in document
    with pytest.raises(ValueError):
        Interaction.model_validate(document)


def test_a_garbage_fault_answers_200_with_a_body_that_is_not_json(emulator, client):
    status, raw = http(
        emulator, "POST", "/v1/interactions", {"model": MODEL, "input": "[fault:garbage]"})

    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(api_errors.APIResponseValidationError):
        client.interactions.create(model=MODEL, input="[fault:garbage]")


def test_a_counted_statusless_get_fault_leaves_status_out_of_the_first_gets_only(emulator, client):
    started = client.interactions.create(
        model=MODEL, input="Slow job [fault:statusless_getx1]", background=True)

    status, raw = http(emulator, "GET", f"/v1/interactions/{started.id}?stream=false")
    odd = json.loads(raw)
    then = [client.interactions.get(started.id).status for _ in range(2)]

    assert started.status == "in_progress"
    assert status == 200 and "status" not in odd
    assert odd["id"] == started.id and odd["object"] == "interaction"
    # The odd get counted as the first of the three polls this emulator runs a job for.
    assert then == ["in_progress", "completed"]


def test_a_statusless_get_fault_answers_every_get_without_a_status(client):
    started = client.interactions.create(
        model=MODEL, input="Never readable [fault:statusless_get]", background=True)

    statuses = [client.interactions.get(started.id).status for _ in range(4)]

    assert statuses == [None] * 4
    streamed = list(client.interactions.get(started.id, stream=True))
    assert streamed[-1].interaction.status == "completed"


def test_an_unknown_step_fault_adds_a_step_the_sdk_keeps_as_unknown(client):
    interaction = client.interactions.create(model=MODEL, input="Hello there [fault:unknown_step]")

    assert interaction.status == "completed"
    assert [step.type for step in interaction.steps] == ["thought", "UNKNOWN", "model_output"]
    assert interaction.steps[1].raw == {"type": "hologram_projection", "frames": 3}
    assert "Hello there" in interaction.output_text


def test_fault_markers_are_read_from_text_blocks_in_a_list_input(client):
    with pytest.raises(api_errors.InternalServerError):
        client.interactions.create(model=MODEL, input=[{"type": "text", "text": "hi [fault:500]"}])


def test_markers_in_an_already_answered_turn_of_a_resent_history_do_not_apply(client):
    first = "Hello [fault:unknown_step]"
    turn1 = client.interactions.create(model=MODEL, input=first, store=False)
    history = [
        {"type": "user_input", "content": [{"type": "text", "text": first}]},
        turn1.steps[-1].to_dict(),
        {"type": "user_input", "content": [{"type": "text", "text": "And now?"}]},
    ]

    turn2 = client.interactions.create(model=MODEL, input=history, store=False)

    assert "UNKNOWN" in [step.type for step in turn1.steps]
    assert [step.type for step in turn2.steps] == ["thought", "model_output"]
    assert "And now?" in turn2.output_text


def test_an_unknown_fault_marker_is_refused_rather_than_ignored(client):
    with pytest.raises(api_errors.BadRequestError) as raised:
        client.interactions.create(model=MODEL, input="oops [fault:explode]")

    assert "[fault:explode]" in raised.value.body["error"]["message"]


# -- conformance: every interaction and event validates strictly ---------------------


def test_every_scenario_response_validates_strictly_as_an_interaction(emulator):
    documents = []

    def keep(document):
        documents.append(document)
        return assert_strictly_valid(document)

    keep(create_raw(emulator, {"model": MODEL, "input": "plain"}))
    keep(create_raw(emulator, {"model": MODEL, "input": "[fault:failed]"}))
    keep(create_raw(emulator, {"model": MODEL, "input": "odd [fault:unknown_step]"}))

    turn1 = keep(create_raw(emulator, {"model": MODEL, "tools": ORDER_TOOLS,
                                       "input": "A-1001 and B-2002 arrived damaged"}))
    turn2 = keep(create_raw(emulator, {"model": MODEL, "previous_interaction_id": turn1.id,
                                       "input": function_results(turn1, lambda call: LOOKED_UP)}))
    keep(create_raw(emulator, {"model": MODEL, "previous_interaction_id": turn2.id,
                               "input": function_results(turn2, lambda call: {"error": "no"})}))
    other = keep(create_raw(emulator, {"model": MODEL, "tools": ORDER_TOOLS, "input": "C-3003?"}))
    failed_lookup = keep(create_raw(emulator, {
        "model": MODEL, "previous_interaction_id": other.id,
        "input": [{**result, "is_error": True}
                  for result in function_results(other, lambda call: "order not found")]}))
    assert failed_lookup.status == "completed"

    running = keep(create_raw(
        emulator, {"agent": AGENT, "input": "Coral reefs", "background": True}))
    cancellable = keep(create_raw(emulator, {"model": MODEL, "input": "wait", "background": True}))
    status, raw = http(emulator, "POST", f"/v1/interactions/{cancellable.id}/cancel")
    keep(json.loads(raw))
    for _ in range(3):
        keep(json.loads(http(emulator, "GET", f"/v1/interactions/{running.id}?stream=false")[1]))
    for interaction_id in emulator.interaction_ids:
        path = f"/v1/interactions/{interaction_id}?stream=false&include_input=true"
        keep(json.loads(http(emulator, "GET", path)[1]))

    statuses = {document["status"] for document in documents}
    assert statuses == {"completed", "failed", "requires_action", "in_progress", "cancelled"}
    assert all(document["object"] == "interaction" for document in documents)


def test_every_streamed_event_of_every_scenario_validates_strictly(emulator):
    bodies = [
        {"model": MODEL, "input": "plain"},
        {"model": MODEL, "input": "[fault:failed]"},
        {"model": MODEL, "input": "odd [fault:unknown_step]"},
        {"model": MODEL, "tools": ORDER_TOOLS, "input": "A-1001 and B-2002"},
        {"agent": AGENT, "input": "Coral reefs", "background": True},
    ]
    for body in bodies:
        status, raw = http(emulator, "POST", "/v1/interactions", {**body, "stream": True})
        assert status == 200
        events = [json.loads(line[len("data: "):]) for line in raw.decode().split("\n")
                  if line.startswith("data: ") and line != "data: [DONE]"]
        for event in events:
            parsed = SSE_EVENT.validate_python(event, strict=True)
            assert not getattr(parsed, "is_unknown", False)
            step = getattr(parsed, "step", None)
            if getattr(step, "is_unknown", False):
                assert step.raw["type"] == "hologram_projection"
            assert not getattr(getattr(parsed, "delta", None), "is_unknown", False)
        assert events[-1]["event_type"] == "interaction.completed"
