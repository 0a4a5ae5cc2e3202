"""Policy: per function call, whether it runs at once or waits for people, and which.

Policies are plain functions registered with their tool (``approvals.tools.register``); they see
the call's arguments and return a ``Requirement``. Which policy judges a call (its tool's, or a
person's when the tool has no body or the arguments do not fit its schema) is
``approvals.tools.evaluate``'s: this module imports nothing of ``approvals``, so the tools can
import it for their default policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

REVIEWERS_GROUP = "reviewers"
FINANCE_LEADS_GROUP = "finance-leads"


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
