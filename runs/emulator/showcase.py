"""Showcase scenarios: a ``[showcase:NAME]`` marker in the input text answers with a fixed set of
steps, to see how a client shows each of them.

``[showcase:all_steps]`` answers ``completed`` with every step type of the API, made of Google's
own documented examples wherever one exists. They are copied verbatim into ``payloads/`` from
the reference payloads (``tests/payloads/SOURCES.md`` says where each was published):

* ``05f_all_step_type_examples_apiref.json``: one example per step type (API reference);
* ``05_google_search_steps_quickstart.json``: a signature-only thought, a ``google_search_call``
  with ``arguments.queries`` and no ``id``, a ``search_suggestions`` result, and an answer with a
  ``url_citation`` (quickstart);
* ``05c_image_generation_output_quickstart.json``: an image output, whose ``data`` is the
  placeholder ``BASE64_ENCODED_IMAGE`` as published (quickstart);
* ``05d_structured_output_quickstart.json``: JSON as the text of a ``model_output`` (quickstart);
* ``01b_model_completed_with_thought_quickstart.json``: a thought and an answer (quickstart);
* ``07i_legacy_content_type_examples_apiref_2026-04.json``: the 2026-04 reference's content
  examples, same shapes as today's steps: a ``url_context_result`` with status ``SUCCESS`` (upper
  case), Maps ``places``, file search chunks, an MCP result as a string, a function result as
  text content.

Where no documented example exists, the step is made here from google-genai 3.3.0's step classes
(``google.genai._gaos.types.interactions``): a ``url_context_result`` with each
``URLContextResultStatus``, a Maps result with ``review_snippets``, ``retrieval_call``/``_result``,
``processing_call``/``_result``, a ``model_output`` with an ``error`` (a google.rpc status), an
image whose data is a real PNG, and a step of a type no client knows.

Validation: every step validates on its own with the SDK's ``Interaction.model_validate``
(strict), except the quickstart's ``google_search_call``, which has no ``id`` although
``GoogleSearchCallStep`` requires one. So the response as a whole does not validate (at
``steps.<n>.id``); it is served anyway, exactly as documented, because clients meet such
payloads (Handoff records them with a schema warning).

Standard library only; the payload files are read on first use.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import struct
import zlib
from base64 import b64encode
from importlib import resources
from typing import Any

NAMES = frozenset({"all_steps"})


@functools.cache
def _payload(name: str) -> Any:
    text = resources.files(__package__).joinpath("payloads", name).read_text(encoding="utf-8")
    return json.loads(text)


def payload(name: str) -> Any:
    """A documented payload from ``payloads/`` (a fresh copy; callers may change it)."""
    return copy.deepcopy(_payload(name))


def _png(width: int, height: int) -> bytes:
    """A small RGB PNG (an indigo gradient), built with zlib so the emulator needs no imaging
    library."""
    rows = b"".join(
        b"\x00" + b"".join(
            bytes((
                60 + 120 * x // width,
                70 + 60 * y // height,
                230 - 80 * (x + y) // (width + height),
            ))
            for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def all_steps() -> list[dict]:
    """The steps of ``[showcase:all_steps]``, in timeline order: documented examples first in
    each group, then the ones made from the SDK's classes (see the module docstring)."""
    ref = payload("05f_all_step_type_examples_apiref.json")
    legacy = payload("07i_legacy_content_type_examples_apiref_2026-04.json")
    search = payload("05_google_search_steps_quickstart.json")["steps"]
    thought_answer = payload("01b_model_completed_with_thought_quickstart.json")["steps"]
    image = payload("05c_image_generation_output_quickstart.json")["steps"]
    structured = payload("05d_structured_output_quickstart.json")["steps"]
    png = b64encode(_png(128, 80)).decode("ascii")
    return [
        ref["UserInputStep"],
        ref["ThoughtStep"],
        thought_answer[0],
        ref["ModelOutputStep"],
        ref["FunctionCallStep"],
        ref["FunctionResultStep"],
        legacy["Function Call"],
        legacy["Function Result"],
        ref["CodeExecutionCallStep"],
        ref["CodeExecutionResultStep"],
        ref["GoogleSearchCallStep"],
        ref["GoogleSearchResultStep"],
        search[1],  # no "id": the one documented step that does not validate
        search[2],
        ref["UrlContextCallStep"],
        ref["UrlContextResultStep"],
        legacy["Url Context Result"],
        {
            "type": "url_context_result",
            "call_id": ref["UrlContextCallStep"]["id"],
            "result": [
                {"url": "https://www.example.com", "status": "success"},
                {"url": "https://www.example.org/down", "status": "error"},
                {"url": "https://news.example.net/premium", "status": "paywall"},
                {"url": "https://malware.example.com/", "status": "unsafe"},
            ],
        },
        ref["McpServerToolCallStep"],
        ref["McpServerToolResultStep"],
        legacy["Mcp Server Tool Result"],
        ref["FileSearchCallStep"],
        ref["FileSearchResultStep"],
        legacy["File Search Result"],
        ref["GoogleMapsCallStep"],
        ref["GoogleMapsResultStep"],
        legacy["Google Maps Call"],
        legacy["Google Maps Result"],
        {
            "type": "google_maps_result",
            "call_id": legacy["Google Maps Call"]["id"],
            "result": [{
                "places": [{
                    "name": "Golden Gate Park",
                    "place_id": "ChIJIQBpAG2ahYAR9R7bNdTLg8M",
                    "url": "https://maps.google.com/?cid=1",
                    "review_snippets": [
                        {"review_id": "r1", "title": "Great for a long walk",
                         "url": "https://maps.google.com/?cid=1&review=r1"},
                    ],
                }],
                "widget_context_token": "widgetcontent/AbCdEf",
            }],
        },
        {
            "type": "retrieval_call",
            "id": "retrieval_call_0001",
            "retrieval_type": "vertex_ai_search",
            "arguments": {"queries": ["refund policy for damaged items"]},
        },
        {"type": "retrieval_result", "call_id": "retrieval_call_0001"},
        {"type": "processing_call", "id": "processing_call_0001"},
        {"type": "processing_result", "call_id": "processing_call_0001"},
        image[0],  # data is the placeholder "BASE64_ENCODED_IMAGE", as published
        {"type": "model_output", "content": [{"type": "image", "mime_type": "image/png", "data": png}]},
        structured[0],
        {
            "type": "model_output",
            "content": [{"type": "text", "text": "Part of this answer could not be generated."}],
            "error": {"code": 13, "message": "The model stopped generating because of an internal error."},
        },
        {"type": "hologram_projection", "frames": 3},
        thought_answer[1],
        search[3],
    ]


