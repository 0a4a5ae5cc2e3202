"""Deterministic scenarios of the Interactions API emulator.

Everything here is a pure function of the create request body, the stored
interactions it chains onto, and an id source handed in by the server. No
clock, no randomness, no side channel: the same conversation always gets the
same steps, texts and token counts (only ids and timestamps differ, and those
come from the server).

How a create request picks its scenario (first match wins):

1. Fault markers in the input text (see ``find_faults``). ``[fault:failed]``
   gives a ``failed`` interaction with ``errors`` and no steps. The transport
   faults (``[fault:429]``, ``[fault:500]``, ``[fault:slow=2.5]``,
   ``[fault:malformed]``, ``[fault:garbage]``, ...) are applied by the server
   before any scenario runs; ``[fault:unknown_step]`` adds a step of an unknown
   type to whatever the scenario below produced. ``[fault:statusless_get]``
   (or ``[fault:statusless_getxK]``, the first K only) makes every JSON ``get``
   of the interaction answer its document without ``status``; such a get still
   counts as a poll of a background interaction.
2. A showcase marker in the input text: ``[showcase:all_steps]`` answers
   ``completed`` with every step type, from the API's documented examples
   (see ``showcase.py``; that answer does not validate as a whole, because
   one documented step lacks its ``id``).
3. The input holds ``function_result`` steps: a continuation of the previous
   interaction's function calls.
   * results for ``lookup_order``: ``requires_action`` with one
     ``issue_refund(order_id, amount, reason)`` call per order found; the
     amount is the looked-up ``total`` (249.0 when the result has none) and
     the reason is derived from the customer's own words, read back along the
     ``previous_interaction_id`` chain;
   * results for ``issue_refund``: ``completed`` with the customer reply; a
     result with ``is_error: true`` or an ``error`` key gets a reply saying the
     refund could not be issued, quoting the reason from the result;
   * results for any other function: ``completed`` with a short summary.
4. The request declares a function tool named ``lookup_order`` and the input
   carries user text: ``requires_action`` with one ``lookup_order`` call per
   order id in the text (``[A-Z]-\\d{3,}``, default ``A-1001``).
5. The request names an ``agent``: a research report (thought, code
   execution, Google Search, and a cited ``model_output``).
6. Otherwise the plain answer: a ``thought`` step with signature and summary,
   then a ``model_output`` whose text quotes the input.

Background requests (``background: true``) go through the same rules; the
server only delays the outcome until enough ``get`` polls have happened.

Token counts are about one token per four characters of text, never zero, so
usage is nonzero and stable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from . import showcase

# An id source handed in by the server: kind ("call", "code", "search") -> a
# new id unique within that server, e.g. "call_00001".
IdSource = Callable[[str], str]

DEFAULT_ORDER_ID = "A-1001"
DEFAULT_ORDER_TOTAL = 249.0
ORDER_ID_PATTERN = re.compile(r"\b[A-Z]-\d{3,}\b")

FAULT_PATTERN = re.compile(
    r"\[fault:(?P<name>[a-z_]+|\d{3})(?:x(?P<times>\d+))?(?:=(?P<value>\d+(?:\.\d+)?))?\]"
)
KNOWN_FAULTS = {"failed", "slow", "malformed", "garbage", "unknown_step", "statusless_get"}
SHOWCASE_PATTERN = re.compile(r"\[showcase:(?P<name>[a-z_]+)\]")
# Input items a client writes (content blocks and client steps); any other
# step type in an input is part of a resent history of the model's turns.
_CLIENT_ITEM_TYPES = {"text", "image", "audio", "video", "document", "user_input",
                      "function_result"}

# The error code strings the API puts in {"error": {"code": ...}}; the 400 and
# 404 spellings are from published payloads (06, 06c), the rest follow the same
# snake_case convention of google.rpc status names.
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    408: "deadline_exceeded",
    409: "conflict",
    429: "resource_exhausted",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


class ScenarioError(Exception):
    """A request the emulator refuses; the server turns it into an HTTP error.

    ``status`` is the HTTP status (400, 404, ...); ``code`` the API's error
    code string.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = ERROR_CODES.get(status, "unknown")
        self.message = message


