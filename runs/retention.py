"""Retention: how long the raw payloads of interactions are kept."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit import log
from runs.models import Artifact


def prune_raw_payloads(*, older_than_days: int, actor: str = "system:retention", dry_run: bool = False) -> int:
    """Delete the raw request and response artifacts older than ``older_than_days`` days; steps,
    decisions, the other artifacts and the audit chain stay. Audited. Returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    raw = Artifact.objects.filter(kind__in=[Artifact.Kind.RAW_REQUEST, Artifact.Kind.RAW_RESPONSE], created_at__lt=cutoff)
    count = raw.count()
    if dry_run or not count:
        return count
    with transaction.atomic():
        deleted, _ = raw.delete()
        log.record(actor=actor, verb="artifacts.pruned", obj=None, object_type="artifact", object_id="raw",
               after={"deleted": deleted, "older_than_days": older_than_days, "cutoff": cutoff.isoformat()})
    return deleted