def respond(name: str, prompt_tokens: int) -> dict:
    """The outcome of showcase ``name`` (one of ``NAMES``): ``{"status", "steps", "usage"}``.
    Usage counts about a token per four characters, as the other scenarios do."""
    steps = all_steps()

    def tokens(value: Any) -> int:
        return max(1, math.ceil(len(json.dumps(value)) / 4))

    texts = [block.get("text") for step in steps if step["type"] == "model_output"
             for block in step.get("content", []) if block.get("type") == "text"]
    output = tokens(texts)
    thought = tokens([s.get("summary") for s in steps if s["type"] == "thought"]) + 16
    tool_use = tokens([s.get("result") for s in steps if s["type"].endswith("_result")])
    # Half of the prompt as if read from the context cache, so every usage field is nonzero.
    cached = prompt_tokens // 2
    return {
        "status": "completed",
        "steps": steps,
        "usage": {
            "total_input_tokens": prompt_tokens,
            "total_output_tokens": output,
            "total_thought_tokens": thought,
            "total_cached_tokens": cached,
            "total_tool_use_tokens": tool_use,
            "total_tokens": prompt_tokens + output + thought + tool_use,
            "input_tokens_by_modality": [{"modality": "text", "tokens": prompt_tokens}],
            "grounding_tool_count": [{"type": "google_search", "count": 2}],
        },
    }