@dataclass(frozen=True)
class Faults:
    """The fault markers found in one create request's input.

    ``http_status`` is the status to answer with (429, 500, 503, ...) or None;
    ``http_times`` how many identical requests get it before the request
    succeeds (None: every time). ``slow_seconds`` is a delay in seconds.
    ``statusless_gets`` is how many JSON ``get`` calls of the interaction
    answer without ``status``: 0 none, None every one.
    """

    failed: bool = False
    http_status: int | None = None
    http_times: int | None = None
    slow_seconds: float = 0.0
    malformed: bool = False
    garbage: bool = False
    unknown_step: bool = False
    statusless_gets: int | None = 0


# ---------------------------------------------------------------------------
# Reading requests


def input_texts(input_value: Any) -> list[str]:
    """Every piece of text the new turn of a request ``input`` carries, in order.

    Covers a string input, ``text`` content blocks (alone, in a list, or inside
    ``user_input`` steps) and ``function_result`` results given as a string or
    as text blocks. Structured (dict) tool results are data, not text, and are
    left out. When the input resends a history of steps (``store=false``),
    only the steps after the model's last step count: the earlier ones belong
    to turns that were already answered.
    """
    if isinstance(input_value, str):
        return [input_value]
    items = input_value if isinstance(input_value, list) else [input_value]
    model_steps = [
        index
        for index, item in enumerate(items)
        if isinstance(item, dict) and item.get("type") not in _CLIENT_ITEM_TYPES
    ]
    texts: list[str] = []
    for item in items[model_steps[-1] + 1:] if model_steps else items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif kind == "user_input":
            texts.extend(_text_blocks(item.get("content")))
        elif kind == "function_result":
            result = item.get("result")
            if isinstance(result, str):
                texts.append(result)
            else:
                texts.extend(_text_blocks(result))
    return texts


def user_text(input_value: Any) -> str:
    """The user's own words in a request ``input``, or ``""``.

    A string input, text blocks, or the text of the last ``user_input`` step
    when the input is a history of steps. Function results are not user text.
    """
    if isinstance(input_value, str):
        return input_value.strip()
    items = input_value if isinstance(input_value, list) else [input_value]
    loose = _text_blocks(items)
    if loose:
        return "\n".join(loose).strip()
    for item in reversed(items):
        if isinstance(item, dict) and item.get("type") == "user_input":
            return "\n".join(_text_blocks(item.get("content"))).strip()
    return ""


def function_results(input_value: Any) -> list[dict]:
    """The ``function_result`` steps of a request ``input`` (a list), in order."""
    if not isinstance(input_value, list):
        return []
    return [
        item
        for item in input_value
        if isinstance(item, dict) and item.get("type") == "function_result"
    ]


def declared_functions(body: dict) -> set[str]:
    """Names of the ``function`` tools a create request declares (tools are flat)."""
    return {
        tool.get("name")
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "function"
    }


def find_faults(body: dict) -> Faults:
    """The fault markers in a create request's input text.

    Markers: ``[fault:failed]``, ``[fault:NNN]`` for an HTTP status (429, 500,
    503, ...), ``[fault:NNNxK]`` to fail only the first K identical requests,
    ``[fault:slow=SECONDS]``, ``[fault:malformed]``, ``[fault:garbage]``,
    ``[fault:unknown_step]`` and ``[fault:statusless_get]`` (every get) or
    ``[fault:statusless_getxK]`` (the first K gets). Raises ``ScenarioError`` (400) for a marker name
    the emulator does not know, so a typo in a test does not pass silently.
    """
    found: dict[str, Any] = {}
    for text in input_texts(body.get("input")):
        for match in FAULT_PATTERN.finditer(text):
            name, times, value = match.group("name", "times", "value")
            if name.isdigit():
                status = int(name)
                if not 400 <= status <= 599:
                    raise ScenarioError(400, f"Unknown fault marker {match.group(0)}")
                found["http_status"] = status
                found["http_times"] = int(times) if times else None
            elif name in KNOWN_FAULTS:
                if name == "slow":
                    found["slow_seconds"] = float(value or 1.0)
                elif name == "statusless_get":
                    found["statusless_gets"] = int(times) if times else None
                else:
                    found[name] = True
            else:
                raise ScenarioError(400, f"Unknown fault marker {match.group(0)}")
    return Faults(**found)


