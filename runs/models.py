"""Runs, their interactions with the Gemini Interactions API, the steps those returned, and the
artifacts saved around them.

Names follow the API (google-genai 3.3.0, ``google.genai.interactions``): an *interaction* is one
``interactions.create`` call and its response, a *step* is one entry of ``Interaction.steps``.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from functools import reduce
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connection, models
from django.db.models import ExpressionWrapper, F, Field, Func, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan, LessThan
from django.urls import reverse
from django.utils import timezone


# The document the run list's full-text search matches: ``Run.search_vector``, which is
# to_tsvector(SEARCH_CONFIG, input_text || ' ' || output_text), stored, and kept current by a
# PostgreSQL trigger on every insert and on every update that changes either text (migration
# 0004). Searches read it through the SQL function run_search_document. Migration 0004 explains
# why that function exists: it gives PostgreSQL the cost that makes it pick the right plan. The
# GIN index is built on this exact expression, so PostgreSQL can use it.
SEARCH_CONFIG = "english"
SEARCH_DOCUMENT = Func(F("search_vector"), function="run_search_document", output_field=SearchVectorField())


# A term of the search syntax on other databases: an optional "-", then a "quoted phrase" (the
# closing quote may be missing, as websearch_to_tsquery allows) or a word.
SEARCH_TERM = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def _text_search(text: str) -> Q | None:
    """``text`` in websearch_to_tsquery's syntax (words ANDed, "a phrase", -word, ``or``
    between alternatives) as a condition on the run's texts, each word or phrase a
    case-insensitive substring of the inputs or the output: for databases without PostgreSQL's
    full-text search. ``None`` when ``text`` holds no term."""
    alternatives: list[list[Q]] = [[]]
    for match in SEARCH_TERM.finditer(text):
        negated, phrase, word = bool(match[1]), match[2], match[3]
        if word is not None and word.lower() == "or":
            if alternatives[-1]:
                alternatives.append([])
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = True, word[1:]
        term = " ".join(phrase.split()) if phrase is not None else word
        if not term or term == "-":
            continue
        found = Q(input_text__icontains=term) | Q(output_text__icontains=term)
        alternatives[-1].append(~found if negated else found)
    either = [reduce(operator.and_, terms) for terms in alternatives if terms]
    return reduce(operator.or_, either) if either else None


# Whether a search is selective: none of its words is among the words PostgreSQL's statistics
# list as common in the search index (pg_stats.most_common_elems of run_search_idx, gathered by
# ANALYZE). A word missing from that list is rarer than every word on it.
SELECTIVE_SEARCH_SQL = """
SELECT EXISTS (
    SELECT 1 FROM pg_stats
    WHERE schemaname = current_schema() AND tablename = 'run_search_idx' AND most_common_elems IS NOT NULL
) AND NOT EXISTS (
    SELECT 1 FROM pg_stats, unnest(most_common_elems::text::text[]) AS common(lexeme)
    WHERE schemaname = current_schema() AND tablename = 'run_search_idx'
      AND common.lexeme = ANY(tsvector_to_array(to_tsvector(%s::regconfig, %s)))
)
"""


def search_is_selective(text: str) -> bool:
    """Whether the runs matching ``text`` are few (see SELECTIVE_SEARCH_SQL): then the run list
    reads them from the full-text index and sorts them, rather than walking its sort order until
    a page of them turns up. PostgreSQL plans a search with a word it has no statistics for as if
    0.5% of runs matched: at 10,000,000 runs, walking the order for a page of those looks cheap,
    and for an order number that matches one run it reads all ten million (5 to 24 s). One query;
    ``False`` on other databases, and before ANALYZE has gathered statistics."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(SELECTIVE_SEARCH_SQL, [SEARCH_CONFIG, text])
        return bool(cursor.fetchone()[0])


# --- The run list: filters and keyset pages ------------------------------------------------------

# The run list's sort orders: the column each sorts on, descending, with the run id breaking ties
# (every order has an index on (column DESC, id DESC): see Run.Meta.indexes).
SORT_KEYS = {"started": "created_at", "duration": "duration_ms", "tokens": "total_tokens"}
# The columns the list shows (the others can be large: input JSON, output text, tools).
LIST_FIELDS = (
    "pk", "status", "model", "agent", "input_preview", "tool_names", "error", "total_tokens",
    "duration_ms", "created_at", "finished_at", "pending_approvals", "created_by", "created_by_system",
)
# A cursor is "<sort key>.<run id>": the key as an integer, the start time in µs since the epoch
# (exact: PostgreSQL stores µs). At most 18 digits each, so both fit a bigint.
CURSOR = re.compile(r"^(-?\d{1,18})\.(\d{1,18})$")
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


