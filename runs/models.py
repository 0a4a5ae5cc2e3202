"""Runs, their interactions with the Gemini Interactions API, the steps those returned, and the
artifacts saved around them.

Names follow the API (google-genai 3.3.0, ``google.genai.interactions``): an *interaction* is one
``interactions.create`` call and its response, a *step* is one entry of ``Interaction.steps``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class Run(models.Model):
    """One piece of work: a chain of interactions joined by ``previous_interaction_id``.

    Its status is Handoff's own and follows from its interactions (see ``runs.execution``).
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        WAITING_FOR_APPROVAL = "waiting_for_approval", "Waiting for approval"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING, Status.WAITING_FOR_APPROVAL)
    FINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    model = models.CharField(max_length=200, blank=True)
    agent = models.CharField(max_length=200, blank=True)
    # What the first interaction sends as ``input``: a string, or a list of content blocks/steps.
    input = models.JSONField()
    input_preview = models.CharField(max_length=300, blank=True)
    # Tool declarations as the API takes them, sent with every interaction of the run.
    tools = models.JSONField(default=list, blank=True)
    background = models.BooleanField(default=False)
    system_instruction = models.TextField(blank=True)
    generation_config = models.JSONField(null=True, blank=True)

    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    output_text = models.TextField(blank=True)
    total_tokens = models.PositiveIntegerField(default=0)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="runs",
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="run_model_xor_agent",
                condition=(Q(model="") & ~Q(agent="")) | (~Q(model="") & Q(agent="")),
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_created_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="run_status_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.model or self.agent})"

    def get_absolute_url(self) -> str:
        return reverse("runs:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def target(self) -> str:
        """The model or agent name, whichever the run uses."""
        return self.model or self.agent

    @property
    def duration_ms(self) -> int | None:
        end = self.finished_at or (timezone.now() if self.is_active else None)
        if end is None:
            return None
        return int((end - self.created_at).total_seconds() * 1000)


class Interaction(models.Model):
    """One ``interactions.create`` call of a run and what the API answered.

    The row is written *before* the request is sent (``dispatch=pending``): that recorded intent
    is what keeps a retried or redelivered task from creating a second remote interaction. A
    worker claims it with a conditional update (``pending`` → ``sending``) and records the answer
    (``sent``). A ``sending`` row whose worker vanished cannot tell whether the API received the
    request, so it is never resent automatically; it becomes ``unknown`` and the run says so.
    """

    class Dispatch(models.TextChoices):
        PENDING = "pending", "Intent recorded"
        SENDING = "sending", "Request under way"
        SENT = "sent", "Answer recorded"
        UNKNOWN = "unknown", "Outcome unknown"
        ERROR = "error", "Request refused"

    class Status(models.TextChoices):
        # The API's own enum (gemini-interactions.md §4.1), stored as received.
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        REQUIRES_ACTION = "requires_action"
        REQUIRES_CONTINUATION = "requires_continuation"
        COMPLETED = "completed"
        INCOMPLETE = "incomplete"
        FAILED = "failed"
        CANCELLED = "cancelled"
        BUDGET_EXCEEDED = "budget_exceeded"

    # Stable statuses are durable boundaries: once recorded they are never requested again.
    STABLE_STATUSES = (
        Status.REQUIRES_ACTION, Status.COMPLETED, Status.INCOMPLETE, Status.FAILED,
        Status.CANCELLED, Status.BUDGET_EXCEEDED,
    )

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="interactions")
    # Position in the run's chain, from 0. Unique per run, so a follow-up is created only once.
    sequence = models.PositiveIntegerField()
    interaction_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    previous_interaction_id = models.CharField(max_length=200, blank=True)
    # The body passed to ``interactions.create`` (it holds no credentials: the SDK sends the key
    # in a header).
    request = models.JSONField()

    dispatch = models.CharField(max_length=16, choices=Dispatch.choices, default=Dispatch.PENDING)
    status = models.CharField(max_length=32, choices=Status.choices, blank=True)
    output_text = models.TextField(blank=True)
    usage = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, help_text="Why the request failed on Handoff's side.")
    # Where the response departs from google-genai's Interaction schema (it is recorded anyway).
    schema_warning = models.TextField(blank=True)
    poll_count = models.PositiveIntegerField(default=0)
    sdk_version = models.CharField(max_length=32, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When the interaction reached a stable status (for background ones, after the last poll).
    finished_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="interaction_run_sequence_uniq"),
            models.CheckConstraint(
                name="interaction_sent_has_id",
                condition=~Q(dispatch="sent") | Q(interaction_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.interaction_id or f"Interaction {self.sequence} of run {self.run_id}"

    @property
    def is_stable(self) -> bool:
        return self.status in self.STABLE_STATUSES

    @property
    def duration_ms(self) -> int | None:
        if self.sent_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.sent_at).total_seconds() * 1000)

    def function_calls(self) -> list[Step]:
        return [s for s in self.steps.all() if s.type == "function_call"]


class Step(models.Model):
    """One entry of ``Interaction.steps``, kept as the API sent it.

    ``type`` is the API's type string (``function_call``, ``thought``, …); a type Handoff does not
    know is stored all the same, with its raw JSON in ``data``.
    """

    KNOWN_TYPES = frozenset({
        "user_input", "model_output", "thought", "function_call", "function_result",
        "code_execution_call", "code_execution_result", "url_context_call", "url_context_result",
        "google_search_call", "google_search_result", "mcp_server_tool_call",
        "mcp_server_tool_result", "file_search_call", "file_search_result", "google_maps_call",
        "google_maps_result", "retrieval_call", "retrieval_result", "processing_call",
        "processing_result",
    })

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField(help_text="Position in Interaction.steps.")
    type = models.CharField(max_length=64)
    # Calls carry ``id`` and results ``call_id`` pointing back to it (gemini-interactions.md §5);
    # both are kept here so a call and its result can be joined.
    call_id = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=200, blank=True)
    data = models.JSONField()

    class Meta:
        ordering = ["interaction", "index"]
        constraints = [
            models.UniqueConstraint(fields=["interaction", "index"], name="step_interaction_index_uniq"),
        ]
        indexes = [models.Index(fields=["call_id"], name="step_call_id_idx")]

    def __str__(self) -> str:
        return f"{self.type} #{self.index}"

    @property
    def is_known(self) -> bool:
        return self.type in self.KNOWN_TYPES


class Artifact(models.Model):
    """Data saved around an interaction: the redacted request manifest, output text, usage, and
    the raw request and response when capture is on."""

    class Kind(models.TextChoices):
        REQUEST_MANIFEST = "request_manifest", "Request manifest (redacted)"
        OUTPUT_TEXT = "output_text", "Output text"
        USAGE = "usage", "Usage"
        RAW_REQUEST = "raw_request", "Raw request"
        RAW_RESPONSE = "raw_response", "Raw response"

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    media_type = models.CharField(max_length=100, default="application/json")
    content = models.TextField()
    size_bytes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["interaction", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["interaction", "kind"], name="artifact_interaction_kind_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.interaction}"

    def save(self, *args, **kwargs):
        self.size_bytes = len(self.content.encode())
        super().save(*args, **kwargs)