def find_showcase(body: dict) -> str | None:
    """The name in a ``[showcase:NAME]`` marker of the input text, or None.

    Raises ``ScenarioError`` (400) for a name ``showcase.NAMES`` does not hold.
    """
    for text in input_texts(body.get("input")):
        match = SHOWCASE_PATTERN.search(text)
        if match:
            if match.group("name") not in showcase.NAMES:
                raise ScenarioError(400, f"Unknown showcase marker {match.group(0)}")
            return match.group("name")
    return None


# ---------------------------------------------------------------------------
# Choosing and building an outcome


def respond(body: dict, history: list[dict], new_id: IdSource) -> dict:
    """The outcome of one create request, before the server adds its envelope.

    ``body`` is the create request as received. ``history`` lists the stored
    interactions the request chains onto, oldest first, each a dict with
    ``request`` (its create body), ``status``, ``steps`` (its output steps)
    and ``usage``; it is empty without ``previous_interaction_id``. ``new_id``
    hands out tool call ids.

    Returns ``{"status": str, "steps": [step dicts], "usage": usage dict}``
    plus ``"errors": [{"code", "message"}]`` for a failed interaction. Raises
    ``ScenarioError`` for an unknown fault or showcase marker.
    """
    faults = find_faults(body)
    input_value = body.get("input")
    context_tokens = _context_tokens(history)
    prompt_tokens = _tokens(_request_text(body)) + context_tokens

    if faults.failed:
        return {
            "status": "failed",
            "steps": [],
            "usage": _usage(prompt_tokens, 0, 0),
            "errors": [
                {
                    "code": "internal",
                    "message": "An internal error occurred while generating the response.",
                }
            ],
        }

    results = function_results(input_value)
    showcase_name = find_showcase(body)
    if showcase_name:
        outcome = showcase.respond(showcase_name, prompt_tokens)
    elif results:
        outcome = _continue_after_results(results, input_value, history, prompt_tokens, new_id)
    elif "lookup_order" in declared_functions(body) and user_text(input_value):
        outcome = _look_up_orders(user_text(input_value), prompt_tokens, new_id)
    elif body.get("agent"):
        outcome = _research_report(user_text(input_value), prompt_tokens, new_id)
    else:
        outcome = _plain_answer(user_text(input_value), prompt_tokens)

    if faults.unknown_step:
        # Placed before the final step so the SDK's output_text, which reads
        # trailing model_output steps, still finds the answer.
        steps = outcome["steps"]
        steps.insert(max(len(steps) - 1, 0), {"type": "hologram_projection", "frames": 3})
    return outcome


def _plain_answer(prompt: str, prompt_tokens: int) -> dict:
    quoted = _squash(prompt, 160)
    if quoted:
        summary = f"The user asks: \"{quoted}\". A short, direct answer is enough."
        text = (
            f"You asked: \"{quoted}\".\n\n"
            f"Here is a short answer: {_answer_sentence(prompt)}"
        )
    else:
        summary = "There is no question yet, so a greeting is enough."
        text = "Hello! How can I help you today?"
    steps = [_thought(summary), _model_output(text)]
    return {
        "status": "completed",
        "steps": steps,
        "usage": _usage(prompt_tokens, _tokens(text), _tokens(summary) + 16),
    }


def _look_up_orders(prompt: str, prompt_tokens: int, new_id: IdSource) -> dict:
    order_ids = list(dict.fromkeys(ORDER_ID_PATTERN.findall(prompt))) or [DEFAULT_ORDER_ID]
    if len(order_ids) == 1:
        summary = (
            f"The customer is asking about order {order_ids[0]}. Before deciding on a "
            "refund I need the order details, so I will look the order up."
        )
    else:
        summary = (
            f"The customer mentions {len(order_ids)} orders ({', '.join(order_ids)}). "
            "I will look them all up at once before deciding on refunds."
        )
    calls = [
        {
            "type": "function_call",
            "id": new_id("call"),
            "name": "lookup_order",
            "arguments": {"order_id": order_id},
        }
        for order_id in order_ids
    ]
    output_tokens = sum(_tokens(json.dumps(call["arguments"])) for call in calls)
    return {
        "status": "requires_action",
        "steps": [_thought(summary), *calls],
        "usage": _usage(prompt_tokens, output_tokens, _tokens(summary) + 16),
    }