class Row(Func):
    """A row value, ``(a, b)``. ``(key, id) < (k, i)`` is a single index condition on an index
    over ``(key, id)``, so a page starts right at its cursor; the equivalent ``key < k OR (key = k
    AND id < i)`` makes PostgreSQL read every run sharing the key ``k`` first."""

    function = ""
    output_field = Field()


@dataclass(frozen=True)
class Cursor:
    """A position in the run list under one sort order: the sort key of a run (a datetime for
    ``started``, an int of ms or tokens otherwise) and its id. Written ``"<key>.<id>"`` in the
    query string, the start time as µs since the epoch, so it is read back with no query."""

    key: datetime | int
    pk: int

    @classmethod
    def parse(cls, value: str, sort: str) -> Cursor | None:
        """The cursor ``value`` (``"<key>.<id>"``) names under ``sort`` (a key of ``SORT_KEYS``);
        ``None`` when it is malformed or out of range."""
        match = CURSOR.match(value)
        if match is None:
            return None
        key, pk = int(match[1]), int(match[2])
        if sort == "started":
            try:
                return cls(EPOCH + timedelta(microseconds=key), pk)
            except OverflowError:
                return None
        return cls(key, pk)

    @classmethod
    def of(cls, run: Run, sort: str) -> Cursor:
        """The position of ``run`` under ``sort``; ``run`` has that sort's key loaded."""
        return cls(getattr(run, SORT_KEYS[sort]), run.pk)

    def __str__(self) -> str:
        key = self.key
        if isinstance(key, datetime):
            key = (key - EPOCH) // timedelta(microseconds=1)
        return f"{key}.{self.pk}"


