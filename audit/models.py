"""The audit log: append-only events, the hash chain that seals them, signed checkpoints of the
chain's head, verifications and export jobs.

The tables keep the names they had when these models lived in ``approvals`` (``approvals_*``,
``Meta.db_table``): the data and the database triggers that guard them stayed where they were
when the models moved (audit migration 0001).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from audit.canonical import canonical_json


class AuditEventQuerySet(models.QuerySet):
    def filtered(
        self, *, since=None, until=None, run_id: int | None = None, actor: str = "", verb: str = "", tool: str = "",
    ) -> AuditEventQuerySet:
        """Events within ``[since, until)`` (aware datetimes), of a run, by an actor, with a verb
        (exact, or every verb of a family: ``approval.`` or ``approval``, since every verb has a
        dot) and about a tool; oldest first. The filters of the audit page, its exports and
        ``export_audit``."""
        events = self
        if since:
            events = events.filter(created_at__gte=since)
        if until:
            events = events.filter(created_at__lt=until)
        if run_id:
            events = events.filter(run_id=run_id)
        if actor:
            events = events.filter(actor=actor)
        if verb and "." not in verb:
            verb += "."
        if verb:
            events = events.filter(verb__startswith=verb) if verb.endswith(".") else events.filter(verb=verb)
        if tool:
            events = events.filter(tool=tool)
        return events.order_by("id")

    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")

    def delete(self):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """An append-only record of a state change or decision, written in the same transaction as the
    change it describes (see ``audit.log.record``)."""

    # The fields an export carries and a chain link hashes, in this order (``as_dict``).
    EXPORT_FIELDS = (
        "id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "tool", "before",
        "after", "request_id", "via",
    )

    actor = models.CharField(max_length=150, help_text="A username, or system:<component>.")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    # Plain ids, not foreign keys: an event must outlive (and never cascade with) what it names.
    run_id = models.BigIntegerField(null=True, blank=True)
    # The function the event is about, for events about a function call ("" otherwise).
    tool = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # How the actor acted when not through the pages or commands: "api:<token name>".
    via = models.CharField(max_length=120, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        db_table = "approvals_auditevent"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["created_at"], name="audit_created_idx"),
            models.Index(fields=["run_id", "id"], name="audit_run_idx"),
            models.Index(fields=["verb", "id"], name="audit_verb_idx"),
            models.Index(fields=["actor", "id"], name="audit_actor_idx"),
            models.Index(fields=["tool", "id"], name="audit_tool_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor} {self.verb} {self.object_type}:{self.object_id}"

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict with the keys of ``EXPORT_FIELDS`` (``created_at`` as
        ISO 8601): what an export writes and, as ``canonical_json``, what its link hashes.
        ``via`` is left out when empty, so the events recorded before it existed hash as they
        did (and a CSV shows it as an empty cell)."""
        event = {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "verb": self.verb,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "run_id": self.run_id,
            "tool": self.tool,
            "before": self.before,
            "after": self.after,
            "request_id": self.request_id,
        }
        if self.via:
            event["via"] = self.via
        return event

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        if not transaction.get_connection().in_atomic_block:
            # An event must commit or roll back with the change it records.
            raise RuntimeError("Write audit events inside the transaction of the change.")
        super().save(*args, **kwargs)  # a trigger queues it for sealing (UnsealedEvent)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only.")


class ChainLink(models.Model):
    """The hash chain over the audit log: link ``position`` seals one event with
    ``hash = SHA-256(prev_hash + canonical JSON of the event)`` (``audit.log.event_hash``).

    Links are appended after the event's transaction commits, by one sealer at a time (a
    PostgreSQL advisory lock), in event id order; keeping the chain out of the business
    transaction means no decision ever waits on the audit lock while holding row locks.
    Append-only like the events (a database trigger on PostgreSQL).
    """

    position = models.PositiveBigIntegerField(unique=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.DO_NOTHING, related_name="link", db_constraint=False)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "approvals_chainlink"
        ordering = ["position"]

    def __str__(self) -> str:
        return f"#{self.position} {self.hash[:12]}"


