"""Prometheus metrics, served at ``/metrics`` (``dashboard.views.metrics``).

Counted where things happen, in whichever process they happen in:

- ``handoff_api_requests_total{method, status}``: calls to the Interactions API by SDK method
  (``create``, ``get``, ``cancel``) and outcome: the HTTP status (``200``, ``429``, ``503``, …),
  or the error class when no status came back (``timeout``, ``connection_error``, or the
  exception's class name when the SDK refused the request before sending it).
- ``handoff_approval_decision_seconds{outcome}``: seconds from an approval's creation to the
  decision that settled it (``approved``, ``rejected``), observed once the decision commits.
- ``handoff_recording_seconds``: seconds spent recording one interaction (``recording()``).

Read from the database at each scrape (``DatabaseCollector``), one indexed query each:

- ``handoff_approvals_pending`` and ``handoff_approvals_oldest_pending_age_seconds``;
- ``handoff_audit_unsealed_events`` and ``handoff_audit_oldest_unsealed_age_seconds``
  (``approvals.audit.seal_lag``).

The web server and the Celery workers are separate processes: with ``PROMETHEUS_MULTIPROC_DIR``
set (``make serve`` sets it), every process writes its counts there and ``/metrics`` adds them
up (prometheus-client's multiprocess mode); the folder must be emptied before the processes
start. Without it, ``/metrics`` shows the serving process's own counts only.

This module imports nothing of Handoff's at import time, so ``runs`` and ``approvals`` may call
it without importing the layers above them.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Callable, Iterator

from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

API_REQUESTS = Counter(
    "handoff_api_requests",
    "Interactions API calls by SDK method and outcome (HTTP status or error class).",
    ["method", "status"],
)
DECISION_SECONDS = Histogram(
    "handoff_approval_decision_seconds",
    "Seconds from an approval's creation to its decision.",
    ["outcome"],
    # Reviewers take seconds to days: 10 s up to 3 days.
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600),
)
RECORDING_SECONDS = Histogram(
    "handoff_recording_seconds",
    "Seconds spent recording one interaction (parse, store steps and artifacts, audit, seal).",
    # The target is under 10 ms for 50 steps; large interactions take longer.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


def api_outcome(exc: BaseException) -> str:
    """The ``status`` label of a failed API call: the HTTP status of an ``APIStatusError``,
    ``timeout``, ``connection_error``, else the exception's class name."""
    from google.genai import _interactions as api_errors

    if isinstance(exc, api_errors.APIStatusError):
        return str(exc.status_code)
    if isinstance(exc, api_errors.APITimeoutError):
        return "timeout"
    if isinstance(exc, api_errors.APIConnectionError):
        return "connection_error"
    return type(exc).__name__


@contextmanager
def api_request(method: str) -> Iterator[Callable[[int | str], None]]:
    """Count one Interactions API call. The block calls the function it is given with the HTTP
    status of the response; an exception raised in the block is counted by ``api_outcome`` and
    raised again::

        with metrics.api_request("create") as answered:
            raw = sdk.create(...)
            answered(raw.status_code)
    """
    seen: list[str] = []
    try:
        yield lambda status: seen.append(str(status))
    except BaseException as exc:
        API_REQUESTS.labels(method, seen[-1] if seen else api_outcome(exc)).inc()
        raise
    API_REQUESTS.labels(method, seen[-1] if seen else "unknown").inc()


def decided(approval, outcome: str) -> None:
    """Observe the decision latency of ``approval`` (its ``created_at`` to its ``decided_at``,
    or now) under ``outcome`` once the current transaction commits, so a decision rolled back
    is not counted."""
    seconds = max(0.0, ((approval.decided_at or timezone.now()) - approval.created_at).total_seconds())
    transaction.on_commit(lambda: DECISION_SECONDS.labels(outcome).observe(seconds))


def recording():
    """A context manager (and decorator) that observes the seconds its block takes in
    ``handoff_recording_seconds``: ``with metrics.recording(): ...``."""
    return RECORDING_SECONDS.time()


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time: pending approvals and the age of the
    oldest (the ``(status, created_at)`` index), and the audit chain's seal lag."""

    def describe(self):
        # Named without reading the database, so registering the collector costs nothing.
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("handoff_approvals_pending", "Approvals waiting for a decision."),
            GaugeMetricFamily("handoff_approvals_oldest_pending_age_seconds",
                              "Age in seconds of the oldest pending approval (0 when none)."),
            GaugeMetricFamily("handoff_audit_unsealed_events", "Audit events not yet sealed into the hash chain."),
            GaugeMetricFamily("handoff_audit_oldest_unsealed_age_seconds",
                              "Age in seconds of the oldest unsealed audit event (0 when none)."),
        )

    def collect(self):
        from django.db.models import Count, Min

        from approvals import audit
        from approvals.models import Approval

        try:
            pending = Approval.objects.pending().aggregate(count=Count("pk"), oldest=Min("created_at"))
            unsealed, unsealed_age = audit.seal_lag()
        except DatabaseError:
            # The process's own counts are still worth a scrape; /readyz says the database is down.
            log.warning("Metrics: the database gauges could not be read.", exc_info=True)
            return
        now = timezone.now()
        values = (
            pending["count"],
            (now - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0,
            unsealed,
            unsealed_age,
        )
        for family, value in zip(self._families(), values):
            family.add_metric([], max(0.0, float(value)))
            yield family


_database = DatabaseCollector()
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    REGISTRY.register(_database)


def exposition() -> bytes:
    """Every metric in Prometheus's text format: this process's (or, in multiprocess mode, all
    processes') counts, and the database gauges read now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_database)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
