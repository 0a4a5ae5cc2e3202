"""Policy: per function call, whether it runs at once or waits for people, and which.

Policies are plain functions registered with their tool (``approvals.tools.register``); they see
the call's arguments and return a ``Requirement``. Which policy judges a call (its tool's, or a
person's when the tool has no body or the arguments do not fit its schema) is
``approvals.tools.evaluate``'s: this module imports nothing of ``approvals``, so the tools can
import it for their default policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

REVIEWERS_GROUP = "reviewers"
FINANCE_LEADS_GROUP = "finance-leads"
REFUND_REVIEW_THRESHOLD = 200  # USD: above it, one reviewer
REFUND_FOUR_EYES_THRESHOLD = 1000  # USD: above it, two reviewers, not the run's creator


@dataclass(frozen=True)
class Requirement:
    """What a call needs before it runs.

    ``approvals_required`` different members of ``group`` must approve (2 for four-eyes);
    ``creator_may_approve=False`` keeps the call's requesters (whoever started the run or
    continued it up to the call, ``Approval.is_requester``) from approving it. With a
    ``deadline`` the call is rejected as expired when it passes (``on_deadline="reject"``) or
    handed to ``escalate_to`` with a fresh deadline (``"escalate"``); a reminder goes out
    ``remind_before`` the deadline.
    """

    needs_approval: bool
    reason: str
    # Handoff has no body for the function: the reviewer types the result.
    manual_result: bool = False
    approvals_required: int = 1
    group: str = REVIEWERS_GROUP
    creator_may_approve: bool = True
    deadline: timedelta | None = None
    on_deadline: str = "reject"
    escalate_to: str = ""
    remind_before: timedelta | None = None


def run_at_once(arguments: dict[str, Any]) -> Requirement:
    return Requirement(needs_approval=False, reason="Read-only tool: runs at once.")


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