def _continue_after_results(
    results: list[dict], input_value: Any, history: list[dict], prompt_tokens: int,
    new_id: IdSource,
) -> dict:
    # The calls being answered live in the previous interaction, or earlier in
    # the same input when the client resends the whole history (store=false).
    calls = _calls_by_id(history[-1] if history else None)
    calls.update(_calls_by_id({"steps": input_value if isinstance(input_value, list) else []}))
    named = [(result, _function_name(result, calls)) for result in results]
    if any(name == "lookup_order" for _, name in named):
        lookups = [(result, calls.get(result.get("call_id"))) for result, name in named
                   if name == "lookup_order"]
        return _issue_refunds(lookups, _customer_words(input_value, history), prompt_tokens, new_id)
    if named and all(name == "issue_refund" for _, name in named):
        refunds = [(result, calls.get(result.get("call_id"))) for result, _ in named]
        return _reply_to_customer(refunds, prompt_tokens)
    return _acknowledge_results(named, prompt_tokens)


def _issue_refunds(
    lookups: list[tuple[dict, dict | None]],
    customer_words: str,
    prompt_tokens: int,
    new_id: IdSource,
) -> dict:
    reason = refund_reason(customer_words)
    refunds = []
    failures = []
    for result, call in lookups:
        data = _result_data(result)
        order_id = _order_id(data, call)
        problem = _result_error(result, data)
        if problem is not None:
            failures.append((order_id, problem))
            continue
        total = _number(data.get("total") if isinstance(data, dict) else None)
        if total is None:
            total = DEFAULT_ORDER_TOTAL
        currency = data.get("currency", "USD") if isinstance(data, dict) else "USD"
        refunds.append((order_id, total, currency))

    if not refunds:
        # Nothing to refund: the lookups themselves failed.
        text = " ".join(
            f"I'm sorry, I couldn't find the details of order {order_id} "
            f"(the lookup said: \"{problem}\"). Could you double-check the order number?"
            for order_id, problem in failures
        )
        summary = "The order lookup failed, so no refund can be issued yet."
        return {
            "status": "completed",
            "steps": [_thought(summary), _model_output(text)],
            "usage": _usage(prompt_tokens, _tokens(text), _tokens(summary) + 16),
        }

    described = "; ".join(
        f"order {order_id} totals {_money(total, currency)}"
        for order_id, total, currency in refunds
    )
    summary = (
        f"The lookup shows {described}. The customer reports: {reason.lower()}. "
        "Issuing a full refund is the right next step."
    )
    calls = [
        {
            "type": "function_call",
            "id": new_id("call"),
            "name": "issue_refund",
            "arguments": {"order_id": order_id, "amount": total, "reason": reason},
        }
        for order_id, total, _currency in refunds
    ]
    output_tokens = sum(_tokens(json.dumps(call["arguments"])) for call in calls)
    return {
        "status": "requires_action",
        "steps": [_thought(summary), *calls],
        "usage": _usage(prompt_tokens, output_tokens, _tokens(summary) + 16),
    }


def _reply_to_customer(refunds: list[tuple[dict, dict | None]], prompt_tokens: int) -> dict:
    paragraphs = []
    rejected = 0
    for result, call in refunds:
        data = _result_data(result)
        arguments = (call or {}).get("arguments") or {}
        order_id = _order_id(data, call)
        problem = _result_error(result, data)
        if problem is not None:
            rejected += 1
            paragraphs.append(
                f"I'm sorry, but I wasn't able to issue a refund for order {order_id}. "
                f"The reason given was: \"{problem}\". If you have more details, reply to "
                "this message and we will take another look."
            )
            continue
        # A reviewer may have edited the amount; the result says what was refunded.
        amount = _number(data.get("amount") if isinstance(data, dict) else None)
        if amount is None:
            amount = _number(arguments.get("amount"))
        if amount is None:
            amount = DEFAULT_ORDER_TOTAL
        currency = data.get("currency", "USD") if isinstance(data, dict) else "USD"
        paragraphs.append(
            f"Good news: I've issued a refund of {_money(amount, currency)} for order "
            f"{order_id}. You should see it on your statement within 5 to 10 business days."
        )
    text = "\n\n".join(paragraphs)
    if rejected:
        summary = "The refund was not issued; the customer needs to hear why, politely."
    else:
        summary = "The refund went through; confirming the amount and order to the customer."
    return {
        "status": "completed",
        "steps": [_thought(summary), _model_output(text)],
        "usage": _usage(prompt_tokens, _tokens(text), _tokens(summary) + 16),
    }


