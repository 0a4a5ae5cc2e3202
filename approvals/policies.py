"""Policy: per function call, whether it runs at once or waits for a person.

Policies are plain functions registered with their tool (``approvals.tools.register``); they see
the call's arguments and return a ``Decision``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REFUND_REVIEW_THRESHOLD = 200  # USD


@dataclass(frozen=True)
class Decision:
    needs_approval: bool
    reason: str
    # Handoff has no body for the function: the reviewer types the result.
    manual_result: bool = False


def run_at_once(arguments: dict[str, Any]) -> Decision:
    return Decision(needs_approval=False, reason="Read-only tool: runs at once.")


def refund_policy(arguments: dict[str, Any]) -> Decision:
    """Refunds above $200 need a reviewer."""
    try:
        amount = float(arguments.get("amount", 0))
    except (TypeError, ValueError):
        return Decision(True, "The refund amount is not a number: a reviewer must decide.")
    if amount > REFUND_REVIEW_THRESHOLD:
        return Decision(True, f"Refunds above ${REFUND_REVIEW_THRESHOLD} need a reviewer (${amount:,.2f}).")
    return Decision(False, f"Refund of ${amount:,.2f} is within ${REFUND_REVIEW_THRESHOLD}: runs at once.")


def evaluate(name: str, arguments: dict[str, Any]) -> Decision:
    """The policy decision for a call of ``name`` with ``arguments``."""
    from approvals import tools  # tools import this module for their default policy

    tool = tools.get(name)
    if tool is None:
        return Decision(True, f"{name} is not a registered tool: a person answers it by hand.", manual_result=True)
    if tool.function is None:
        return Decision(True, f"{name} has no body in Handoff: a person answers it by hand.", manual_result=True)
    return tool.policy(arguments)
