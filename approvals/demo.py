"""The order-support demo: the tools and policy that `make run`, the seeded demo and the tests
load (``HANDOFF_TOOL_MODULES=approvals.demo``); a production start loads only the modules its
settings name.

It is written as a team's own tool module would be, with the public registration API only
(``approvals.tools.register``, ``declare`` and ``Requirement``; README, "Your own tools"):

* ``lookup_order`` is read-only and runs at once;
* ``issue_refund`` runs at once up to $200, needs a reviewer above it and two (four-eyes, not the
  run's creator) above $1,000, with deadlines (``refund_policy``);
* ``send_customer_email`` has no body here: a person sends the email and types what happened.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta
from typing import Any

from approvals.policies import FINANCE_LEADS_GROUP
from approvals.tools import Requirement, declare, register

REFUND_REVIEW_THRESHOLD = 200  # USD: above it, one reviewer
REFUND_FOUR_EYES_THRESHOLD = 1000  # USD: above it, two reviewers, not the run's creator


def refund_policy(arguments: dict[str, Any]) -> Requirement:
    """Refunds above $200 need a reviewer within 4 hours (reminder 30 minutes before, then
    expired); above $1,000 two reviewers, neither the run's creator, within 2 hours, then the
    finance leads decide."""
    try:
        amount = float(arguments.get("amount", 0))
    except (TypeError, ValueError, AttributeError):
        return Requirement(True, "The refund amount is not a number: a reviewer must decide.")
    if not math.isfinite(amount) or amount < 0:
        return Requirement(True, "The refund amount is not a positive number: a reviewer must decide.")
    if amount > REFUND_FOUR_EYES_THRESHOLD:
        shown = f"${amount:,.2f}" if amount < 1e12 else f"${amount:.3g}"
        return Requirement(
            True, f"Refunds above ${REFUND_FOUR_EYES_THRESHOLD:,} need two reviewers ({shown}).",
            approvals_required=2, creator_may_approve=False, deadline=timedelta(hours=2),
            on_deadline="escalate", escalate_to=FINANCE_LEADS_GROUP, remind_before=timedelta(minutes=30),
        )
    if amount > REFUND_REVIEW_THRESHOLD:
        return Requirement(
            True, f"Refunds above ${REFUND_REVIEW_THRESHOLD} need a reviewer (${amount:,.2f}).",
            deadline=timedelta(hours=4), remind_before=timedelta(minutes=30),
        )
    return Requirement(False, f"Refund of ${amount:,.2f} is within ${REFUND_REVIEW_THRESHOLD}: runs at once.")


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
    policy=refund_policy,
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
    policy=lambda arguments: Requirement(True, "Customer emails are sent by a person."),
    summary=lambda arguments: f"Email {arguments['to']}: {arguments['subject']}",
)