def _acknowledge_results(named: list[tuple[dict, str]], prompt_tokens: int) -> dict:
    lines = []
    for result, name in named:
        data = _result_data(result)
        problem = _result_error(result, data)
        shown = problem if problem is not None else _squash(_as_text(data), 200)
        verdict = "reported an error" if problem is not None else "returned"
        lines.append(f"- {name or 'the function'} {verdict}: {shown}")
    text = "Here is what the tools reported:\n" + "\n".join(lines)
    summary = "All function results are in; summarising them for the user."
    return {
        "status": "completed",
        "steps": [_thought(summary), _model_output(text)],
        "usage": _usage(prompt_tokens, _tokens(text), _tokens(summary) + 16),
    }


def _research_report(prompt: str, prompt_tokens: int, new_id: IdSource) -> dict:
    topic = _squash(prompt, 120) or "the requested topic"
    words = re.findall(r"[A-Za-z0-9]+", topic) or ["topic"]
    lengths = [len(word) for word in words]
    code = (
        "import statistics\n"
        f"word_lengths = {lengths!r}\n"
        "print(len(word_lengths), round(statistics.mean(word_lengths), 2))\n"
    )
    code_result = f"{len(lengths)} {round(sum(lengths) / len(lengths), 2)}\n"
    queries = [topic, f"{topic} recent developments"]
    slug = "-".join(word.lower() for word in words[:6])
    source_url = f"https://research.example.org/{slug}"
    source_title = "research.example.org"

    cited = f"Recent sources describe steady, well-documented progress on {topic}."
    text = (
        f"# Research report: {topic}\n\n"
        "## Summary\n\n"
        f"{cited} The findings below combine two searches and one small calculation.\n\n"
        "## Findings\n\n"
        f"1. The question spans {len(lengths)} key terms.\n"
        "2. Published material agrees on the main points; no source contradicts another.\n"
        "3. Open questions remain about long-term effects, which current sources do not settle.\n"
    )
    # Annotation offsets are measured in bytes of the UTF-8 text (URLCitation docstring).
    encoded = text.encode("utf-8")
    start = encoded.index(cited.encode("utf-8"))
    end = start + len(cited.encode("utf-8"))

    code_id = new_id("code")
    search_id = new_id("search")
    summary = (
        f"Planning research on {topic}: search the web for recent sources, "
        "run a small calculation, then write a cited report."
    )
    steps = [
        _thought(summary),
        {
            "type": "code_execution_call",
            "id": code_id,
            "arguments": {"code": code, "language": "python"},
        },
        {"type": "code_execution_result", "call_id": code_id, "result": code_result},
        {"type": "google_search_call", "id": search_id, "arguments": {"queries": queries}},
        {
            "type": "google_search_result",
            "call_id": search_id,
            "result": [{"search_suggestions": f"<!-- search suggestions for: {topic} -->"}],
        },
        {
            "type": "model_output",
            "content": [
                {
                    "type": "text",
                    "text": text,
                    "annotations": [
                        {
                            "type": "url_citation",
                            "url": source_url,
                            "title": source_title,
                            "start_index": start,
                            "end_index": end,
                        }
                    ],
                }
            ],
        },
    ]
    tool_tokens = _tokens(code + code_result + " ".join(queries))
    usage = _usage(prompt_tokens, _tokens(text), _tokens(summary) * 8, tool_tokens)
    usage["grounding_tool_count"] = [{"type": "google_search", "count": len(queries)}]
    return {"status": "completed", "steps": steps, "usage": usage}


# ---------------------------------------------------------------------------
# Pieces


def refund_reason(customer_words: str) -> str:
    """A short refund reason derived from what the customer wrote.

    >>> refund_reason("My order A-1001 arrived damaged")
    'Item arrived damaged'
    """
    text = customer_words.lower()
    rules = [
        (("damaged", "broken", "cracked", "smashed", "dented"), "Item arrived damaged"),
        (("never arrived", "not arrived", "didn't arrive", "did not arrive", "lost", "missing"),
         "Order never arrived"),
        (("wrong item", "wrong size", "wrong colour", "wrong color", "not what i ordered"),
         "Wrong item delivered"),
        (("late", "delayed"), "Order arrived late"),
        (("defective", "doesn't work", "does not work", "stopped working", "faulty"),
         "Item is defective"),
        (("cancel",), "Customer cancelled the order"),
        (("charged twice", "double charged", "duplicate charge"), "Customer was charged twice"),
    ]
    for keywords, reason in rules:
        if any(keyword in text for keyword in keywords):
            return reason
    return "Customer requested a refund"


