"""Prometheus metrics counted by approvals: the time from an approval's creation to its decision.
Served with the others at ``/metrics`` (``dashboard.metrics``, which names them all)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from prometheus_client import Histogram

DECISION_SECONDS = Histogram(
    "handoff_approval_decision_seconds",
    "Seconds from an approval's creation to its decision.",
    ["outcome"],
    # Reviewers take seconds to days: 10 s up to 3 days.
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600),
)
def decided(approval, outcome: str) -> None:
    """Observe the decision latency of ``approval`` (its ``created_at`` to its ``decided_at``,
    or now) under ``outcome`` once the current transaction commits, so a decision rolled back
    is not counted."""
    seconds = max(0.0, ((approval.decided_at or timezone.now()) - approval.created_at).total_seconds())
    transaction.on_commit(lambda: DECISION_SECONDS.labels(outcome).observe(seconds))
