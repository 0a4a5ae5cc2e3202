"""Registered tools: Python functions whose declarations are sent to Gemini and whose bodies run
in a worker once their call is settled.

A declaration is the API's flat function tool (gemini-interactions.md §2.3):
``{"type": "function", "name": ..., "description": ..., "parameters": <JSON Schema>}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

from approvals import policies


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    # The body; ``None`` for a tool Handoff declares but cannot run: a person answers its calls.
    function: Callable[..., Any] | None
    policy: Callable[[dict[str, Any]], policies.Decision] = field(default=policies.run_at_once)

    def declaration(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


registry: dict[str, Tool] = {}


def register(*, description: str, parameters: dict[str, Any], policy=policies.run_at_once, name: str | None = None):
    """Decorator registering a function as a tool under its own name (or ``name``)."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        tool = Tool(name or function.__name__, description, parameters, function, policy)
        registry[tool.name] = tool
        return function

    return decorator


def get(name: str) -> Tool | None:
    return registry.get(name)


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
    },
    policy=policies.refund_policy,
)
def issue_refund(order_id: str, amount: float, reason: str) -> dict[str, Any]:
    refund_id = "R-" + hashlib.sha256(f"{order_id}:{amount}".encode()).hexdigest()[:8].upper()
    return {"refund_id": refund_id, "order_id": order_id, "amount": amount, "currency": "USD",
            "status": "issued", "reason": reason}
