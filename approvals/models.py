"""Function calls awaiting (or settled without) a human decision, and the audit log.

Locks follow the one order written down in ``runs.execution`` ("Locks"): the run, then the
interaction, then its approvals. Every decision, expiry and settlement below takes them that way
(``_locked_for_decision``, ``settle``); claims and reminders lock one approval row alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from approvals import metrics, notifications, tools
from approvals.policies import REVIEWERS_GROUP
from audit import log, roles
from audit.canonical import canonical_json
from runs import execution
from runs.models import Interaction, Run, Step

AUDITORS_GROUP = "auditors"

# The task that runs a settled call's tool body (approvals.tasks calls this module, so it is named,
# not imported: see runs.execution, SEND_TASK).
EXECUTE_TASK = "approvals.tasks.execute_function_call"


def arguments_hash(arguments: dict[str, Any]) -> str:
    """SHA-256 (hex) of a canonical JSON serialization of a call's arguments.

    A decision carries the hash of the arguments the reviewer saw; it is refused when they differ
    from the ones stored.
    """
    return hashlib.sha256(canonical_json(arguments)).hexdigest()


def in_group(user, group: str) -> bool:
    """Whether ``user`` is signed in and in the group named ``group``. A user that
    ``RoleBackend`` loaded for a request carries ``group_names``, read once (one query) for all
    of that request's checks; any other user object is asked with a query each time, so it never
    answers from a stale list."""
    if not user.is_authenticated:
        return False
    names = getattr(user, "group_names", None)
    if names is not None:
        return group in names
    return user.groups.filter(name=group).exists()


def is_reviewer(user) -> bool:
    return in_group(user, REVIEWERS_GROUP)


def is_auditor(user) -> bool:
    """Whether ``user`` may read the audit log (``audit.roles``: auditors, reviewers, admins)."""
    return roles.may(user, "read_audit")


CLAIM_LEASE = timedelta(minutes=10)


class StillExecuting(Exception):
    """Another worker claimed this call's execution and may still be running it; look again in
    ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__(f"still executing; check again in {seconds:.0f}s")
        self.seconds = seconds


class DecisionRefused(Exception):
    """A decision that cannot be taken as asked (stale arguments, a missing result or reason,
    edited arguments that do not fit the tool's schema, a claim held by someone else, the same
    person approving twice). Raised by ``Approval``'s decisions, here and nowhere else; the
    message says why, for the person who asked."""


def state_conditions(now: datetime) -> dict[str, Q]:
    """The approval desk's states as conditions, by name (``QueueFilterForm.STATES``): *pending*
    holds every call waiting for people, claimed or not; *claimed* those of them an unexpired
    claim holds at ``now``; *decided* the approved and rejected ones; *expired* those closed
    with no decision. The queue counts every state in one aggregate (``Count(filter=...)``) and
    lists one with ``ApprovalQuerySet.in_state``, so a tab's count is the length of its list."""
    return {
        "pending": Q(status=Approval.Status.PENDING),
        "claimed": Q(status=Approval.Status.PENDING, claimed_until__gt=now),
        "decided": Q(status__in=[Approval.Status.APPROVED, Approval.Status.REJECTED]),
        "expired": Q(status=Approval.Status.EXPIRED),
    }


def _claim_lapsed(now: datetime) -> Q:
    """No unexpired claim holds the call at ``now`` (``Approval.is_claimed``, as a condition)."""
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


# The queue's age filter: older than each.
AGES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1)}


