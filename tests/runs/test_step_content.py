"""What Handoff reads out of the API's steps and content: a step's call id and name
(``Step.from_api``, for recorded steps and for the steps a request sent), and the text of content
blocks (``gemini.texts``, behind the input preview and an approval's stated reason), next to the
SDK's own ``output_text``."""

import pytest

from runs import gemini
from runs.execution import input_preview
from runs.models import Interaction, Step
from runs.templatetags.steps import request_steps


@pytest.mark.parametrize("data, call_id, name", [
    ({"type": "function_call", "id": "c1", "name": "lookup_order", "call_id": "ignored"}, "c1", "lookup_order"),
    ({"type": "function_result", "call_id": "c1", "name": "lookup_order", "id": "ignored"}, "c1", "lookup_order"),
    ({"type": "google_search_call", "arguments": {}}, "", ""),  # the quickstart's call has no id
    ({"type": "mcp_server_tool_call", "id": 7, "name": None}, "7", ""),
    ({"type": "thought", "id": "t1"}, "", ""),
    ({"type": "function_call", "id": "x" * 300, "name": "n" * 300}, "x" * 200, "n" * 200),
])
def test_a_step_takes_its_call_id_from_a_calls_id_or_a_results_call_id(data, call_id, name):
    step = Step.from_api(data, index=3)
    assert (step.call_id, step.name, step.index, step.data) == (call_id, name, 3, data)


def test_a_step_keeps_any_type_cut_to_its_column():
    assert Step.from_api({"type": "hologram_projection"}).type == "hologram_projection"
    assert Step.from_api({"type": "t" * 100}).type == "t" * 64
    assert Step.from_api({}).type == ""
    interaction = Interaction(pk=5)
    assert Step.from_api({"type": "thought"}, interaction=interaction).interaction_id == 5


def test_the_steps_a_request_sent_take_their_call_ids_the_same_way():
    sent = request_steps({"input": [
        {"type": "function_result", "call_id": "c1", "name": "lookup_order", "result": {"ok": True}},
        {"type": "text", "text": "and also"},
    ]})
    assert [(step.type, step.call_id, step.name, step.index) for step in sent] == [
        ("function_result", "c1", "lookup_order", 0), ("user_input", "", "", 1),
    ]


def test_texts_collect_every_text_block_at_any_depth_in_order():
    value = [
        {"type": "user_input", "content": [{"type": "text", "text": "one"}, {"type": "image", "data": "AAAA"}]},
        {"type": "function_result", "result": [{"type": "text", "text": "two"}]},
        {"type": "text", "text": "three", "annotations": [{"type": "url_citation", "url": "https://a.example"}]},
        {"type": "text", "text": 4},
        "loose string",
    ]
    assert gemini.texts(value) == ["one", "two", "three"]
    assert gemini.texts("a string") == ["a string"]
    assert gemini.texts({"type": "text", "text": "alone"}) == ["alone"]
    assert gemini.texts(None) == [] and gemini.texts(42) == [] and gemini.texts([]) == []


def test_the_input_preview_is_the_text_on_one_line_or_the_json():
    assert input_preview("  two\n  lines ") == "two lines"
    assert input_preview([{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]) == "hello world"
    assert input_preview([{"type": "image", "data": "AAAA"}]) == '[{"type": "image", "data": "AAAA"}]'
    assert input_preview("x" * 400) == "x" * 299 + "…"
    assert input_preview("") == ""


def test_output_text_is_the_trailing_text_as_the_sdk_computes_it():
    steps = [
        {"type": "user_input", "content": [{"type": "text", "text": "question"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "before the call"}]},
        {"type": "function_call", "id": "c1", "name": "f"},
        {"type": "model_output", "content": [{"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "C"}]},
        {"type": "thought", "summary": [{"type": "text", "text": "not output"}]},
    ]
    # From the end: thoughts skipped, text blocks back to the first non-text block.
    assert gemini.output_text(steps) == "BC"
    assert gemini.output_text(steps[:3]) == "before the call"
    assert gemini.output_text(steps[:1]) == ""


def test_output_text_blocks_are_the_blocks_output_text_joins():
    steps = [
        {"type": "user_input", "content": [{"type": "text", "text": "question"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "before the call"}]},
        {"type": "function_call", "id": "c1", "name": "f"},
        {"type": "model_output", "content": [{"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "I checked the new data."}]},
        {"type": "thought", "summary": [{"type": "text", "text": "not output"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "Spain won Euro 2024."}]},
    ]
    blocks = gemini.output_text_blocks(steps)
    assert [block["text"] for block in blocks] == ["B", "I checked the new data.", "Spain won Euro 2024."]
    assert blocks[0] is steps[3]["content"][2]  # the blocks themselves, annotations and all
    # The SDK runs them together; the blocks keep them apart.
    assert "".join(block["text"] for block in blocks) == gemini.output_text(steps) == "BI checked the new data.Spain won Euro 2024."
    for end in range(len(steps) + 1):
        assert "".join(b["text"] for b in gemini.output_text_blocks(steps[:end])) == gemini.output_text(steps[:end])