@dataclass(frozen=True)
class RunPage:
    """One page of the run list (``RunQuerySet.page``): ``runs`` in list order (at most the page
    size, with ``LIST_FIELDS`` loaded), whether runs come before it (``has_previous``) and after
    it (``has_next``) in the order ``sort``."""

    runs: list[Run]
    sort: str
    has_previous: bool
    has_next: bool

    @property
    def previous_cursor(self) -> Cursor | None:
        """Where the page before this one ends (its ``before=`` cursor), ``None`` if none."""
        return Cursor.of(self.runs[0], self.sort) if self.has_previous and self.runs else None

    @property
    def next_cursor(self) -> Cursor | None:
        """Where the page after this one starts (its ``after=`` cursor), ``None`` if none."""
        return Cursor.of(self.runs[-1], self.sort) if self.has_next and self.runs else None


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class RunQuerySet(models.QuerySet):
    def filtered(
        self, *, status: str = "", model: str = "", agent: str = "", tool: str = "", by: str = "",
        pending: bool = False, since: date | None = None, until: date | None = None, text: str = "",
    ) -> RunQuerySet:
        """The runs of the list's filters (``RunFilterForm.filters``); an empty value leaves its
        filter out. ``status``, ``model``, ``agent``: equal to it; ``tool``: declared that tool
        (``using_tool``); ``by``: started by the user of that username; ``pending``: has pending
        approvals; ``since``/``until``: started on or after / on or before that day (local
        time, both ends included); ``text``: matches the search ``text`` (``search``). No query
        until read."""
        runs = self
        for name, value in (("status", status), ("model", model), ("agent", agent)):
            if value:
                runs = runs.filter(**{name: value})
        if tool:
            runs = runs.using_tool(tool)
        if by:
            # The user's id as a value (an init plan) rather than a join, so the runs are read from
            # the creator's index in the sort order, not joined to the user and sorted.
            users = get_user_model().objects.filter(username=by)
            runs = runs.filter(created_by=Subquery(users.values("pk")))
        if pending:
            runs = runs.filter(pending_approvals__gt=0)
        if since:
            runs = runs.filter(created_at__gte=_start_of(since))
        if until:
            runs = runs.filter(created_at__lt=_start_of(until + timedelta(days=1)))
        if text:
            runs = runs.search(text)
        return runs

    def page(
        self, *, sort: str = "started", after: Cursor | None = None, before: Cursor | None = None,
        size: int = 50, few: bool = False, dated: bool = False,
    ) -> RunPage:
        """The ``size`` runs that follow the position ``after`` in the list's order under ``sort``
        (a key of ``SORT_KEYS``: newest, longest or most tokens first, the id breaking ties), or
        precede ``before``, or open the list; and whether runs come before and after the page.
        Sorted by duration, only finished runs are listed (the others have none). One query;
        ``KeyError`` for a ``sort`` not in ``SORT_KEYS``.

        Two hints pick the query's shape; each returns the same runs, in the same order:

        ``few`` when the runs are known to be few (a selective search, ``search_is_selective``):
        the order and the cursor are then written so that no index can serve them
        (``COALESCE(key, key)``, the same values), and PostgreSQL reads the few runs from the
        filter's index and sorts them, instead of walking a sort order's index for them.

        ``dated`` when the runs are filtered by a date range: for the duration and tokens orders
        the page's ids are chosen in a subquery that needs no other column than ``created_at``,
        the sort key and the id, so PostgreSQL may read a narrow range from ``run_created_idx``
        alone (an index-only scan, no row fetched) and sort it; the rows are read for the page's
        ids only. At 10,000,000 runs a day's 27,000 runs, read row by row and sorted, took 50 ms.
        A wide range still walks the sort order's index: the planner knows the range's size from
        its histogram."""
        runs = self
        if sort == "duration":
            runs = runs.filter(duration_ms__isnull=False)
        key = SORT_KEYS[sort]
        if few:
            runs = runs.alias(page_key=Coalesce(F(key), F(key)), page_pk=Coalesce(F("pk"), F("pk")))
            key, pk = "page_key", "page_pk"
        else:
            pk = "pk"
        position = Row(F(key), F(pk))
        if before is not None:
            # The previous page: walk back up from the cursor, then show those runs in list order.
            order = (key, pk)
            runs = runs.filter(GreaterThan(position, Row(Value(before.key), Value(before.pk))))
        else:
            order = (f"-{key}", f"-{pk}")
            if after is not None:
                runs = runs.filter(LessThan(position, Row(Value(after.key), Value(after.pk))))
        runs = runs.order_by(*order)
        if dated and not few and sort != "started":
            runs = self.model.objects.filter(pk__in=runs.values("pk")[: size + 1]).order_by(*order)
        rows = list(runs.only(*LIST_FIELDS)[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if before is not None:
            rows.reverse()
            return RunPage(rows, sort, has_previous=more, has_next=True)
        return RunPage(rows, sort, has_previous=after is not None, has_next=more)

    def search(self, text: str) -> "RunQuerySet":
        """Runs whose inputs or output text match ``text``: words ANDed, "quoted phrases",
        ``-word`` to exclude, ``or`` between alternatives. PostgreSQL full-text search
        (``websearch_to_tsquery``) over the GIN index; on other databases (SQLite, the embedded
        default) the same syntax over case-insensitive substrings (``_text_search``), so a word
        also finds longer words it starts or is part of. A query with no term matches nothing."""
        if connection.vendor == "postgresql":
            # alias, not annotate: the document is only matched, never worth selecting.
            return self.alias(search=SEARCH_DOCUMENT).filter(
                search=SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")
            )
        condition = _text_search(text)
        return self.none() if condition is None else self.filter(condition)

    def using_tool(self, name: str) -> "RunQuerySet":
        """Runs that declared the tool ``name`` (a whole name: ``Run.tool_names`` is
        ``,name,name,``)."""
        return self.filter(tool_names__contains=f",{name},")


# The parts of Handoff that start runs with no user behind them, by the audit log's actor name
# (``Run.created_by_system``), as pages name them.
SYSTEM_CREATORS = {"system:cli": "system (command line)"}


def with_creators(runs: list[Run]) -> list[Run]:
    """``runs`` with their ``created_by`` loaded (the username only), for ``Run.creator_name``:
    one query for the page's users, none when no run has one, so a list's query count does not
    grow with its length and its own query keeps its plan (no join)."""
    ids = {run.created_by_id for run in runs if run.created_by_id is not None}
    if ids:
        users = get_user_model().objects.only(get_user_model().USERNAME_FIELD).in_bulk(ids)
        for run in runs:
            if run.created_by_id in users:
                run.created_by = users[run.created_by_id]
    return runs


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
    # The text of every user input of the run (the first and any continuation), for search.
    input_text = models.TextField(blank=True)
    input_preview = models.CharField(max_length=300, blank=True)
    # Tool declarations as the API takes them, sent with every interaction of the run.
    tools = models.JSONField(default=list, blank=True)
    # The declared tools' names as ",name,name," so "tool used" filters with one LIKE.
    tool_names = models.CharField(max_length=1000, blank=True)
    background = models.BooleanField(default=False)
    system_instruction = models.TextField(blank=True)
    generation_config = models.JSONField(null=True, blank=True)

    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    output_text = models.TextField(blank=True)
    # The search document (see SEARCH_DOCUMENT), written by the database; NULL on SQLite.
    search_vector = SearchVectorField(null=True, editable=False)
    total_tokens = models.PositiveIntegerField(default=0)
    # Set when the run ends (from created_at to finished_at); the list sorts on it.
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    # Kept by runs.execution as interactions and steps are recorded, so the run page never
    # counts them: how many interactions and steps the run has, and its interactions' usage
    # summed field by field (tokens, in-flight interactions included; ``total_tokens`` above
    # counts finished ones only). Whatever writes interactions or steps of a run keeps them
    # (migration 0008 filled them for older rows).
    interaction_count = models.PositiveIntegerField(default=0, editable=False)
    step_count = models.PositiveIntegerField(default=0, editable=False)
    usage = models.JSONField(default=dict, editable=False)

    # How many of the run's function calls wait for a person (approvals in status "pending"),
    # kept by a database trigger on the approvals' table (approvals' migration 0009), whichever
    # path changes an approval: the run list filters and shows it without reading approvals.
    pending_approvals = models.PositiveIntegerField(default=0, db_default=0, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="runs",
    )
    # Who started a run no user did, as the audit log names that actor (``SYSTEM_CREATORS``):
    # ``system:cli`` for ``create_run`` without ``created_by`` (``start_run`` without ``--as``).
    # Blank for a user's run, so a run whose creator was deleted (``SET_NULL``) is not taken for
    # the system's. A database default too, so code that predates the column still inserts.
    created_by_system = models.CharField(max_length=64, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    # The run this one repeats ("Run again"), if any.
    source_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="run_model_xor_agent",
                condition=(Q(model="") & ~Q(agent="")) | (~Q(model="") & Q(agent="")),
            ),
        ]
        indexes = [
            # One per sort order of the run list, and one per equality filter and sort order, so
            # every page is an index range scan that starts at its cursor (keyset pagination),
            # however rare the filtered value and however its runs fall in the sort order.
            # It carries the other sort keys: a date range sorted by duration or tokens reads the
            # range's runs from it alone (an index-only scan), their rows fetched for the page only.
            models.Index(fields=["-created_at", "-id"], include=["duration_ms", "total_tokens"], name="run_created_idx"),
            models.Index(fields=["-duration_ms", "-id"], name="run_duration_idx"),
            models.Index(fields=["-total_tokens", "-id"], name="run_tokens_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="run_status_created_idx"),
            models.Index(fields=["status", "-duration_ms", "-id"], name="run_status_duration_idx"),
            models.Index(fields=["status", "-total_tokens", "-id"], name="run_status_tokens_idx"),
            models.Index(fields=["model", "-created_at", "-id"], name="run_model_created_idx"),
            models.Index(fields=["model", "-duration_ms", "-id"], name="run_model_duration_idx"),
            models.Index(fields=["model", "-total_tokens", "-id"], name="run_model_tokens_idx"),
            models.Index(fields=["agent", "-created_at", "-id"], name="run_agent_created_idx"),
            # Agent runs are the few: their other orders index them alone.
            models.Index(fields=["agent", "-duration_ms", "-id"], name="run_agent_duration_idx", condition=~Q(agent="")),
            models.Index(fields=["agent", "-total_tokens", "-id"], name="run_agent_tokens_idx", condition=~Q(agent="")),
            models.Index(fields=["created_by", "-created_at", "-id"], name="run_creator_created_idx"),
            models.Index(fields=["created_by", "-duration_ms", "-id"], name="run_creator_duration_idx"),
            models.Index(fields=["created_by", "-total_tokens", "-id"], name="run_creator_tokens_idx"),
            # "Has pending approvals", in each sort order: the few runs waiting for a person alone.
            models.Index(fields=["-created_at", "-id"], name="run_pending_created_idx", condition=Q(pending_approvals__gt=0)),
            models.Index(fields=["-duration_ms", "-id"], name="run_pending_duration_idx", condition=Q(pending_approvals__gt=0)),
            models.Index(fields=["-total_tokens", "-id"], name="run_pending_tokens_idx", condition=Q(pending_approvals__gt=0)),
            # Full-text search over inputs and output text (PostgreSQL only: migrations 0002-0004).
            GinIndex(SEARCH_DOCUMENT, name="run_search_idx"),
            # "Tool used" (tool_names LIKE '%,name,%') by trigrams, so a rare tool is found without
            # walking a sort order (PostgreSQL only: migration 0007).
            GinIndex(fields=["tool_names"], opclasses=["gin_trgm_ops"], name="run_tool_names_idx"),
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
    def elapsed_ms(self) -> int | None:
        """The run's duration, or for an active run the time it has run so far (ms)."""
        if self.duration_ms is not None:
            return self.duration_ms
        end = self.finished_at or (timezone.now() if self.is_active else None)
        if end is None:
            return None
        return int((end - self.created_at).total_seconds() * 1000)

    @property
    def creator_name(self) -> str:
        """Who started the run, as pages name them: the user's username; for a run the system
        started, what ``SYSTEM_CREATORS`` calls that part of it ("system (command line)"); an em
        dash when neither is known (the user was deleted). Reads ``created_by``: load it with the
        run (``select_related``, or ``with_creators`` for a list)."""
        if self.created_by_id is not None:
            return self.created_by.get_username()
        if self.created_by_system:
            return SYSTEM_CREATORS.get(self.created_by_system, self.created_by_system)
        return "—"

    @property
    def error_summary(self) -> str:
        return self.error.strip().splitlines()[0] if self.error.strip() else ""


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
        # The API's own enum (docs/interactions-api.md §4.1), stored as received.
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
    # Who asked for this interaction with input of their own (started the run, continued it,
    # tracked it); ``None`` for a follow-up that only carries function results. Everyone who asked
    # for an interaction of a run up to a function call is one of that call's requesters
    # (``Approval.is_requester``): four-eyes policies keep them from approving it.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
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
    # Kept by runs.execution (see Run.step_count): how many steps this interaction has, and the
    # run-wide position of its first step (the steps of the interactions before it), so a chunk
    # of the timeline is found with a range scan of interaction_run_first_step_idx.
    step_count = models.PositiveIntegerField(default=0, editable=False)
    first_step = models.PositiveIntegerField(default=0, editable=False)

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
        indexes = [
            # The run page's timeline: the interactions at or around a step position.
            models.Index(fields=["run", "first_step", "sequence"], name="interaction_run_first_step_idx"),
            # Its timing chart: the slowest finished interactions, the last end, and the few
            # interactions not sent or not finished, each without reading the whole run.
            models.Index(
                F("run"), ExpressionWrapper(F("finished_at") - F("sent_at"), output_field=models.DurationField()).desc(),
                F("sequence"), name="interaction_run_took_idx",
                condition=Q(sent_at__isnull=False, finished_at__isnull=False),
            ),
            models.Index(
                fields=["run", "finished_at"], name="interaction_run_finished_idx",
                condition=Q(sent_at__isnull=False, finished_at__isnull=False),
            ),
            models.Index(
                fields=["run", "sequence"], name="interaction_run_open_idx",
                condition=Q(sent_at__isnull=True) | Q(finished_at__isnull=True),
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
    # Calls carry ``id`` and results ``call_id`` pointing back to it (docs/interactions-api.md §5);
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

    @classmethod
    def from_api(cls, data: dict[str, Any], *, interaction: Interaction | None = None, index: int = 0) -> Step:
        """An unsaved step for ``data``, one entry of ``Interaction.steps`` (or of a request's
        ``input``) as the API sends it: its ``type``, its ``call_id`` (a call's own ``id``, a
        result's ``call_id``: gemini-interactions.md §5) and ``name``, each cut to its column's
        length, and ``data`` itself, whatever its type."""
        step_type = str(data.get("type") or "")
        call_id = data.get("id") if step_type.endswith("_call") else data.get("call_id")
        return cls(
            interaction=interaction, index=index, type=step_type[:64],
            call_id=str(call_id or "")[:200], name=str(data.get("name") or "")[:200], data=data,
        )

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