class ApprovalQuerySet(models.QuerySet):
    def filtered(self, filters: dict[str, Any], *, user, now: datetime):
        """Calls people decide (never the ones policy ran at once), narrowed by the queue's
        filters (``QueueFilterForm``'s cleaned data; the page, bulk, "Claim next" and the API
        take the same): ``tool``, ``run`` (id), ``age`` (a key of ``AGES``), ``assignee`` (a
        username or ``"me"``: holding an unexpired claim), ``policy`` (text in it),
        ``requirement`` (``"four-eyes"`` or ``"single"``), ``group``. Empty values are ignored;
        the state (``in_state``) is the caller's."""
        approvals = self.exclude(status=Approval.Status.AUTO)
        if filters.get("tool"):
            approvals = approvals.filter(function_name=filters["tool"])
        if filters.get("run"):
            approvals = approvals.filter(run_id=filters["run"])
        if filters.get("age"):
            approvals = approvals.filter(created_at__lte=now - AGES[filters["age"]])
        if filters.get("assignee"):
            holder = Q(claimed_by=user) if filters["assignee"] == "me" else Q(claimed_by__username=filters["assignee"])
            approvals = approvals.filter(holder, claimed_until__gt=now)
        if filters.get("policy"):
            approvals = approvals.filter(policy__icontains=filters["policy"])
        if filters.get("requirement") == "four-eyes":
            approvals = approvals.filter(approvals_required__gt=1)
        elif filters.get("requirement") == "single":
            approvals = approvals.filter(approvals_required=1)
        if filters.get("group"):
            approvals = approvals.filter(approver_group=filters["group"])
        return approvals

    def in_state(self, state: str, *, now: datetime | None = None):
        """The approvals in the desk's state ``state`` (``state_conditions``; ``KeyError`` for
        another name) at ``now`` (default: now)."""
        return self.filter(state_conditions(now or timezone.now())[state])

    def pending(self):
        return self.in_state("pending")

    def unsettled(self):
        return self.filter(settled_at__isnull=True)

    def claimed(self, now: datetime | None = None):
        return self.in_state("claimed", now=now)

    def unclaimed(self, now: datetime | None = None):
        return self.pending().filter(_claim_lapsed(now or timezone.now()))

    def decidable_by(self, user):
        """Pending approvals ``user`` may decide (``Approval.actions_for``'s ``may_decide``, as a
        condition): none without the reviewer role, else those whose approver group is one of
        the user's (``audit.roles.group_names``: at most one query)."""
        if not roles.may(user, "decide"):
            return self.none()
        return self.pending().filter(approver_group__in=roles.group_names(user))

    def with_progress(self, user):
        """The approvals annotated, in the same query, with ``approvals_count`` (approve
        decisions on the arguments in force, as ``Approval.approvals_so_far`` counts them),
        ``approved_by_me`` (``user`` is one of them) and ``requested_by_me``
        (``Approval.is_requester(user)``): a list shows "1 of 2 approvals" and what ``user`` may
        do with each row (``Approval.actions_for``) without a query per row."""
        counting = Decision.objects.filter(
            approval=OuterRef("pk"), verdict=Decision.Verdict.APPROVE, arguments_hash=OuterRef("arguments_hash")
        )
        asked = Interaction.objects.filter(
            run_id=OuterRef("run_id"), sequence__lte=OuterRef("interaction__sequence"), requested_by=user.pk
        )
        return self.annotate(
            approvals_count=Coalesce(
                Subquery(counting.order_by().values("approval").annotate(n=Count("pk")).values("n")[:1]), 0
            ),
            approved_by_me=Exists(counting.filter(user=user.pk)),
            requested_by_me=ExpressionWrapper(Q(Exists(asked)) | Q(run__created_by=user.pk),
                                              output_field=BooleanField()),
        )

    def by_step(self, calls: Iterable[Step], *, user=None) -> dict[int, Approval]:
        """The approval of each of ``calls`` (saved ``function_call`` steps) that has one, keyed
        by the step's pk, with ``run``, ``decided_by`` and ``claimed_by`` loaded (what
        ``approvals/_approval_box.html`` shows). With ``user``, each carries ``actions``
        (``actions_for(user)``: the box offers a review only to who may decide), read in the same
        query (``with_progress``). One query, none for no calls. Read through a run's
        ``approvals`` (what the run page does: ``runs.timeline``), that run's only."""
        calls = list(calls)
        if not calls:
            return {}
        approvals = self.filter(call_id__in={step.call_id for step in calls}).select_related(
            "run", "decided_by", "claimed_by"
        )
        if user is not None:
            approvals = approvals.with_progress(user)
        found = {(approval.interaction_id, approval.call_id): approval for approval in approvals}
        if user is not None:
            now = timezone.now()
            for approval in found.values():
                approval.actions = approval.actions_for(user, now=now)
        return {
            step.pk: found[key] for step in calls if (key := (step.interaction_id, step.call_id)) in found
        }

    def waits(self) -> list[Wait]:
        """The times these approvals' run waited for people, one ``Wait`` per interaction whose
        calls policy held for a decision (every status but ``auto``), in the chain's order. One
        query (an aggregate per interaction), whatever the number of calls. Read through a run's
        ``approvals`` (the run page's timing: ``runs.timeline``), that run's only."""
        rows = (
            self.exclude(status=Approval.Status.AUTO).order_by()
            .values("interaction_id", "interaction__sequence")
            .annotate(opened=Min("created_at"), decided=Max("decided_at"), calls=Count("pk"),
                      open_calls=Count("pk", filter=Q(status=Approval.Status.PENDING)),
                      name=Min("function_name"), names=Count("function_name", distinct=True))
            .order_by("interaction__sequence")
        )
        return [
            Wait(interaction_pk=row["interaction_id"], sequence=row["interaction__sequence"],
                 opened=row["opened"], decided=None if row["open_calls"] else row["decided"],
                 calls=row["calls"], function_name=row["name"] + (" …" if row["names"] > 1 else ""))
            for row in rows
        ]


@dataclass(frozen=True)
class Wait:
    """One time a run waited for people (``ApprovalQuerySet.waits``): the calls of one
    interaction that policy held for a decision, from the first of them opened (``opened``: its
    approval created, when the interaction's ``requires_action`` was recorded) to the last of them
    decided (``decided``: approved, rejected or expired; ``None`` while one is pending). The calls
    of one interaction wait side by side and the run goes on once all are settled, so they count
    once, not once per call; the interactions of a run follow one another, so its waits never
    overlap."""

    interaction_pk: int
    sequence: int  # the interaction's position in its run, from 0
    opened: datetime
    decided: datetime | None
    calls: int  # how many of its calls waited
    function_name: str  # the first of their names, alphabetically, with " …" when there are others



@dataclass(frozen=True)
class Actions:
    """What one person may do with one approval at one instant: ``Approval.actions_for``'s
    answer, every field a ``bool``, all ``False`` for a call no longer pending.

    Each ``can_*`` names a model call: when it is true that call, made now by that person on the
    arguments shown, is taken (unless someone else acts first); when false the model refuses it
    (``PermissionDenied``, ``DecisionRefused``, or ``False`` for a claim). Pages show the
    controls of the true ones; the views and the model check again when the person acts.

    - ``may_decide``: the call is pending and the person decides calls of its approver group (a
      member of it, with the reviewer role of ``audit.roles``); a claim may still hold them off.
    - ``claimed_by_me``, ``claimed_by_other``: an unexpired claim holds the call, theirs or
      someone else's.
    - ``creator_blocked``: policy bars this person from approving as one of the call's
      requesters (``Approval.is_requester``); they may still reject it.
    - ``can_approve``: ``approve(by=, shown_hash=)``, the arguments as shown.
    - ``can_edit``: ``approve(..., arguments=)``, edited arguments (which fit the tool's schema
      and do not make the policy bar this person: both are judged when they are given).
    - ``can_respond``: ``approve(..., result=)``, a result typed by hand.
    - ``can_reject``: ``reject(by=, shown_hash=, reason=)``.
    - ``can_claim``: ``claim(by=)``, taking the call or renewing one's own claim.
    - ``can_release``: ``release(by=)``, one's own claim, or anyone's for an admin.
    """

    may_decide: bool = False
    claimed_by_me: bool = False
    claimed_by_other: bool = False
    creator_blocked: bool = False
    can_approve: bool = False
    can_edit: bool = False
    can_respond: bool = False
    can_reject: bool = False
    can_claim: bool = False
    can_release: bool = False


_NOT_GIVEN = object()


def _passes(check, *args, **kwargs) -> bool:
    """Whether ``check`` (one of ``Approval``'s ``_check_*`` rules) lets ``args`` through."""
    try:
        check(*args, **kwargs)
    except (PermissionDenied, DecisionRefused):
        return False
    return True


