"""Registered tools: Python functions whose declarations are sent to Gemini and whose bodies run
in a worker once their call is settled.

A declaration is the API's flat function tool (docs/interactions-api.md §2.3):
``{"type": "function", "name": ..., "description": ..., "parameters": <JSON Schema>}``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import jsonschema

from approvals import policies

logger = logging.getLogger(__name__)

# The decisions a reviewer can take on a call: approve as asked, edit the arguments then
# approve, answer with a result typed by hand, reject with a reason.
APPROVE, EDIT, RESPOND, REJECT = "approve", "edit", "respond", "reject"
WITH_BODY = frozenset({APPROVE, EDIT, REJECT})
WITHOUT_BODY = frozenset({RESPOND, REJECT})


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    # The body; ``None`` for a tool Handoff declares but cannot run: a person answers its calls.
    function: Callable[..., Any] | None
    policy: Callable[[dict[str, Any]], policies.Requirement] = field(default=policies.run_at_once)
    # Which decisions reviewers may take on its calls (part of the registration).
    decisions: frozenset[str] = WITH_BODY
    # One line a reviewer decides on first (the queue, the approval page): ``summary(arguments)``.
    summary: Callable[[dict[str, Any]], str] | None = None

    def declaration(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


registry: dict[str, Tool] = {}


def register(
    *, description: str, parameters: dict[str, Any], policy=policies.run_at_once, name: str | None = None,
    decisions: frozenset[str] = WITH_BODY, summary: Callable[[dict[str, Any]], str] | None = None,
):
    """Decorator registering a function as a tool under its own name (or ``name``).
    ``parameters`` is the JSON Schema of its arguments; ``decisions`` those reviewers may take;
    ``summary(arguments) -> str`` the one line shown first on the queue and the approval page
    (``summary_line``)."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        jsonschema.Draft202012Validator.check_schema(parameters)
        tool = Tool(name or function.__name__, description, parameters, function, policy, frozenset(decisions),
                    summary)
        registry[tool.name] = tool
        return function

    return decorator


def declare(
    *, name: str, description: str, parameters: dict[str, Any], policy=None,
    decisions: frozenset[str] = WITHOUT_BODY, summary: Callable[[dict[str, Any]], str] | None = None,
) -> Tool:
    """Register a tool Handoff declares to the model but has no body for: a person answers each
    call with a result typed by hand. ``summary`` as for ``register``."""
    jsonschema.Draft202012Validator.check_schema(parameters)
    tool = Tool(name, description, parameters, None, policy or policies.run_at_once, frozenset(decisions), summary)
    registry[name] = tool
    return tool


def get(name: str) -> Tool | None:
    return registry.get(name)


def allowed_decisions(name: str) -> frozenset[str]:
    """The decisions reviewers may take on a call of ``name``; a function Handoff does not know
    can only be answered by hand or rejected."""
    tool = registry.get(name)
    if tool is None or tool.function is None:
        return (tool.decisions if tool else WITHOUT_BODY) - {APPROVE, EDIT}
    return tool.decisions


SUMMARY_LIMIT = 160  # characters


def summary_line(name: str, arguments: Any) -> str:
    """The line a reviewer reads first about a call of ``name``: its tool's ``summary(arguments)``,
    one line of at most ``SUMMARY_LIMIT`` characters (cut with "…"), or ``""`` when the tool has
    no summary, is not registered, or its summary fails on these arguments (the failure is logged;
    the arguments, always shown beside it, stay the record). Arguments that do not fit the
    schema are never summarized: a summary written for valid arguments would mislead."""
    tool = registry.get(name)
    if tool is None or tool.summary is None or not isinstance(arguments, dict) or schema_error(name, arguments):
        return ""
    try:
        line = tool.summary(arguments)
    except Exception:
        logger.exception("The summary of %s failed on its arguments; the queue shows them instead.", name)
        return ""
    return _shorten(" ".join(str(line).split()), SUMMARY_LIMIT) if line else ""


def schema_error(name: str, arguments: Any) -> str:
    """Why ``arguments`` do not fit the JSON Schema of the tool ``name``: ``"<path>: <message>"``
    for the most relevant problem (``jsonschema.exceptions.best_match``), or ``""`` when they
    fit or the tool is not registered (it has no schema here). A number that JSON cannot carry
    (NaN, an infinity: Python's ``json`` reads them, PostgreSQL's jsonb refuses them) never fits."""
    tool = registry.get(name)
    if tool is None:
        return ""
    bad_number = _non_finite_path(arguments)
    if bad_number is not None:
        return f"{bad_number or 'arguments'}: not a finite number"
    validator = jsonschema.Draft202012Validator(tool.parameters)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "arguments"
    return f"{where}: {_shorten(error.message)}"


