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
  (``audit.log.seal_lag``).

The web server and the Celery workers are separate processes: with ``PROMETHEUS_MULTIPROC_DIR``
set (``make serve`` sets it), every process writes its counts there and ``/metrics`` adds them
up (prometheus-client's multiprocess mode); the folder must be emptied before the processes
start. Without it, ``/metrics`` shows the serving process's own counts only.

Each app counts its own (``runs.metrics``, ``approvals.metrics``); this module, above them all,
reads the database gauges and serves every metric.
"""

from __future__ import annotations

import logging
import os

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from approvals import metrics as approvals_metrics  # noqa: F401  (registers its metrics)
from approvals.models import Approval
from audit.log import seal_lag
from runs import metrics as runs_metrics  # noqa: F401  (registers its metrics)

log = logging.getLogger(__name__)

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
        try:
            pending = Approval.objects.pending().aggregate(count=Count("pk"), oldest=Min("created_at"))
            unsealed, unsealed_age = seal_lag()
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