def _customer_words(input_value: Any, history: list[dict]) -> str:
    # The latest user text, in a resent history or along the stored chain, is
    # the message that started this order flow.
    words = user_text(input_value)
    if words:
        return words
    for record in reversed(history):
        words = user_text(record.get("request", {}).get("input"))
        if words:
            return words
    return ""


def _calls_by_id(record: dict | None) -> dict[str, dict]:
    if not record:
        return {}
    return {
        step["id"]: step
        for step in record.get("steps") or []
        if isinstance(step, dict) and step.get("type") == "function_call" and "id" in step
    }


def _function_name(result: dict, calls: dict[str, dict]) -> str:
    call = calls.get(result.get("call_id"))
    if call is not None:
        return call.get("name", "")
    return result.get("name") or ""


def _result_data(result: dict) -> Any:
    """A function result as data: a dict when the result is (or holds) JSON."""
    value = result.get("result")
    if isinstance(value, list):
        value = "\n".join(_text_blocks(value))
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed
    return value


def _result_error(result: dict, data: Any) -> str | None:
    """The error a function result reports, as a message, or None when it succeeded."""
    error = data.get("error") if isinstance(data, dict) else None
    if error:
        if isinstance(error, dict):
            return str(error.get("message") or json.dumps(error, sort_keys=True))
        return str(error)
    if result.get("is_error"):
        if isinstance(data, dict):
            for key in ("reason", "message", "detail"):
                if data.get(key):
                    return str(data[key])
        return _squash(_as_text(data), 300) or "The call failed."
    return None


def _order_id(data: Any, call: dict | None) -> str:
    if isinstance(data, dict) and isinstance(data.get("order_id"), str):
        return data["order_id"]
    arguments = (call or {}).get("arguments") or {}
    return str(arguments.get("order_id") or DEFAULT_ORDER_ID)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").lstrip("$"))
        except ValueError:
            return None
    return None


def _money(amount: float, currency: str) -> str:
    if currency == "USD":
        return f"${amount:,.2f}"
    return f"{amount:,.2f} {currency}"


def _answer_sentence(prompt: str) -> str:
    # sha256 rather than hash(): stable across runs and Python processes.
    answers = [
        "It depends on the details; the main factors are cost, time and risk.",
        "In most cases the simplest approach works best: start small and measure.",
        "Yes, with one caveat: check the assumptions before relying on the result.",
        "Break the problem into smaller steps and handle each one in turn.",
    ]
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return answers[digest[0] % len(answers)]


def _thought(summary: str) -> dict:
    signature = base64.b64encode(hashlib.sha256(summary.encode("utf-8")).digest()).decode("ascii")
    return {
        "type": "thought",
        "signature": signature,
        "summary": [{"type": "text", "text": summary}],
    }


def _model_output(text: str) -> dict:
    return {"type": "model_output", "content": [{"type": "text", "text": text}]}


def _usage(
    input_tokens: int, output_tokens: int, thought_tokens: int, tool_use_tokens: int = 0
) -> dict:
    return {
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "total_thought_tokens": thought_tokens,
        "total_cached_tokens": 0,
        "total_tool_use_tokens": tool_use_tokens,
        "total_tokens": input_tokens + output_tokens + thought_tokens + tool_use_tokens,
        "input_tokens_by_modality": [{"modality": "text", "tokens": input_tokens}],
    }


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _request_text(body: dict) -> str:
    # What the model reads this turn: input, system instruction and tool declarations.
    parts = [body.get("input") or "", body.get("system_instruction") or "", body.get("tools") or ""]
    return "".join(
        part if isinstance(part, str) else json.dumps(part, sort_keys=True) for part in parts
    )


def _context_tokens(history: list[dict]) -> int:
    # A chained turn re-reads the previous turn's context and output.
    if not history:
        return 0
    usage = history[-1].get("usage") or {}
    return int(usage.get("total_input_tokens", 0)) + int(usage.get("total_output_tokens", 0))


def _text_blocks(content: Any) -> list[str]:
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return []
    return [
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _squash(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."