def _non_finite_path(value: Any, path: str = "") -> str | None:
    """The path of the first float in ``value`` that is NaN or infinite, else ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite_path(child, f"{path}/{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def edit_error(name: str, arguments: Any) -> str:
    """Why edited ``arguments`` cannot be put in force for a call of ``name``: one sentence for
    the person who typed them, or ``""`` when they fit the tool's JSON Schema. The edit form
    shows it as the field's error; ``Approval.approve`` refuses the edit with it
    (``DecisionRefused``), so the page and the model say the same."""
    if registry.get(name) is None:
        return f"{name} is not a registered tool: its arguments cannot be edited."
    problem = schema_error(name, arguments)
    if problem:
        return f"The edited arguments do not fit {name}'s schema ({problem})."
    return ""


def evaluate(name: str, arguments: dict[str, Any], *, schema_error: str = "") -> policies.Requirement:
    """The policy requirement for a call of ``name`` with ``arguments``: its tool's policy, or a
    person's answer when Handoff has no tool or no body for it.

    ``schema_error``: why the arguments do not fit the tool's schema (``schema_error(name,
    arguments)``), ``""`` when they fit. Such a
    call never runs at once, whatever its policy says of it: it waits for a person, who sees
    the error and decides, with at least what the policy would ask (a policy that fails on the
    arguments asks for one reviewer)."""
    if schema_error:
        try:
            asked = evaluate(name, arguments)
        except Exception:  # a policy written for valid arguments may fail on others
            asked = policies.Requirement(True, "")
        return replace(
            asked, needs_approval=True,
            reason=f"The arguments do not fit {name}'s schema ({schema_error}): a person decides.",
        )
    tool = registry.get(name)
    if tool is None:
        return policies.Requirement(True, f"{name} is not a registered tool: a person answers it by hand.",
                                    manual_result=True)
    if tool.function is None:
        return policies.Requirement(True, f"{name} has no body in Handoff: a person answers it by hand.",
                                    manual_result=True)
    return tool.policy(arguments)


def declarations(names: list[str]) -> list[dict[str, Any]]:
    """The declarations of the named tools, in order. Raises ``KeyError`` naming an unknown tool."""
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise KeyError(f"Unknown tool(s): {', '.join(unknown)}. Registered: {', '.join(sorted(registry))}.")
    return [registry[n].declaration() for n in names]


# --- The order-support demo ------------------------------------------------------------------

ORDERS = {
    "A-1001": {"total": 249.00, "items": ["Noise-cancelling headphones"], "status": "delivered"},
    "A-1002": {"total": 89.90, "items": ["USB-C dock"], "status": "delivered"},
    "A-1003": {"total": 1450.00, "items": ["4K monitor", "Monitor arm"], "status": "delivered"},
    "A-1004": {"total": 35.00, "items": ["Phone case"], "status": "shipped"},
}


@register(
    description="Look up an order by its id: items, total (USD) and delivery status.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "The order id, e.g. A-1001."}},
        "required": ["order_id"],
    },
    summary=lambda arguments: f"Look up order {arguments['order_id']}",
)
def lookup_order(order_id: str) -> dict[str, Any]:
    order = ORDERS.get(order_id)
    if order is None:
        return {"order_id": order_id, "error": "No order with this id."}
    return {"order_id": order_id, "currency": "USD", **order}


@register(
    description="Refund a customer for an order. Amount in USD.",
    parameters={
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
            "reason": {"type": "string"},
        },
        "required": ["order_id", "amount", "reason"],
        "additionalProperties": False,
    },
    policy=policies.refund_policy,
    summary=lambda arguments: f"Refund ${arguments['amount']:,.2f} on order {arguments['order_id']}: {arguments['reason']}",
)
def issue_refund(order_id: str, amount: float, reason: str) -> dict[str, Any]:
    refund_id = "R-" + hashlib.sha256(f"{order_id}:{amount}".encode()).hexdigest()[:8].upper()
    return {"refund_id": refund_id, "order_id": order_id, "amount": amount, "currency": "USD",
            "status": "issued", "reason": reason}


declare(
    name="send_customer_email",
    description="Send an email to the customer. Handoff has no mail body for it: a support agent sends it and types what happened.",
    parameters={
        "type": "object",
        "properties": {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}},
        "required": ["to", "subject", "body"],
    },
    policy=lambda arguments: policies.Requirement(True, "Customer emails are sent by a person."),
    summary=lambda arguments: f"Email {arguments['to']}: {arguments['subject']}",
)
