"""Function calls awaiting (or settled without) a human decision, and the audit log."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from runs import execution
from runs.models import Interaction, Run

REVIEWERS_GROUP = "reviewers"
AUDITORS_GROUP = "auditors"


def arguments_hash(arguments: dict[str, Any]) -> str:
    """SHA-256 (hex) of a canonical JSON serialization of a call's arguments.

    A decision carries the hash of the arguments the reviewer saw; it is refused when they differ
    from the ones stored.
    """
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_reviewer(user) -> bool:
    return user.is_authenticated and user.groups.filter(name=REVIEWERS_GROUP).exists()


def is_auditor(user) -> bool:
    return user.is_authenticated and (
        user.is_superuser or user.groups.filter(name__in=[AUDITORS_GROUP, REVIEWERS_GROUP]).exists()
    )


class ApprovalQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=Approval.Status.PENDING)

    def unsettled(self):
        return self.filter(settled_at__isnull=True)


class Approval(models.Model):
    """One ``function_call`` step of a ``requires_action`` interaction and how it was settled.

    Every call of such an interaction gets a row, so "is every call settled?" is one query. Calls
    that policy runs at once are ``auto``; the others are ``pending`` until a reviewer decides.
    A call is *settled* once its ``function_result`` is ready (``settled_at`` is set); the
    follow-up interaction is created when every call of the interaction is settled.
    """

    class Status(models.TextChoices):
        AUTO = "auto", "Run by policy"
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"

    DECIDED_STATUSES = (Status.APPROVED, Status.REJECTED, Status.EXPIRED)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="approvals")
    call_id = models.CharField(max_length=200)
    function_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    arguments_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    policy = models.CharField(max_length=300, help_text="Why policy settled or held the call.")
    # A call of a function Handoff has no body for can only be answered with a typed result.
    requires_manual_result = models.BooleanField(default=False)

    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="decisions",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    # The function_result sent back for this call.
    execution_started_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    result_is_error = models.BooleanField(default=False)
    settled_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["interaction", "call_id"], name="approval_interaction_call_uniq"),
            models.CheckConstraint(
                name="approval_decision_has_decider",
                condition=~Q(status__in=["approved", "rejected"]) | Q(decided_by__isnull=False),
            ),
            models.CheckConstraint(
                name="approval_rejection_has_reason",
                condition=~Q(status="rejected") | ~Q(reason=""),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="approval_status_created_idx"),
            models.Index(fields=["function_name", "status"], name="approval_function_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.function_name} ({self.call_id})"

    def get_absolute_url(self) -> str:
        return reverse("approvals:detail", args=[self.pk])

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    # --- Decisions -----------------------------------------------------------------------------

    def approve(self, *, by, shown_hash: str, result: Any = None) -> bool:
        """Approve this call as ``by``, who was shown arguments hashing to ``shown_hash``.

        The tool body then runs in a worker; a call Handoff has no body for is answered with
        ``result`` (required then, refused otherwise). Returns whether this call won: ``False``
        when the approval was already decided (a double click, another reviewer). Raises
        ``PermissionDenied`` and ``DecisionRefused``.
        """
        from approvals import audit
        from approvals.tasks import execute_function_call

        check_can_decide(by)
        if self.requires_manual_result and result is None:
            raise DecisionRefused(f"{self.function_name} has no body in Handoff: type the result to send.")
        if not self.requires_manual_result and result is not None:
            raise DecisionRefused(f"{self.function_name} runs in Handoff: its result cannot be typed by hand.")
        with transaction.atomic():
            if not self._decide(by, shown_hash, status=self.Status.APPROVED):
                return False
            audit.record(
                actor=by, verb="approval.approved", obj=self, run=self.run,
                before={"status": self.Status.PENDING},
                after={"status": self.Status.APPROVED, "call_id": self.call_id,
                       "function_name": self.function_name, "arguments": self.arguments,
                       **({"result": result} if result is not None else {})},
            )
            if result is not None:
                self.settle(result, is_error=False)
            else:
                pk = self.pk
                transaction.on_commit(lambda: execute_function_call.delay(pk))
        return True

    def reject(self, *, by, shown_hash: str, reason: str) -> bool:
        """Reject this call as ``by`` with ``reason`` (required). The model receives an error
        ``function_result`` carrying the reason and the run goes on. Returns whether this call
        won; raises ``PermissionDenied`` and ``DecisionRefused``."""
        from approvals import audit

        check_can_decide(by)
        reason = reason.strip()
        if not reason:
            raise DecisionRefused("A rejection needs a reason: the model is told it.")
        with transaction.atomic():
            if not self._decide(by, shown_hash, status=self.Status.REJECTED, reason=reason):
                return False
            result = {"error": f"A reviewer rejected this call: {reason}"}
            audit.record(
                actor=by, verb="approval.rejected", obj=self, run=self.run,
                before={"status": self.Status.PENDING},
                after={"status": self.Status.REJECTED, "call_id": self.call_id,
                       "function_name": self.function_name, "arguments": self.arguments,
                       "reason": reason, "result": result},
            )
            self.settle(result, is_error=True)
        return True

    def _decide(self, by, shown_hash: str, *, status: str, reason: str = "") -> bool:
        now = timezone.now()
        won = Approval.objects.filter(
            pk=self.pk, status=self.Status.PENDING, arguments_hash=shown_hash
        ).update(status=status, decided_by=by, decided_at=now, reason=reason)
        self.refresh_from_db()
        if not won and self.is_pending:
            raise DecisionRefused("The arguments changed since they were shown: reload the page and decide again.")
        return bool(won)

    # --- Settling ------------------------------------------------------------------------------

    def execute(self) -> bool:
        """Run the tool body for an auto-run or approved call and settle it with the result.

        Claims the call with a conditional update first, so a duplicate task never runs the body
        twice. An exception from the body is sent to the model as an error result. Returns
        whether this call ran the body.
        """
        from approvals import audit, tools

        claimed = Approval.objects.filter(
            pk=self.pk, status__in=[self.Status.AUTO, self.Status.APPROVED],
            execution_started_at__isnull=True, settled_at__isnull=True,
        ).update(execution_started_at=timezone.now())
        if not claimed:
            return False
        tool = tools.get(self.function_name)
        try:
            result, is_error = tool.function(**self.arguments), False
        except Exception as exc:  # the model is told, and decides what to do next
            result, is_error = {"error": f"{type(exc).__name__}: {exc}"}, True
        with transaction.atomic():
            audit.record(
                actor="system:worker", verb="function_call.executed", obj=self, run=self.run,
                after={"call_id": self.call_id, "function_name": self.function_name,
                       "result": result, "is_error": is_error},
            )
            self.settle(result, is_error=is_error)
        return True

    def settle(self, result: Any, *, is_error: bool) -> bool:
        """Record the ``function_result`` for this call; when it is the interaction's last
        unsettled call, create the follow-up interaction carrying every result.

        Locks the interaction first, so two calls settled at once cannot both see the other as
        unsettled and leave the run waiting forever. Returns whether this call settled it.
        """
        with transaction.atomic():
            interaction = Interaction.objects.select_for_update().select_related("run").get(pk=self.interaction_id)
            settled = Approval.objects.filter(pk=self.pk, settled_at__isnull=True).update(
                result=result, result_is_error=is_error, settled_at=timezone.now()
            )
            if not settled:
                return False
            calls = list(interaction.approvals.order_by("id"))
            if all(call.settled_at for call in calls):
                execution.continue_with(interaction, input=[call.function_result() for call in calls])
        self.refresh_from_db()
        return True

    def function_result(self) -> dict[str, Any]:
        """The ``function_result`` input step for this call (gemini-interactions.md §6)."""
        step = {
            "type": "function_result",
            "call_id": self.call_id,
            "name": self.function_name,
            "result": self.result,
        }
        if self.result_is_error:
            step["is_error"] = True
        return step


class DecisionRefused(Exception):
    """A decision that cannot be taken as asked (stale arguments, a missing result or reason).
    The message says why, for the person who asked."""


def check_can_decide(user) -> None:
    """Raises ``PermissionDenied`` unless ``user`` is a member of the reviewers group."""
    if not is_reviewer(user):
        raise PermissionDenied("Only members of the reviewers group may decide function calls.")


def settle_function_calls(interaction: Interaction) -> str:
    """Settle each ``function_call`` of a ``requires_action`` interaction by policy: calls that
    may run at once are queued for execution; the others become pending approvals.

    Registered as ``runs.execution.hooks.handle_requires_action``; runs inside the transaction
    that records the interaction. Returns the run's new status.
    """
    from approvals import audit, policies
    from approvals.tasks import execute_function_call

    waiting = False
    for step in interaction.function_calls():
        arguments = step.data.get("arguments") or {}
        decision = policies.evaluate(step.name, arguments)
        approval, created = Approval.objects.get_or_create(
            interaction=interaction,
            call_id=step.call_id,
            defaults={
                "run": interaction.run,
                "function_name": step.name,
                "arguments": arguments,
                "arguments_hash": arguments_hash(arguments),
                "status": Approval.Status.PENDING if decision.needs_approval else Approval.Status.AUTO,
                "policy": decision.reason,
                "requires_manual_result": decision.manual_result,
            },
        )
        if created:
            audit.record(
                actor="system:policy",
                verb="approval.requested" if approval.is_pending else "function_call.auto_approved",
                obj=approval, run=interaction.run,
                after={"call_id": approval.call_id, "function_name": approval.function_name,
                       "arguments": arguments, "policy": decision.reason},
            )
        if approval.status == Approval.Status.AUTO and approval.settled_at is None:
            pk = approval.pk
            transaction.on_commit(lambda pk=pk: execute_function_call.delay(pk))
        waiting = waiting or approval.is_pending
    return Run.Status.WAITING_FOR_APPROVAL if waiting else Run.Status.RUNNING


def expire_for_cancelled_run(*, run: Run, by) -> None:
    """Close the pending approvals of a cancelled run (status ``expired``), each with its event.

    Registered as ``runs.execution.hooks.run_cancelled``; runs inside the cancel's transaction.
    """
    from approvals import audit

    now = timezone.now()
    for approval in Approval.objects.select_for_update().filter(run=run, status=Approval.Status.PENDING):
        approval.status = Approval.Status.EXPIRED
        approval.decided_at = now
        approval.reason = f"The run was cancelled by {by.get_username() if by else 'the system'}."
        approval.save(update_fields=["status", "decided_at", "reason"])
        audit.record(
            actor=by or "system:worker", verb="approval.expired", obj=approval, run=run,
            before={"status": Approval.Status.PENDING},
            after={"status": Approval.Status.EXPIRED, "call_id": approval.call_id, "reason": approval.reason},
        )


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")

    def delete(self):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """An append-only record of a state change or decision, written in the same transaction as the
    change it describes (see ``approvals.audit.record``)."""

    actor = models.CharField(max_length=150, help_text="A username, or system:<component>.")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    # Plain ids, not foreign keys: an event must outlive (and never cascade with) what it names.
    run_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["created_at"], name="audit_created_idx"),
            models.Index(fields=["run_id", "id"], name="audit_run_idx"),
            models.Index(fields=["verb", "id"], name="audit_verb_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor} {self.verb} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        if not transaction.get_connection().in_atomic_block:
            # An event must commit or roll back with the change it records.
            raise RuntimeError("Write audit events inside the transaction of the change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only.")