class Approval(models.Model):
    """One ``function_call`` step of a ``requires_action`` interaction and how it was settled.

    Every call of such an interaction gets a row, so "is every call settled?" is one query. Calls
    that policy runs at once are ``auto``; the others are ``pending`` until enough reviewers
    decide (``approvals_required``; two for four-eyes). A call is *settled* once its
    ``function_result`` is ready (``settled_at`` is set); the follow-up interaction is created when
    every call of the interaction is settled.

    ``arguments`` are the model's, never changed; a reviewer who edits them before approving
    stores ``edited_arguments``, and ``arguments_hash`` is always the hash of the arguments in
    force (the edited ones if any), so a decision made on what was shown before an edit is
    refused.
    """

    class Status(models.TextChoices):
        AUTO = "auto", "Run by policy"
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"

    class OnDeadline(models.TextChoices):
        REJECT = "reject", "Reject as expired"
        ESCALATE = "escalate", "Escalate to another group"

    DECIDED_STATUSES = (Status.APPROVED, Status.REJECTED, Status.EXPIRED)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="approvals")
    call_id = models.CharField(max_length=200)
    function_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    edited_arguments = models.JSONField(null=True, blank=True)
    arguments_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    policy = models.TextField(help_text="Why policy settled or held the call.")
    # Why the model's arguments do not fit the tool's JSON Schema ("" when they do): such a call
    # never runs at once, a person sees this and decides.
    schema_error = models.TextField(blank=True)
    # A call of a function Handoff has no body for can only be answered with a typed result.
    requires_manual_result = models.BooleanField(default=False)

    # What policy requires (approvals.policies.Requirement), fixed when the call arrives.
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_group = models.CharField(max_length=150, default=REVIEWERS_GROUP)
    creator_may_approve = models.BooleanField(default=True)
    allowed_decisions = models.JSONField(default=list)
    deadline_at = models.DateTimeField(null=True, blank=True)
    on_deadline = models.CharField(max_length=16, choices=OnDeadline.choices, default=OnDeadline.REJECT)
    escalate_to = models.CharField(max_length=150, blank=True)
    remind_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    # A claim is a lease: the holder may decide; others see who holds it until it lapses.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)

    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="decisions_made",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    # The function_result sent back for this call.
    execution_started_at = models.DateTimeField(null=True, blank=True)
    # When the body's result was committed (before the call is settled and the follow-up made):
    # a result is never lost to anything that fails after the body ran.
    executed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    result_is_error = models.BooleanField(default=False)
    settled_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)

    objects = ApprovalQuerySet.as_manager()

    # Not a column: the follow-up interaction the last ``settle`` of this instance recorded.
    follow_up: Interaction | None = None

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
            models.CheckConstraint(name="approval_needs_someone", condition=Q(approvals_required__gte=1)),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="approval_status_created_idx"),
            models.Index(fields=["function_name", "status"], name="approval_function_status_idx"),
            models.Index(fields=["status", "deadline_at"], name="approval_status_deadline_idx"),
            models.Index(fields=["status", "remind_at"], name="approval_status_remind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.function_name} ({self.call_id})"

    def get_absolute_url(self) -> str:
        return reverse("approvals:detail", args=[self.pk])

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_open(self) -> bool:
        """Whether the call still waits for something: a decision (pending), or its result once
        approved (``settled_at`` unset). Its box on the run page polls while it is open and the
        run is active."""
        return self.is_pending or self.status == self.Status.APPROVED and self.settled_at is None

    @property
    def current_arguments(self) -> dict[str, Any]:
        """The arguments in force: the reviewer's edit if there is one, else the model's."""
        return self.edited_arguments if self.edited_arguments is not None else self.arguments

    @property
    def summary(self) -> str:
        """The tool's one-line summary of the arguments in force (``tools.summary_line``), or
        ``""``: the queue then shows the arguments themselves."""
        # The arguments in force were checked against the schema when recorded or edited
        # (``schema_error``, cleared by an edit, which must fit): no check again on every poll.
        return tools.summary_line(self.function_name, self.current_arguments, fits=not self.schema_error)

    def is_requester(self, user) -> bool:
        """Whether ``user`` asked for this call: started the run, or continued or tracked it with
        an interaction up to the one that produced the call (``Interaction.requested_by``; the
        run's creator also counts for runs recorded before that field). Where policy says so
        (``creator_may_approve=False``: four-eyes), a requester may not approve the call."""
        if user.pk is None:
            return False
        if self.run.created_by_id == user.pk:
            return True
        return Interaction.objects.filter(
            run_id=self.run_id, sequence__lte=self.interaction.sequence, requested_by=user.pk
        ).exists()

    def _claimed(self, now: datetime) -> bool:
        """Whether an unexpired claim holds this pending call at ``now``."""
        return self.is_pending and self.claimed_until is not None and self.claimed_until > now

    @property
    def is_claimed(self) -> bool:
        return self._claimed(timezone.now())

    def approvals_so_far(self) -> int:
        """Approve decisions that count: made on the arguments in force."""
        return self.decisions.filter(verdict=Decision.Verdict.APPROVE, arguments_hash=self.arguments_hash).count()

    def _approvers(self) -> set[int]:
        """The ids of the users whose approve decisions count (``approvals_so_far``)."""
        return set(self.decisions.filter(verdict=Decision.Verdict.APPROVE, arguments_hash=self.arguments_hash)
                   .values_list("user_id", flat=True))

    # --- Rights --------------------------------------------------------------------------------
    # Each rule is written once, as a check that raises. The decisions and claims below call the
    # checks to enforce the rules; ``actions_for`` calls the same checks to say what a person
    # may do, so a page never offers what the model refuses, nor hides what it would take.

    def check_group(self, user) -> None:
        """Raises ``PermissionDenied`` unless ``user`` is in this call's approver group: what a
        page checks before it reads a decision's form. Every decision checks it again, and the
        rest, under the approval's lock (``_locked_for_decision``)."""
        if not in_group(user, self.approver_group):
            raise PermissionDenied(f"Only members of the {self.approver_group} group may decide this call.")

    def _check_decider(self, user) -> None:
        """Raises ``PermissionDenied`` unless ``user`` decides calls of this one's approver
        group: a member of it (``check_group``) with the reviewer role (``audit.roles``:
        *decide*)."""
        self.check_group(user)
        roles.require(user, "decide")

    def _check_may_approve(self, user, *, requester: bool | None = None) -> None:
        """Raises ``PermissionDenied`` unless ``user`` may approve this call as it now stands: a
        decider, and not one of its requesters where policy bars them (``requester``: whether
        ``user`` is one; ``is_requester`` asks when ``None``)."""
        self._check_decider(user)
        if not self.creator_may_approve and (self.is_requester(user) if requester is None else requester):
            raise PermissionDenied("Policy: whoever asked for this call (started or continued its run) may not "
                                   "approve it; another reviewer must.")

    def _check_decision(self, user, kind: str, *, requester: bool | None = None) -> None:
        """Raises unless ``user`` may take the decision ``kind`` (``tools.APPROVE``, ``EDIT``,
        ``RESPOND``, ``REJECT``) on this call whatever its state, checked in this order: a call
        Handoff has no body for is answered with a typed result (``DecisionRefused``); who
        decides (``_check_may_approve``, or ``_check_decider`` to reject: a requester may
        reject; ``PermissionDenied``); the tool allows ``kind`` (``DecisionRefused``)."""
        if kind in (tools.APPROVE, tools.EDIT) and self.requires_manual_result:
            raise DecisionRefused(f"{self.function_name} has no body in Handoff: type the result to send.")
        if kind == tools.REJECT:
            self._check_decider(user)
        else:
            self._check_may_approve(user, requester=requester)
        if kind not in self.allowed_decisions:
            raise DecisionRefused(f"{self.function_name} does not allow this decision ({kind}).")

    def _check_claim(self, user, now: datetime) -> None:
        """Raises ``DecisionRefused`` when a claim of someone other than ``user`` holds this call
        at ``now``: its holder decides it until the claim lapses or is released."""
        if self._claimed(now) and self.claimed_by_id != user.pk:
            until = timezone.localtime(self.claimed_until).strftime("%H:%M")
            holder = self.claimed_by.get_username() if self.claimed_by else "Someone"
            raise DecisionRefused(f"{holder} has claimed this call until {until}.")

    def _check_fits_schema(self) -> None:
        """Raises ``DecisionRefused`` when the arguments in force do not fit the tool's schema:
        such a call is not approved as it is (an edit that fits, a typed result, or a
        rejection)."""
        if self.schema_error:
            raise DecisionRefused(f"The arguments do not fit {self.function_name}'s schema: edit them "
                                  "so they do, or reject the call.")

    @staticmethod
    def _check_not_approved(approved: bool) -> None:
        """Raises ``DecisionRefused`` when the person approved the arguments in force already
        (``approved``): one person counts once, and may then only reject."""
        if approved:
            raise DecisionRefused("You approved this already: it needs another reviewer's approval.")

    def _may_release(self, user) -> bool:
        """Whether ``user`` may release the claim on this call: its holder, or an admin freeing a
        stuck item (``audit.roles``: *administer*). ``release`` puts the same rule in its
        conditional update."""
        return self.claimed_by_id == user.pk or roles.may(user, "administer")

    def _given(self, name: str, read) -> bool:
        """The annotation ``name`` when the instance carries it (SQL's NULL, as ``False``), else
        what ``read()`` finds."""
        value = self.__dict__.get(name, _NOT_GIVEN)
        return bool(read() if value is _NOT_GIVEN else value)

    def actions_for(self, user, *, now: datetime | None = None) -> Actions:
        """What ``user`` may do with this call at ``now`` (default: now): an ``Actions``,
        computed with the very checks its decisions and claims enforce (``_check_*``, in the
        order the decisions run them), so a page offers a control exactly when the model would
        take what it posts. All ``False`` once the call is no longer pending.

        Uses ``approved_by_me`` and ``requested_by_me`` when the instance carries them for
        ``user`` (``ApprovalQuerySet.with_progress(user)``, or a page that read the decisions
        itself); else asks the database, one query each, only when a rule needs it (load ``run``
        and ``interaction`` with the row for ``is_requester``). Raises nothing."""
        if not self.is_pending:
            return Actions()
        now = now or timezone.now()
        claimed = self._claimed(now)
        mine = claimed and self.claimed_by_id == user.pk
        may_decide = _passes(self._check_decider, user)
        requester = None
        if not self.creator_may_approve:
            requester = self._given("requested_by_me", lambda: self.is_requester(user))
        approved = may_decide and self._given("approved_by_me", lambda: user.pk in self._approvers())

        def can(kind: str) -> bool:
            # What approve() and reject() check, in their order, less what a person cannot get
            # wrong by using the page (the hash shown, the reason, the arguments typed).
            if not may_decide:
                return False
            try:
                self._check_decision(user, kind, requester=requester)
                self._check_claim(user, now)
                if kind == tools.APPROVE:
                    self._check_fits_schema()
                if kind != tools.REJECT:
                    self._check_not_approved(approved)
            except (PermissionDenied, DecisionRefused):
                return False
            return True

        return Actions(
            may_decide=may_decide,
            claimed_by_me=mine,
            claimed_by_other=claimed and not mine,
            creator_blocked=bool(requester),
            can_approve=can(tools.APPROVE),
            can_edit=can(tools.EDIT),
            can_respond=can(tools.RESPOND),
            can_reject=can(tools.REJECT),
            can_claim=may_decide and (mine or not claimed),
            can_release=claimed and self._may_release(user),
        )

    # --- Claims --------------------------------------------------------------------------------

    def claim(self, *, by, lease: timedelta = CLAIM_LEASE) -> bool:
        """Claim this pending call for ``by`` until ``lease`` from now (renewing their own claim).
        Returns ``False`` when someone else holds an unexpired claim or it is no longer pending.
        Raises ``PermissionDenied`` when ``by`` may not decide it."""
        self._check_decider(by)
        now = timezone.now()
        with transaction.atomic():
            won = Approval.objects.pending().filter(_claim_lapsed(now) | Q(claimed_by=by), pk=self.pk).update(
                claimed_by=by, claimed_until=now + lease
            )
            if won:
                log.record(actor=by, verb="approval.claimed", obj=self, run=self.run_id,
                             after={"call_id": self.call_id, "until": (now + lease).isoformat()})
        self.refresh_from_db()
        return bool(won)

    @classmethod
    def claim_next(cls, *, by, queryset=None, lease: timedelta = CLAIM_LEASE) -> "Approval | None":
        """Claim the oldest unclaimed pending call ``by`` may decide (from ``queryset`` if
        given). Rows other reviewers are claiming at this instant are skipped, not waited for
        (``SELECT … FOR UPDATE SKIP LOCKED``), so many reviewers pulling work from one queue
        never get the same item. Returns the claimed approval or ``None``."""
        now = timezone.now()
        base = (queryset if queryset is not None else cls.objects.all()).decidable_by(by)
        with transaction.atomic():
            approval = (
                base.unclaimed(now)
                .exclude(decisions__user=by)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("created_at", "id")
                .first()
            )
            if approval is None:
                return None
            approval.claimed_by, approval.claimed_until = by, now + lease
            approval.save(update_fields=["claimed_by", "claimed_until"])
            log.record(actor=by, verb="approval.claimed", obj=approval, run=approval.run_id,
                         after={"call_id": approval.call_id, "until": approval.claimed_until.isoformat()})
        return approval

    def release(self, *, by) -> bool:
        """Give up the claim that holds this call: its holder, or an admin freeing a stuck item
        (``_may_release``). Returns whether it released one: ``False`` when no unexpired claim
        holds the call or it is someone else's."""
        with transaction.atomic():
            # The rule in the update itself: a claim that changed hands since this row was read
            # is not released by its former holder.
            claims = Approval.objects.claimed(timezone.now()).filter(pk=self.pk)
            if not roles.may(by, "administer"):
                claims = claims.filter(claimed_by=by)
            held_by = self.claimed_by.get_username() if self.claimed_by else None
            released = claims.update(claimed_by=None, claimed_until=None)
            if released:
                log.record(actor=by, verb="approval.released", obj=self, run=self.run_id, before={"claimed_by": held_by})
        self.refresh_from_db()
        return bool(released)

    # --- Decisions -----------------------------------------------------------------------------

    def approve(self, *, by, shown_hash: str, result: Any = None, arguments: dict[str, Any] | None = None) -> bool:
        """Approve this call as ``by``, who was shown arguments hashing to ``shown_hash``.

        ``arguments``: approve edited arguments instead (validated against the tool's JSON
        schema; the model's stay in ``arguments``). Policy is evaluated again on the edited
        arguments and the stricter requirement of the two is kept (more approvals, the edited
        arguments' group, requesters barred if either bars them, the earlier deadline); approvals
        given to other arguments never count. ``result``: answer a call Handoff has no body for
        (required then, refused otherwise). Once ``approvals_required`` different reviewers have
        approved the arguments in force, the tool body runs in a worker.

        Returns whether this decision counted: ``False`` when the call was already decided (a
        double click, another reviewer). Raises ``PermissionDenied`` (not in the approver group
        or without the reviewer role, or a requester where policy forbids it, also after an edit
        made the policy stricter) and ``DecisionRefused`` (a decision the tool does not allow,
        stale arguments, someone else's claim, arguments outside the schema, a reviewer who
        approved the arguments in force already: they may reject them, not approve or edit
        them again); either leaves everything as it was (one transaction).
        ``actions_for`` says beforehand which of these a person may take.
        """
        kind = tools.RESPOND if result is not None else tools.EDIT if arguments is not None else tools.APPROVE
        with transaction.atomic():
            approval = self._locked_for_decision(by, shown_hash, kind)
            if approval is None:
                return False
            if arguments is not None and tools.EDIT not in approval.allowed_decisions:
                raise DecisionRefused(f"{approval.function_name} does not allow this decision (edit).")
            # Who approved the arguments in force (``approvals_so_far``), read under the approval's
            # lock, which keeps other decisions out until this one commits.
            approvers = approval._approvers()
            if arguments is not None and arguments != approval.current_arguments:
                # Whoever approved the arguments shown has decided them: they may reject, not
                # replace them (what the page offers them, ``actions_for``).
                approval._check_not_approved(by.pk in approvers)
                approval._edit(arguments, by=by)  # DecisionRefused, PermissionDenied
                approvers = approval._approvers()
            elif result is None:
                approval._check_fits_schema()
            approval._check_not_approved(by.pk in approvers)
            Decision.objects.create(approval=approval, user=by, verdict=Decision.Verdict.APPROVE,
                                    arguments_hash=approval.arguments_hash, arguments=approval.current_arguments)
            count = len(approvers) + 1
            done = count >= approval.approvals_required
            log.record(
                actor=by, verb="approval.approved", obj=approval, run=approval.run,
                before={"status": self.Status.PENDING},
                after={"status": self.Status.APPROVED if done else self.Status.PENDING,
                       "approvals": f"{count} of {approval.approvals_required}",
                       "call_id": approval.call_id, "function_name": approval.function_name,
                       "arguments": approval.current_arguments,
                       **({"original_arguments": approval.arguments} if approval.edited_arguments is not None else {}),
                       **({"result": result} if result is not None else {})},
            )
            if done:
                approval.status = self.Status.APPROVED
                approval.decided_by, approval.decided_at = by, timezone.now()
                approval.claimed_by = approval.claimed_until = None
                metrics.decided(approval, "approved")  # decision latency, counted on commit
            approval.save()
            if done and result is not None:
                approval.settle(result, is_error=False)
            elif done:
                current_app.tasks[EXECUTE_TASK].delay_on_commit(approval.pk)
        self._take_fields(approval)
        return True

    def reject(self, *, by, shown_hash: str, reason: str) -> bool:
        """Reject this call as ``by`` with ``reason`` (required). One rejection settles it: the
        model receives an error ``function_result`` carrying the reason and the run goes on.
        Returns whether this decision counted; raises ``PermissionDenied`` and
        ``DecisionRefused``."""
        reason = reason.strip()
        if not reason:
            raise DecisionRefused("A rejection needs a reason: the model is told it.")
        with transaction.atomic():
            approval = self._locked_for_decision(by, shown_hash, tools.REJECT)
            if approval is None:
                return False
            Decision.objects.create(approval=approval, user=by, verdict=Decision.Verdict.REJECT, reason=reason,
                                    arguments_hash=approval.arguments_hash, arguments=approval.current_arguments)
            result = {"error": f"A reviewer rejected this call: {reason}"}
            approval._close(self.Status.REJECTED, actor=by, by=by, reason=reason,
                            after={"function_name": approval.function_name, "arguments": approval.current_arguments,
                                   "reason": reason, "result": result})
            metrics.decided(approval, "rejected")  # decision latency, counted on commit
            approval.settle(result, is_error=True)
        self._take_fields(approval)
        return True

    def _close(self, status: str, *, actor, reason: str, by=None, now=None, after: dict[str, Any]) -> None:
        """Close this pending approval as ``status`` (rejected or expired) for ``reason``: decided
        by ``by`` (a user; ``None`` when no person decided) at ``now`` (default: now), its claim
        dropped, saved, and the ``approval.<status>`` event recorded for ``actor`` (a user or a
        ``system:<component>`` string) with ``after`` beyond the status and call id. The caller
        holds this row's lock (the lock order) in its transaction, checked that the call is
        pending, and sends the model its result (``settle``) afterwards."""
        self.status = status
        self.decided_by, self.decided_at, self.reason = by, now or timezone.now(), reason
        self.claimed_by = self.claimed_until = None
        self.save(update_fields=["status", "decided_by", "decided_at", "reason", "claimed_by", "claimed_until"])
        log.record(actor=actor, verb=f"approval.{status}", obj=self, run=self.run_id,
                     before={"status": self.Status.PENDING},
                     after={"status": status, "call_id": self.call_id, **after})

    def _take_fields(self, decided: "Approval") -> None:
        """Take the columns of ``decided``, this row as a decision locked, changed and saved it:
        what ``refresh_from_db`` would read, without reading it. Related objects loaded before
        (the run, whose status the decision may have moved) are dropped, as ``refresh_from_db``
        drops them."""
        for field in self._meta.concrete_fields:
            setattr(self, field.attname, getattr(decided, field.attname))
            if field.is_relation and field.is_cached(self):
                field.delete_cached_value(self)

    def _edit(self, arguments: dict[str, Any], *, by) -> None:
        """Put edited ``arguments`` in force on this locked, pending approval: validate them
        against the tool's schema, evaluate policy on them, keep the stricter requirement, and
        check again that ``by`` may approve under it. Raises ``DecisionRefused`` (schema) and
        ``PermissionDenied``; the caller's transaction rolls everything back then."""
        problem = tools.edit_error(self.function_name, arguments)
        if problem:
            raise DecisionRefused(problem)
        requirement = tools.evaluate(self.function_name, arguments)
        before = self._requirement_fields()
        if requirement.needs_approval:
            self.approvals_required = max(self.approvals_required, requirement.approvals_required)
            self.creator_may_approve = self.creator_may_approve and requirement.creator_may_approve
            if requirement.group != self.approver_group and not self.escalated_at:
                # The policy of the arguments in force names who decides them.
                self.approver_group = requirement.group
            if requirement.deadline is not None:
                deadline = timezone.now() + requirement.deadline
                if self.deadline_at is None or deadline < self.deadline_at:
                    self.deadline_at = deadline
            self.policy = f"{requirement.reason} (after an edit by {by.get_username()})"
        self.edited_arguments = arguments
        self.arguments_hash = arguments_hash(arguments)
        self.schema_error = ""
        after = self._requirement_fields()
        log.record(actor=by, verb="approval.edited", obj=self, run=self.run_id,
                     before={"arguments": self.arguments, **before},
                     after={"arguments": arguments, **after})
        self._check_may_approve(by)

    def _requirement_fields(self) -> dict[str, Any]:
        return {"approvals_required": self.approvals_required, "approver_group": self.approver_group,
                "creator_may_approve": self.creator_may_approve, "policy": self.policy,
                "deadline_at": self.deadline_at.isoformat() if self.deadline_at else None}

    def _locked_for_decision(self, by, shown_hash: str, kind: str) -> "Approval | None":
        """This approval, locked so decisions on it queue one behind the other, after the checks
        every decision passes (``_check_decision``, the shown hash, ``_check_claim``); ``None``
        when it is no longer pending. Locks the run, the interaction and then the approval (the
        lock order, see the module docstring). Call inside a transaction."""
        interaction = execution.lock_interaction(self.interaction_id, run_pk=self.run_id)
        approval = Approval.objects.select_for_update(of=("self",)).get(pk=self.pk)
        approval.interaction, approval.run = interaction, interaction.run
        approval._check_decision(by, kind)
        if not approval.is_pending:
            return None
        if approval.arguments_hash != shown_hash:
            raise DecisionRefused("The arguments changed since they were shown: reload the page and decide again.")
        approval._check_claim(by, timezone.now())
        return approval

    # --- Deadlines -----------------------------------------------------------------------------

    def expire(self, *, now=None) -> bool:
        """The deadline passed with no decision: escalate to ``escalate_to`` (once, with a new
        deadline as long as the first) or reject as expired, sending the model an error result.
        Conditional updates make a second run of the same check a no-op. Returns whether this
        call changed the approval."""
        now = now or timezone.now()
        with transaction.atomic():
            interaction = execution.lock_interaction(self.interaction_id, run_pk=self.run_id)
            approval = Approval.objects.select_for_update(of=("self",)).get(pk=self.pk)
            approval.interaction, approval.run = interaction, interaction.run
            if not approval.is_pending or approval.deadline_at is None or approval.deadline_at > now:
                return False
            if approval.on_deadline == self.OnDeadline.ESCALATE and approval.escalate_to and not approval.escalated_at:
                window = approval.deadline_at - approval.created_at
                before = {"approver_group": approval.approver_group, "deadline_at": approval.deadline_at.isoformat()}
                approval.approver_group = approval.escalate_to
                approval.escalated_at = now
                approval.deadline_at = now + window
                approval.on_deadline = self.OnDeadline.REJECT
                approval.claimed_by = approval.claimed_until = None
                approval.save()
                log.record(actor="system:deadlines", verb="approval.escalated", obj=approval, run=approval.run,
                             before=before, after={"approver_group": approval.approver_group,
                                                   "deadline_at": approval.deadline_at.isoformat()})
                notifications.queue(approval, "escalated")
                return True
            result = {"error": "Expired: no reviewer decided before the deadline, so the call was not run."}
            approval._close(self.Status.EXPIRED, actor="system:deadlines", now=now,
                            reason="No reviewer decided before the deadline.", after={"result": result})
            approval.settle(result, is_error=True)
        return True

    def remind(self, *, now=None) -> bool:
        """Send the reminder due before the deadline, once (conditional update)."""
        now = now or timezone.now()
        with transaction.atomic():
            sent = Approval.objects.filter(
                pk=self.pk, status=self.Status.PENDING, remind_at__lte=now, reminded_at__isnull=True
            ).update(reminded_at=now)
            if sent:
                log.record(actor="system:deadlines", verb="approval.reminded", obj=self, run=self.run_id,
                             after={"approver_group": self.approver_group,
                                    "deadline_at": self.deadline_at.isoformat() if self.deadline_at else None})
                notifications.queue(self, "reminder")
        return bool(sent)

    @classmethod
    def enforce_deadlines(cls, *, now=None) -> dict[str, int]:
        """Send due reminders and act on passed deadlines; the periodic Celery beat job. Returns
        the counts of reminders sent, escalations and expiries."""
        now = now or timezone.now()
        counts = {"reminded": 0, "escalated": 0, "expired": 0}
        for approval in cls.objects.pending().filter(remind_at__lte=now, reminded_at__isnull=True):
            counts["reminded"] += approval.remind(now=now)
        for approval in cls.objects.pending().filter(deadline_at__lte=now):
            escalating = approval.on_deadline == cls.OnDeadline.ESCALATE and approval.escalate_to and not approval.escalated_at
            if approval.expire(now=now):
                counts["escalated" if escalating else "expired"] += 1
        return counts

    # --- Settling ------------------------------------------------------------------------------

    def execute(self) -> bool:
        """Run the tool body for an auto-run or approved call and settle it with the result.

        Claims the call with a conditional update first, so a duplicate task never runs the body
        twice. An exception from the body is sent to the model as an error result. The result is
        committed on its own (``executed_at``, the ``function_call.executed`` event) before the
        call is settled and the follow-up recorded, so nothing that fails after the body ran (a
        lock timeout, a killed worker) can lose what it did: ``recover_stalled`` settles a
        recorded result that was not settled. Returns whether this call ran the body.

        A call claimed by a worker that died before recording the result (its claim older than
        ``EXECUTION_LEASE`` seconds, longer than a task may run) is settled with an error result
        saying the outcome is unknown: the body may have run, so it is not run again, and the
        model still hears about the call exactly once. Raises ``StillExecuting`` while another
        worker's claim has not run out.
        """
        now = timezone.now()
        claimed = Approval.objects.filter(
            pk=self.pk, status__in=[self.Status.AUTO, self.Status.APPROVED],
            execution_started_at__isnull=True, settled_at__isnull=True,
        ).update(execution_started_at=now)
        if not claimed:
            self.refresh_from_db()
            if self.settled_at is None and self.executed_at is not None:
                self.settle(self.result, is_error=self.result_is_error)
            elif self.settled_at is None and self.execution_started_at is not None:
                self.settle_stalled_execution()
            return False
        # The row as the caller read it is the one that runs: the claim's condition says it is
        # approved (or run by policy), and arguments change only while a call is pending.
        self.execution_started_at = now
        tool = tools.get(self.function_name)
        try:
            result, is_error = tool.function(**self.current_arguments), False
        except Exception as exc:  # the model is told, and decides what to do next
            result, is_error = {"error": f"{type(exc).__name__}: {exc}"}, True
        with transaction.atomic():
            # One row, no other lock held: nothing here waits on the run's lock.
            Approval.objects.filter(pk=self.pk, executed_at__isnull=True).update(
                result=result, result_is_error=is_error, executed_at=timezone.now()
            )
            log.record(
                actor="system:worker", verb="function_call.executed", obj=self, run=self.run_id,
                after={"call_id": self.call_id, "function_name": self.function_name,
                       "arguments": self.current_arguments, "result": result, "is_error": is_error},
            )
        self.settle(result, is_error=is_error)
        return True

    def settle_stalled_execution(self, *, now=None) -> bool:
        """Settle a call whose execution claim ran out with no result recorded (see ``execute``).
        Raises ``StillExecuting`` when the claim is still within its lease. Returns whether this
        call settled it."""
        now = now or timezone.now()
        if self.executed_at is not None:
            # The body's result was committed: settle with it, it is not unknown.
            return self.settle(self.result, is_error=self.result_is_error)
        expires = self.execution_started_at + timedelta(seconds=settings.EXECUTION_LEASE)
        if now < expires:
            raise StillExecuting((expires - now).total_seconds())
        result = {"error": "The worker running this call stopped before its result was recorded. Handoff did "
                           "not run it again: its effect is unknown, check before trying again."}
        with transaction.atomic():
            if not self.settle(result, is_error=True):
                return False
            log.record(actor="system:worker", verb="function_call.outcome_unknown", obj=self, run=self.run_id,
                         after={"call_id": self.call_id, "function_name": self.function_name,
                                "started_at": self.execution_started_at.isoformat(), "result": result})
        return True

    @classmethod
    def recover_stalled(cls, *, now=None) -> dict[str, int]:
        """The periodic job's safety net for work lost with a worker, between any two steps of a
        call's way from decided to sent. Every unsettled call that should be moving and has not
        for ``settings.STRANDED_AFTER`` seconds:

        - ``requeued``: approved (or run by policy) and never claimed for execution: its task
          was lost (a broker that kept it an hour, a worker killed before it started). Queued
          again; the execution claim keeps a duplicate from running the body twice.
        - ``settled``: executed, its result committed, not settled (killed before settling):
          settled now with that result.
        - ``unknown``: claimed for execution past ``EXECUTION_LEASE`` with no result: settled
          with an "effect unknown" error, never run again.

        An interaction whose calls are all settled always has its follow-up intent (both are
        written in one transaction); an intent never sent is ``runs.execution.recover_stalled``'s.
        Returns the counts."""
        now = now or timezone.now()
        quiet_since = now - timedelta(seconds=settings.STRANDED_AFTER)
        unsettled = cls.objects.filter(settled_at__isnull=True, run__status__in=Run.ACTIVE_STATUSES)
        counts = {"requeued": 0, "settled": 0, "unknown": 0}
        never_started = unsettled.filter(
            Q(status=cls.Status.AUTO, created_at__lt=quiet_since)
            | Q(status=cls.Status.APPROVED, decided_at__lt=quiet_since),
            execution_started_at__isnull=True,
        ).exclude(requires_manual_result=True)
        for pk in never_started.values_list("pk", flat=True):
            current_app.tasks[EXECUTE_TASK].delay(pk)
            counts["requeued"] += 1
        for approval in unsettled.filter(executed_at__lt=quiet_since):
            counts["settled"] += approval.settle(approval.result, is_error=approval.result_is_error)
        for approval in unsettled.filter(
            executed_at__isnull=True, execution_started_at__lt=now - timedelta(seconds=settings.EXECUTION_LEASE)
        ):
            counts["unknown"] += approval.settle_stalled_execution(now=now)
        return counts

    def settle(self, result: Any, *, is_error: bool) -> bool:
        """Record the ``function_result`` for this call; when it is the interaction's last
        unsettled call, create the follow-up interaction carrying every result.

        Locks the run and the interaction first (the lock order), so two calls settled at once
        cannot both see the other as unsettled and leave the run waiting forever. Returns whether
        this call settled it; then ``follow_up`` is the follow-up interaction this settle
        recorded (its intent, not sent yet), else ``None``.
        """
        now = timezone.now()
        with transaction.atomic():
            interaction = execution.lock_interaction(self.interaction_id, run_pk=self.run_id)
            settled = Approval.objects.filter(pk=self.pk, settled_at__isnull=True).update(
                result=result, result_is_error=is_error, settled_at=now
            )
            if not settled:
                return False
            calls = list(interaction.approvals.order_by("id"))
            follow_up = None
            if all(call.settled_at for call in calls):
                follow_up = execution.continue_with(interaction, input=[call.function_result() for call in calls])
        self.result, self.result_is_error, self.settled_at = result, is_error, now
        self.follow_up = follow_up
        return True

    def function_result(self) -> dict[str, Any]:
        """The ``function_result`` input step for this call (docs/interactions-api.md §6)."""
        step = {
            "type": "function_result",
            "call_id": self.call_id,
            "name": self.function_name,
            "result": self.result,
        }
        if self.result_is_error:
            step["is_error"] = True
        return step


class Decision(models.Model):
    """One reviewer's decision on an approval. An approval needing two approvals (four-eyes)
    gets two approve decisions from different people; a decision counts only for the arguments
    it was made on (``arguments_hash``)."""

    class Verdict(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_decisions")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    reason = models.TextField(blank=True)
    arguments = models.JSONField()
    arguments_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One person counts once for the same arguments: four-eyes needs two people.
            models.UniqueConstraint(
                fields=["approval", "user", "arguments_hash", "verdict"], name="decision_one_per_person"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.verdict} {self.approval}"


def settle_function_calls(interaction: Interaction) -> str:
    """Settle each ``function_call`` of a ``requires_action`` interaction by policy: calls that
    may run at once are queued for execution; the others become pending approvals carrying what
    policy requires (how many approvals, from which group, by when).

    Registered as ``runs.execution.hooks.handle_requires_action``; runs inside the transaction
    that records the interaction. Returns the run's new status.
    """
    waiting = False
    now = timezone.now()
    for step in interaction.function_calls():
        arguments = step.data.get("arguments")
        arguments = {} if arguments is None else arguments
        # Arguments are checked against the tool's schema before its policy sees them: the model
        # can send anything (a negative amount, a string for a number, NaN).
        problem = tools.schema_error(step.name, arguments)
        requirement = tools.evaluate(step.name, arguments, schema_error=problem)
        approval, created = Approval.objects.get_or_create(
            interaction=interaction,
            call_id=step.call_id,
            defaults={
                "run": interaction.run,
                "function_name": step.name,
                "arguments": arguments,
                "arguments_hash": arguments_hash(arguments),
                "status": Approval.Status.PENDING if requirement.needs_approval else Approval.Status.AUTO,
                "policy": requirement.reason,
                "schema_error": problem,
                "requires_manual_result": requirement.manual_result,
                "approvals_required": requirement.approvals_required,
                "approver_group": requirement.group,
                "creator_may_approve": requirement.creator_may_approve,
                "allowed_decisions": sorted(tools.allowed_decisions(step.name)),
                "deadline_at": now + requirement.deadline if requirement.deadline else None,
                "remind_at": now + requirement.deadline - requirement.remind_before
                if requirement.deadline and requirement.remind_before else None,
                "on_deadline": requirement.on_deadline,
                "escalate_to": requirement.escalate_to,
            },
        )
        if created:
            log.record(
                actor="system:policy",
                verb="approval.requested" if approval.is_pending else "function_call.auto_approved",
                obj=approval, run=interaction.run,
                after={"call_id": approval.call_id, "function_name": approval.function_name,
                       "arguments": arguments, "policy": requirement.reason,
                       **({"approvals_required": approval.approvals_required, "group": approval.approver_group,
                           "deadline_at": approval.deadline_at.isoformat() if approval.deadline_at else None}
                          if approval.is_pending else {})},
            )
            if approval.is_pending:
                notifications.queue(approval, "requested")
        if approval.status == Approval.Status.AUTO and approval.settled_at is None:
            current_app.tasks[EXECUTE_TASK].delay_on_commit(approval.pk)
        waiting = waiting or approval.is_pending
    return Run.Status.WAITING_FOR_APPROVAL if waiting else Run.Status.RUNNING


def expire_for_cancelled_run(*, run: Run, by) -> None:
    """Close the pending approvals of a cancelled run (status ``expired``), each with its event.

    Registered as ``runs.execution.hooks.run_cancelled``; runs inside the cancel's transaction,
    which holds the run's lock. A decision takes the run's lock before the approval's (the lock
    order), so none is under way here; a claim or reminder holds an approval alone for an
    instant, and is waited for: every pending call closes, none is skipped.
    """
    now = timezone.now()
    reason = f"The run was cancelled by {by.get_username() if by else 'the system'}."
    for approval in Approval.objects.select_for_update(of=("self",)).filter(run=run, status=Approval.Status.PENDING):
        approval._close(Approval.Status.EXPIRED, actor=by or "system:worker", now=now, reason=reason,
                        after={"reason": reason})
