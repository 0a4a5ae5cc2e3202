"""The google-genai client, built lazily once per process, and the calls Handoff makes with it.

The SDK reads ``GEMINI_API_KEY`` and ``GOOGLE_GEMINI_BASE_URL`` from the environment itself
(docs/interactions-api.md §11), so the same code talks to Google, to any compatible endpoint, or to
the bundled emulator.

Responses are read through ``with_raw_response`` so the exact body can be kept (when capture is
on) and validated strictly: the SDK's own parsing is lenient and turns a malformed 200 body into a
half-built object with ``status=None`` (docs/interactions-api.md §10.4).
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import google.genai
import pydantic
from django.conf import settings
from google import genai
from google.genai import _interactions as api_errors
from google.genai import types
from google.genai.interactions import Interaction as APIInteraction

from runs import metrics

SDK_VERSION = google.genai.__version__
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

# Header and body keys whose values never reach an artifact. Matched exactly (case-insensitive),
# never by substring: ``max_output_tokens`` is not a secret.
SECRET_KEYS = frozenset({
    "api_key", "apikey", "key", "x-goog-api-key", "authorization", "proxy-authorization",
    "cookie", "set-cookie", "token", "access_token", "refresh_token", "id_token", "password",
    "passwd", "secret", "client_secret", "x-api-key",
})
REDACTED = "[redacted]"


class MalformedResponse(Exception):
    """The API answered 2xx with a body that is not an interaction.

    ``body`` holds the text received (bytes decoded as UTF-8, replaced where invalid).
    """

    def __init__(self, message: str, body: str):
        super().__init__(message)
        self.body = body


@dataclass
class Response:
    """An interaction as the API sent it.

    ``payload`` is the decoded JSON object and ``body`` the text received. ``schema_error`` says
    where the payload departs from google-genai's ``Interaction`` schema, if it does: Google's
    own documented examples do (a ``google_search_call`` without ``id`` in the quickstart), so
    such a response is recorded as sent, with the note, rather than refused.
    """

    payload: dict[str, Any]
    body: str
    schema_error: str | None = None

    @property
    def id(self) -> str:
        return str(self.payload.get("id") or "")

    @property
    def status(self) -> str:
        return self.payload["status"]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.payload.get("steps") or []

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.payload.get("usage")
        return usage if isinstance(usage, dict) else None

    @property
    def errors(self) -> list[Any]:
        errors = self.payload.get("errors")
        return errors if isinstance(errors, list) else []

    @property
    def continuation_token(self) -> str:
        return str(self.payload.get("continuation_token") or "")


def _is_text_block(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "text"


def texts(value: Any) -> list[str]:
    """The text of every text block (``{"type": "text", "text": "..."}``) in ``value``, at any
    depth, in document order: a content list, a step (a thought's ``summary``, the ``content`` of
    a ``model_output`` or ``user_input``, a ``function_result``'s ``result``), a request's
    ``input``, a list of steps. A string is its own text; a block whose ``text`` is not a string
    has none. ``[]`` when there is none."""
    if isinstance(value, str):
        return [value]
    return [node["text"] for node in find_blocks(value, lambda node: _is_text_block(node)
                                                  and isinstance(node.get("text"), str))]


def find_blocks(value: Any, matches) -> list[dict[str, Any]]:
    """Every dict in ``value`` (any JSON) for which ``matches(node)`` is true, at any depth, in
    document order (a dict before what it holds)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if matches(node):
                found.append(node)
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            return
        for child in children:
            walk(child)

    walk(value)
    return found


def output_text(steps: list[dict[str, Any]]) -> str:
    """The text of the trailing ``model_output`` steps, computed as google-genai 3.3.0 computes
    ``Interaction.output_text`` (``_gaos/types/interactions/interaction.py``): walk the steps
    backwards skipping thoughts, collect text blocks, stop at a user input, at another step type
    once text was found, or at a non-text block. ``""`` when there is none."""
    return "".join(block["text"] if isinstance(block.get("text"), str) else "" for block in output_text_blocks(steps))


def output_text_blocks(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text blocks whose texts ``output_text`` joins, in order, found by the same walk: so a
    page can show each on its own where the SDK's ``output_text`` runs them together with no
    space between (``"...new data.Spain won..."``). ``"".join`` of their ``text`` (``""`` for
    one that is not a string) is ``output_text(steps)``; ``[]`` when there is none."""
    found: list[dict[str, Any]] = []
    collecting = False
    for step in reversed(steps):
        kind = step.get("type")
        if kind == "user_input":
            break
        if kind == "thought":
            continue
        if kind != "model_output":
            if collecting:
                break
            continue
        content = step.get("content")
        if not isinstance(content, list):
            continue
        for item in reversed(content):
            if _is_text_block(item):
                collecting = True
                found.append(item)
            elif collecting:
                return found[::-1]
    return found[::-1]


def _finite_or_text(literal: str) -> float | str:
    """A JSON number as a float, or kept as its literal text when no float holds it (``1e400``)."""
    value = float(literal)
    return value if math.isfinite(value) else literal


def parse(body: str, status_code: int = 200) -> Response:
    """Read an interaction from a response body. Raises ``MalformedResponse`` unless the body is
    a JSON object with a string ``status`` and, if present, a list of step objects.

    ``NaN``, ``Infinity`` and numbers too large for a float (``1e400``) are not JSON (RFC 8259
    §6), yet Python's ``json`` reads them and PostgreSQL's jsonb refuses to store them; they are
    kept as their literal text, so the body is recorded whole and a function call carrying one
    fails its tool's schema and waits for a person."""
    try:
        payload = json.loads(body, parse_constant=str, parse_float=_finite_or_text)
    except ValueError as exc:
        raise MalformedResponse(f"The API answered {status_code} with a body that is not JSON.", body) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("status"), str) or not payload["status"]:
        raise MalformedResponse(f"The API answered {status_code} with a body that is not an interaction (no status).", body)
    steps = payload.get("steps")
    if steps is not None and not (isinstance(steps, list) and all(isinstance(s, dict) for s in steps)):
        raise MalformedResponse(f"The API answered {status_code} with a body whose steps are not a list of steps.", body)
    try:
        APIInteraction.model_validate(payload)
        schema_error = None
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        schema_error = ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"
    return Response(payload=payload, body=body, schema_error=schema_error)


_client_lock = threading.Lock()


def client() -> genai.Client:
    """The process's SDK client, built on first use (after Celery forks, never at import).

    Retries are off in the SDK (``attempts=1``): the Celery tasks decide what to retry, so a
    transient error is not retried five times by the SDK and again by the task.

    Built under a lock: ``functools.cache`` may run a first call once per racing thread, and each
    client but the one kept is garbage collected while its thread still uses it (callers keep
    only ``client().interactions``); ``genai.Client.__del__`` closes its HTTP client, so that
    request fails with "client has been closed" or is cut off mid-flight.
    """
    with _client_lock:
        return _build_client()


@functools.cache
def _build_client() -> genai.Client:
    return genai.Client(
        http_options=types.HttpOptions(
            timeout=settings.GEMINI_TIMEOUT_MS,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
    )


# Forget the client, so the next call builds one from the current settings and environment.
client.cache_clear = _build_client.cache_clear


def endpoint() -> str:
    """The base URL requests go to (for the request manifest)."""
    return os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL


def redact(value: Any) -> Any:
    """A copy of ``value`` (JSON-like) with the values of secret keys replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SECRET_KEYS else redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def request_manifest(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """What was asked of the API, safe to store and show: endpoint, method, path, the body with
    secrets redacted, and the SDK version. The API key is sent as a header by the SDK and is never
    part of the body; it is listed here only as redacted."""
    return {
        "endpoint": endpoint(),
        "method": method,
        "path": path,
        "headers": redact({"x-goog-api-key": "set", "content-type": "application/json"}),
        "body": redact(body),
        "sdk": f"google-genai {SDK_VERSION}",
    }


def _parsed(raw) -> Response:
    return parse(raw.http_response.text, raw.status_code)


def _sent(method: str, send) -> Response:
    """``send()`` (one SDK call), counted by outcome in ``handoff_api_requests_total``, parsed."""
    with metrics.api_request(method) as answered:
        raw = send()
        answered(raw.status_code)
    return _parsed(raw)


def create(body: dict[str, Any]) -> Response:
    """``interactions.create(**body)``.

    Raises the SDK's ``google.genai._interactions`` errors (``APIStatusError`` subclasses,
    ``APIConnectionError``, ``APITimeoutError``), pydantic's ``ValidationError`` or
    ``TypeError``/``ValueError`` when the SDK refuses the body locally before sending it, and
    ``MalformedResponse``.
    """
    return _sent("create", lambda: client().interactions.with_raw_response.create(**body))


def get(interaction_id: str, include_input: bool = False) -> Response:
    """``interactions.get(interaction_id)`` (with ``include_input`` the response carries the
    interaction's ``input``); raises as ``create`` does."""
    options = {"include_input": True} if include_input else {}
    return _sent("get", lambda: client().interactions.with_raw_response.get(interaction_id, **options))


def cancel(interaction_id: str) -> Response:
    """``interactions.cancel(interaction_id)``; raises as ``create`` does."""
    return _sent("cancel", lambda: client().interactions.with_raw_response.cancel(interaction_id))


def describe_error(exc: BaseException) -> str:
    """A one-line, human-readable account of an SDK error for the run page."""
    if isinstance(exc, api_errors.APITimeoutError):
        return f"The request timed out after {settings.GEMINI_TIMEOUT_MS} ms."
    if isinstance(exc, api_errors.APIConnectionError):
        return f"Could not reach the API at {endpoint()}: {exc}"
    if isinstance(exc, api_errors.APIStatusError):
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return f"HTTP {exc.status_code} {error.get('code', '')}: {error['message']}".replace("  ", " ")
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