class UnsealedEvent(models.Model):
    """An audit event written but not yet sealed into the chain: one row per event, inserted by a
    database trigger with the event (``audit_event_unsealed``, audit migration 0001) and deleted
    by the sealer in the transaction that appends its link. The table holds only the chain's backlog, so sealing
    reads what is new at a cost that does not grow with the log. A row deleted by someone else
    leaves its event without a link, which ``verify`` reports once the grace period is over."""

    event = models.OneToOneField(
        AuditEvent, primary_key=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )

    class Meta:
        db_table = "approvals_unsealedevent"

    def __str__(self) -> str:
        return f"event {self.event_id} (unsealed)"


class ChainVerification(models.Model):
    """One run of ``verify_audit`` (or the audit page's Verify button) and what it found."""

    # How ``message`` starts when the chain holds (``audit.chain.verify``).
    HOLDS = "The chain holds: "

    verified_at = models.DateTimeField(default=timezone.now)
    # None while a verification asked for on the audit page is still running.
    ok = models.BooleanField(null=True)
    links_checked = models.PositiveBigIntegerField(default=0)
    # The chain's length when the walk started, for the progress of a running verification.
    links_total = models.PositiveBigIntegerField(default=0)
    first_bad_event_id = models.BigIntegerField(null=True, blank=True)
    message = models.TextField()
    duration_ms = models.PositiveIntegerField(default=0)
    requested_by = models.CharField(max_length=150, blank=True)

    class Meta:
        db_table = "approvals_chainverification"
        ordering = ["-verified_at", "-id"]
        get_latest_by = "verified_at"

    def __str__(self) -> str:
        return f"{'held' if self.ok else 'BROKEN'} at {self.verified_at:%Y-%m-%d %H:%M}"

    @property
    def detail(self) -> str:
        """``message`` without its "The chain holds: " opening, for a page whose badge says so."""
        return self.message.removeprefix(self.HOLDS)


class AuditExport(models.Model):
    """A large audit export written to a file by a Celery job, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=8)
    filters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "approvals_auditexport"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Audit export {self.pk} ({self.format}, {self.status})"

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else int(100 * self.rows_done / self.rows_total) if self.rows_total else 0


class AuditCheckpointQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit checkpoints are append-only.")

    def delete(self):
        raise TypeError("Audit checkpoints are append-only.")


class AuditCheckpoint(models.Model):
    """A signed statement of the chain's head: "at ``created_at`` the chain ended at link
    ``position`` (sealing event ``event_id``) with hash ``hash``". Signed (Ed25519, hex in
    ``signature``) by the key in ``HANDOFF_AUDIT_SIGNING_KEY_FILE``, which lives outside the
    database; each checkpoint's signed bytes include the previous checkpoint's signature, so the
    checkpoints form a chain of their own. ``position`` 0 with the genesis hash is an empty
    chain. Written by ``audit.chain.checkpoint``; append-only like the events (a database
    trigger on PostgreSQL).
    """

    number = models.PositiveBigIntegerField(unique=True)
    position = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    event_id = models.BigIntegerField(null=True, blank=True)
    prev_signature = models.CharField(max_length=128, blank=True)
    key_fingerprint = models.CharField(max_length=64, help_text="SHA-256 (hex) of the raw Ed25519 public key.")
    signature = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditCheckpointQuerySet.as_manager()

    class Meta:
        db_table = "approvals_auditcheckpoint"
        ordering = ["number"]

    def __str__(self) -> str:
        return f"checkpoint {self.number}: link #{self.position} {self.hash[:12]}"

    def fields(self) -> dict[str, Any]:
        """What the signature covers, JSON-ready (``created_at`` as ISO 8601)."""
        return {
            "number": self.number, "position": self.position, "hash": self.hash, "event_id": self.event_id,
            "prev_signature": self.prev_signature, "key_fingerprint": self.key_fingerprint,
            "created_at": self.created_at.isoformat(),
        }

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: a fixed prefix, then ``fields()`` as JSON with sorted
        keys and no spaces."""
        # ``fields()`` holds ASCII only (numbers, hex, an ISO date), so these are the bytes
        # checkpoints were signed over before ``canonical_json`` kept non-ASCII unescaped.
        return b"handoff-audit-checkpoint v1\n" + canonical_json(self.fields())

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit checkpoints are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit checkpoints are append-only.")
