"""Starting runs, sending interactions, polling background ones and recording what came back.

The loop (docs/contracts.md, "The flow"): a run's first interaction is created; a background one is
polled with ``interactions.get`` on a backoff schedule until it is stable; ``requires_action``
hands the function calls to the registered action handler (approvals); once every call is
settled, a follow-up interaction carrying one ``function_result`` per ``call_id`` continues the
chain through ``previous_interaction_id``; a terminal status ends the run.

Exactly once. Every remote create starts as an ``Interaction`` row (the intent), written in the
transaction that decided to make the call. Sending claims the row with a conditional update
(``pending`` → ``sending``), so two deliveries of the same task make one request. Errors that
prove the request was not acted on (429, 500, 503, connection refused) put the row back to
``pending`` for a retry; anything that leaves the outcome open (a timeout, a 502/504, a worker
that died mid-request) makes the row ``unknown``, and it is never resent automatically.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from google.genai import _interactions as api_errors

from audit import log
from runs import gemini, metrics
from runs.models import Artifact, Interaction, Run, Step


SYSTEM_ACTOR = "system:worker"
# Who starts a run no user starts (``create_run(created_by=None)``), in the audit log and on the
# run (``Run.created_by_system``; ``runs.models.SYSTEM_CREATORS`` names it for pages).
SYSTEM_CLI = "system:cli"
# Errors after which the API has certainly not created an interaction, so a resend is safe.
RETRYABLE_STATUS_CODES = frozenset({429, 500, 503})
# Gateway errors: the request may have reached the API, so the outcome is unknown.
AMBIGUOUS_STATUS_CODES = frozenset({502, 504})


# --- Hooks -----------------------------------------------------------------------------------
# The two places where a run hands over to approvals, which lies above it: ``runs`` never imports
# ``approvals`` (the layers run dashboard → approvals → runs → audit). A ``requires_action``
# interaction's function calls are settled by policy (``approvals.models.settle_function_calls``),
# and a cancelled run's pending approvals are closed (``approvals.models.expire_for_cancelled_run``).
# approvals registers both at start-up (``ApprovalsConfig.ready``); they run inside the
# transaction that records the change, under its locks. Until then a requires_action answer
# raises rather than strand its calls. The audit log is below runs: it is called directly.


def _no_action_handler(interaction: Interaction) -> str:
    raise RuntimeError("No handler for requires_action is registered (approvals is not installed).")


def _no_cancel_handler(*, run: Run, by) -> None:
    return None  # without approvals, nothing waits on a run


@dataclass
class Hooks:
    # handle_requires_action(interaction) -> the run's new status (a Run.Status value)
    handle_requires_action: Callable[[Interaction], str] = _no_action_handler
    # run_cancelled(run=Run, by=User|None) -> None: what waited on the run (pending approvals) is closed.
    run_cancelled: Callable[..., None] = _no_cancel_handler


hooks = Hooks()


def register_hooks(
    *,
    handle_requires_action: Callable[[Interaction], str],
    run_cancelled: Callable[..., None],
) -> None:
    """Install approvals' two hand-overs (see above). Called once, by ``ApprovalsConfig.ready``."""
    hooks.handle_requires_action = handle_requires_action
    hooks.run_cancelled = run_cancelled


# --- Locks -----------------------------------------------------------------------------------
# One lock order, for every transaction that locks more than one row: the RUN first, then its
# INTERACTION, then that interaction's APPROVALS (approvals.models.Approval). Recording an answer,
# failing a send, settling a call, deciding, expiring and cancelling all take the run's lock
# before anything else, through ``lock_interaction`` or ``lock_run``; a transaction that locks
# a single row (a claim, a reminder, a conditional UPDATE) may lock it alone. Taken in two orders,
# a reviewer's decision (approval, then interaction) and the worker settling a call (interaction,
# then approval) deadlocked, and PostgreSQL rolled back whichever it chose: a tool's result
# once. Everything on one run queues behind its lock; different runs never wait for each other.


def lock_run(run_pk: int) -> Run:
    """The run ``run_pk``, locked (``SELECT … FOR UPDATE`` of the run's row only). Call inside
    a transaction, before locking any of its interactions or approvals."""
    return Run.objects.select_for_update(of=("self",)).get(pk=run_pk)


def lock_interaction(interaction_pk: int, *, run_pk: int | None = None) -> Interaction:
    """The interaction ``interaction_pk`` with its run, both locked in the lock order (run,
    then interaction); ``interaction.run`` is the locked run. ``run_pk``, when the caller knows
    it, saves the query that looks it up. Call inside a transaction."""
    if run_pk is None:
        run_pk = Interaction.objects.values_list("run_id", flat=True).get(pk=interaction_pk)
    run = lock_run(run_pk)
    interaction = Interaction.objects.select_for_update(of=("self",)).get(pk=interaction_pk)
    interaction.run = run
    return interaction


# --- Starting and continuing -----------------------------------------------------------------


def input_preview(value: Any, limit: int | None = 300) -> str:
    """A one-line preview of an ``input`` value: the text of a string or of its text blocks,
    cut to ``limit`` characters (``None``: whole)."""
    if isinstance(value, str):
        text = value
    else:
        text = " ".join(gemini.texts(value)) or json.dumps(value)[:limit]
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _described(input: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A new run's input and tools with what is derived from them for the list and its search:
    the input's full text and preview, and the tools' names as ``,name,name,``."""
    names = [t["name"] for t in tools if t.get("name")]
    return {
        "input": input, "input_text": input_preview(input, limit=None), "input_preview": input_preview(input),
        "tools": tools, "tool_names": f",{','.join(names)}," if names else "",
    }


def build_request(run: Run, *, input: Any = None, previous_interaction_id: str = "", **extra: Any) -> dict[str, Any]:
    """The ``interactions.create`` body for one interaction of ``run``.

    Tools, system instruction and generation config are sent on every interaction of the chain:
    the API keeps conversation state, but whether it keeps tools across ``previous_interaction_id``
    is not documented (docs/interactions-api.md §6), and the quickstart resends them.
    """
    body: dict[str, Any] = {"model": run.model} if run.model else {"agent": run.agent}
    if input is not None:
        body["input"] = input
    if previous_interaction_id:
        body["previous_interaction_id"] = previous_interaction_id
    if run.tools:
        body["tools"] = run.tools
    if run.system_instruction:
        body["system_instruction"] = run.system_instruction
    if run.generation_config:
        body["generation_config"] = run.generation_config
    if run.background:
        body["background"] = True
    body.update(extra)
    return body


@transaction.atomic
def create_run(
    *,
    input: Any,
    model: str = "",
    agent: str = "",
    tools: list[dict[str, Any]] | None = None,
    background: bool = False,
    system_instruction: str = "",
    generation_config: dict[str, Any] | None = None,
    created_by=None,
    source_run: Run | None = None,
) -> Run:
    """Create a run and the intent of its first interaction, and queue the send.

    ``tools`` are declarations as the API takes them (``{"type": "function", "name", ...}``).
    Exactly one of ``model`` and ``agent`` must be given (``ValueError`` otherwise).
    ``created_by``: the user who starts it; ``None`` for the system (``start_run`` without
    ``--as``, code of one's own), which the run and the audit log record as ``SYSTEM_CLI``.
    """
    if bool(model) == bool(agent):
        raise ValueError("Give exactly one of model and agent.")
    tools = tools or []
    run = Run.objects.create(
        model=model, agent=agent, **_described(input, tools),
        background=background, system_instruction=system_instruction,
        generation_config=generation_config, created_by=created_by, source_run=source_run,
        created_by_system="" if created_by is not None else SYSTEM_CLI,
        interaction_count=1, step_count=0,
    )
    interaction = Interaction.objects.create(
        run=run, sequence=0, request=build_request(run, input=input), requested_by=created_by
    )
    log.record(
        actor=created_by or SYSTEM_CLI, verb="run.started", obj=run, run=run,
        after={"model": model, "agent": agent, "input": input_preview(input),
               "tools": [t.get("name", t.get("type")) for t in run.tools], "background": background},
    )
    _queue_send(interaction)
    return run


def continue_with(previous: Interaction, **body: Any) -> Interaction | None:
    """Record the intent of the interaction that follows ``previous`` in its run's chain, and
    queue its send. ``body`` holds what is specific to it (``input``, ``continuation_token``).

    Returns the new interaction, or ``None`` when ``previous`` already has a follow-up (the
    unique ``(run, sequence)`` constraint makes this safe under concurrency) or the run is no
    longer active (cancelled meanwhile: nothing more is asked of the API). Call inside a
    transaction that holds the locks of ``previous`` and its run (``lock_interaction``).
    """
    run = previous.run
    run.refresh_from_db(fields=["status", "step_count"])
    if not run.is_active or run.interactions.filter(sequence=previous.sequence + 1).exists():
        return None
    follow_up = Interaction.objects.create(
        run=run,
        sequence=previous.sequence + 1,
        previous_interaction_id=previous.interaction_id,
        request=build_request(run, previous_interaction_id=previous.interaction_id, **body),
        first_step=run.step_count,
    )
    _count_interaction(run)
    _set_run_status(run, Run.Status.RUNNING, current=True)  # read above, under the run's lock
    _queue_send(follow_up)
    return follow_up


# The tasks that drive an interaction (runs.tasks) call this module, and this module queues them:
# it names them rather than imports them, so the import graph has no circle (queuing a task is
# sending a message to a worker, not a call). Celery's registry (``current_app.tasks``) raises
# ``KeyError`` for a name that is not a task; tests/test_layers.py checks every name.
SEND_TASK = "runs.tasks.send_interaction"
POLL_TASK = "runs.tasks.poll_interaction"
CANCEL_TASK = "runs.tasks.cancel_interaction"


def _queue_send(interaction: Interaction) -> None:
    current_app.tasks[SEND_TASK].delay_on_commit(interaction.pk)


def _queue_poll(interaction: Interaction, delay: float) -> None:
    current_app.tasks[POLL_TASK].apply_async_on_commit((interaction.pk,), countdown=delay)


class CannotDoThat(Exception):
    """An action that does not fit the run's state (cancel a finished run, continue an active
    one, track an interaction already tracked). The message says why, for a person."""


@transaction.atomic
def cancel_run(run_pk: int, *, by) -> Run:
    """Cancel an active run as ``by``: no further interaction is sent, pending approvals close,
    and a background interaction still running on the API is cancelled there by a task
    (``interactions.cancel``, which applies to running background interactions only).

    Raises ``CannotDoThat`` for a run that is not active."""
    run = lock_run(run_pk)
    before = run.status
    if not run.is_active or not _set_run_status(run, Run.Status.CANCELLED):
        raise CannotDoThat(f"Run {run.pk} is {run.get_status_display().lower()}: only an active run can be cancelled.")
    Run.objects.filter(pk=run.pk).update(cancelled_by=by)
    run.cancelled_by = by
    log.record(actor=by, verb="run.cancelled", obj=run, run=run, before={"status": before},
                       after={"status": Run.Status.CANCELLED})
    run.interactions.filter(dispatch=Interaction.Dispatch.PENDING).update(
        dispatch=Interaction.Dispatch.ERROR, error="Not sent: the run was cancelled first.", finished_at=timezone.now()
    )
    hooks.run_cancelled(run=run, by=by)
    live = run.interactions.filter(
        dispatch=Interaction.Dispatch.SENT, status__in=[Interaction.Status.QUEUED, Interaction.Status.IN_PROGRESS]
    )
    for pk in live.values_list("pk", flat=True):
        current_app.tasks[CANCEL_TASK].delay_on_commit(pk)
    return run


def cancel_remote(interaction_pk: int) -> None:
    """``interactions.cancel`` a background interaction of a cancelled run and record what the
    API answers. An API refusal (it finished meanwhile) is noted on the interaction; the run stays
    cancelled. Raises the SDK's retryable errors for the task to retry."""
    interaction = Interaction.objects.select_related("run").get(pk=interaction_pk)
    if interaction.is_stable:
        return
    try:
        response = gemini.cancel(interaction.interaction_id)
    except gemini.MalformedResponse as exc:
        Interaction.objects.filter(pk=interaction_pk).update(error=f"Cancel: {exc}")
        return
    except api_errors.APIStatusError as exc:
        if is_retryable(exc):
            raise
        Interaction.objects.filter(pk=interaction_pk).update(error=f"Cancel refused: {gemini.describe_error(exc)}")
        return
    record(interaction, response)


@transaction.atomic
def continue_run(run_pk: int, *, text: str, by) -> Interaction:
    """Continue a completed run with a new user message: a new interaction chained to the last
    one with ``previous_interaction_id`` (the API keeps the conversation). Raises
    ``CannotDoThat`` unless the run is completed and its last interaction has an id. ``by``
    becomes one of the requesters of every call the new interaction leads to."""
    run = lock_run(run_pk)
    last = run.interactions.order_by("-sequence").first()
    if run.status != Run.Status.COMPLETED or last is None or not last.interaction_id:
        raise CannotDoThat("Only a completed run can be continued.")
    before = run.status
    run.input_text = f"{run.input_text}\n{text}".strip()
    # A conditional update, like every status change: it wins only over the status it read.
    if not Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).update(
        status=Run.Status.RUNNING, finished_at=None, duration_ms=None, input_text=run.input_text,
        interaction_count=F("interaction_count") + 1,
    ):
        raise CannotDoThat("Only a completed run can be continued.")
    run.status, run.finished_at, run.duration_ms = Run.Status.RUNNING, None, None
    follow_up = Interaction.objects.create(
        run=run, sequence=last.sequence + 1, previous_interaction_id=last.interaction_id,
        request=build_request(run, input=text, previous_interaction_id=last.interaction_id), requested_by=by,
        first_step=run.step_count,
    )
    log.record(
        actor=by, verb="run.continued", obj=run, run=run,
        before={"status": before}, after={"status": run.status, "input": input_preview(text)},
    )
    _queue_send(follow_up)
    return follow_up


def rerun(run_pk: int, *, by) -> Run:
    """A new run with the same request as run ``run_pk`` (model or agent, input, tools, options)."""
    source = Run.objects.get(pk=run_pk)
    return create_run(
        model=source.model, agent=source.agent, input=source.input, tools=source.tools,
        background=source.background, system_instruction=source.system_instruction,
        generation_config=source.generation_config, created_by=by, source_run=source,
    )


# What an interaction id looks like: the API's are "v1_" and unpadded base64url
# ("v1_ChdPU0F4YWFt…", docs/interactions-api.md §4 and tests/payloads/), the emulator's "v1_emu…". The
# SDK puts the id into the request path unquoted ("/{api_version}/interactions/{id}"), so a "/",
# "." or "%" would let "../../x" reach any path of the API host with the key attached: only
# these characters pass, up to the length Interaction.interaction_id stores.
INTERACTION_ID = re.compile(r"\A[A-Za-z0-9_-]{1,200}\Z")
INTERACTION_ID_RULE = "An interaction id is 1 to 200 letters, digits, _ and - (e.g. v1_ChdPU0F4…)."


def track_interaction(interaction_id: str, *, by) -> Run:
    """Record an interaction started elsewhere as a new run: ``interactions.get`` it (with its
    input), store it, and poll it if it is still running.

    Raises ``CannotDoThat`` for an id that is not one (``INTERACTION_ID``; nothing is sent) or
    is tracked already, and the SDK's errors (``NotFoundError`` for an unknown id) and
    ``gemini.MalformedResponse`` as ``gemini.get`` does."""
    interaction_id = interaction_id.strip()
    if not INTERACTION_ID.fullmatch(interaction_id):
        raise CannotDoThat(INTERACTION_ID_RULE)
    existing = Interaction.objects.filter(interaction_id=interaction_id).select_related("run").first()
    if existing:
        raise CannotDoThat(f"{interaction_id} is already recorded in run {existing.run_id}.")
    response = gemini.get(interaction_id, include_input=True)
    payload = response.payload
    with transaction.atomic():
        model, agent = str(payload.get("model") or ""), str(payload.get("agent") or "")
        if bool(model) == bool(agent):
            model, agent = model or "unknown", ""
        input = payload.get("input", "")
        tools = [t for t in payload.get("tools") or [] if isinstance(t, dict)]
        run = Run.objects.create(
            model=model, agent=agent, **_described(input, tools),
            background=bool(payload.get("background")) or response.status in ("queued", "in_progress"),
            system_instruction=str(payload.get("system_instruction") or ""), created_by=by,
            interaction_count=1, step_count=0,
        )
        interaction = Interaction.objects.create(
            run=run, sequence=0, interaction_id=interaction_id, dispatch=Interaction.Dispatch.SENDING,
            previous_interaction_id=str(payload.get("previous_interaction_id") or ""),
            request={}, sent_at=timezone.now(), requested_by=by,
        )
        log.record(actor=by, verb="run.tracked", obj=run, run=run, after={"interaction_id": interaction_id})
        record(interaction, response)
    return run


# --- Sending ---------------------------------------------------------------------------------


class StillSending(Exception):
    """Another worker claimed this send and its request may still be under way; look again in
    ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__(f"still sending; check again in {seconds:.0f}s")
        self.seconds = seconds


def sending_lease() -> timedelta:
    """How long a claimed send may take: the SDK's request timeout plus a margin for recording."""
    return timedelta(milliseconds=settings.GEMINI_TIMEOUT_MS) + timedelta(seconds=settings.SENDING_LEASE_MARGIN)


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` proves the API did not act on the request, so it may be sent again."""
    if isinstance(exc, api_errors.APITimeoutError):
        return False
    if isinstance(exc, api_errors.APIConnectionError):
        return True
    return isinstance(exc, api_errors.APIStatusError) and exc.status_code in RETRYABLE_STATUS_CODES


def send(interaction_pk: int) -> None:
    """Send a recorded interaction intent with ``interactions.create`` and record the answer.

    Safe to call more than once for the same interaction: only the caller whose conditional update
    claims the ``pending`` row sends. Raises a retryable SDK error (see ``is_retryable``) after
    putting the row back to ``pending``; raises ``StillSending`` when another worker holds a
    claim that has not yet run out.
    """
    now = timezone.now()
    # The claim's condition names the row's own columns only. A condition on a joined table
    # (the run's status) makes Django write ``WHERE id IN (subquery)``, and PostgreSQL does not
    # re-evaluate a subquery for a row it had to wait on: two racing claims would both win.
    claimed = Interaction.objects.filter(pk=interaction_pk, dispatch=Interaction.Dispatch.PENDING).update(
        dispatch=Interaction.Dispatch.SENDING, sent_at=now, error=""
    )
    if not claimed:
        _check_claimed_send(interaction_pk, now)
        return
    interaction = Interaction.objects.select_related("run").get(pk=interaction_pk)
    if not interaction.run.is_active:
        Interaction.objects.filter(pk=interaction_pk).update(
            dispatch=Interaction.Dispatch.ERROR, error="Not sent: the run was cancelled first.", finished_at=now
        )
        return
    _save_manifest(interaction)
    try:
        response = gemini.create(interaction.request)
    except gemini.MalformedResponse as exc:
        _fail_send(interaction, Interaction.Dispatch.ERROR, str(exc), raw_body=exc.body)
        return
    except (api_errors.APIConnectionError, api_errors.APIStatusError) as exc:
        if is_retryable(exc):
            Interaction.objects.filter(pk=interaction_pk, dispatch=Interaction.Dispatch.SENDING).update(
                dispatch=Interaction.Dispatch.PENDING, error=gemini.describe_error(exc)
            )
            raise
        ambiguous = isinstance(exc, api_errors.APIConnectionError) or exc.status_code in AMBIGUOUS_STATUS_CODES
        if ambiguous:
            _fail_send(interaction, Interaction.Dispatch.UNKNOWN, _unknown_outcome(gemini.describe_error(exc)))
        else:
            _fail_send(interaction, Interaction.Dispatch.ERROR, gemini.describe_error(exc))
        return
    except (TypeError, ValueError) as exc:
        # The SDK validates request bodies locally and refuses them before sending
        # (docs/interactions-api.md §10.4); pydantic's ValidationError is a ValueError.
        _fail_send(interaction, Interaction.Dispatch.ERROR, f"The SDK refused the request: {exc}")
        return
    except Exception as exc:
        # Anything else may have happened before or after the request left: say so, never resend.
        _fail_send(interaction, Interaction.Dispatch.UNKNOWN, _unknown_outcome(f"{type(exc).__name__}: {exc}."))
        raise
    record(interaction, response)


def recover_stalled(*, lost_after: timedelta | None = None) -> dict[str, int]:
    """The periodic safety net for work lost with a worker or a broker message: a send claim
    past its lease is recorded as of unknown outcome (never resent automatically: a person may
    resend it, see ``resend_unknown``), and an intent still ``pending`` after ``lost_after``
    (default ``settings.STRANDED_AFTER`` seconds) in an active run is queued again (it was never
    sent, so sending it is safe; the claim keeps a duplicate delivery from sending twice).
    Returns the counts."""
    now = timezone.now()
    lost_after = lost_after if lost_after is not None else timedelta(seconds=settings.STRANDED_AFTER)
    stalled = list(Interaction.objects.filter(
        dispatch=Interaction.Dispatch.SENDING, sent_at__lt=now - sending_lease()
    ).values_list("pk", flat=True))
    for pk in stalled:
        _check_claimed_send(pk, now)
    lost = list(Interaction.objects.filter(
        dispatch=Interaction.Dispatch.PENDING, created_at__lt=now - lost_after, run__status__in=Run.ACTIVE_STATUSES
    ).values_list("pk", flat=True))
    for pk in lost:
        current_app.tasks[SEND_TASK].delay(pk)
    return {"unknown": len(stalled), "requeued": len(lost)}


UNKNOWN_RISK = (
    "The API may already have received this request: resending it can deliver its function "
    "results a second time (a refund issued twice is told to the model twice, not run twice)."
)


@transaction.atomic
def resend_unknown(interaction_pk: int, *, by) -> Interaction:
    """Send again an interaction whose send ended with an unknown outcome, as ``by`` decided
    (an admin, who was shown ``UNKNOWN_RISK``): the intent goes back to ``pending``, the run
    that failed on it is active again, and the send is queued. Recorded as
    ``interaction.resent`` with the risk stated. Raises ``CannotDoThat`` unless the
    interaction's outcome is unknown and it is the run's last interaction."""
    interaction = lock_interaction(interaction_pk)
    run = interaction.run
    _check_unknown(interaction)
    Interaction.objects.filter(pk=interaction.pk).update(
        dispatch=Interaction.Dispatch.PENDING, error="", finished_at=None, sent_at=None
    )
    # FAILED is final for everything the loop does; only this decision of a person reopens it.
    Run.objects.filter(pk=run.pk, status=Run.Status.FAILED).update(
        status=Run.Status.RUNNING, error="", finished_at=None, duration_ms=None
    )
    log.record(actor=by, verb="interaction.resent", obj=interaction, run=run,
                       before={"dispatch": Interaction.Dispatch.UNKNOWN, "run_status": run.status,
                               "error": interaction.error},
                       after={"dispatch": Interaction.Dispatch.PENDING, "run_status": Run.Status.RUNNING,
                              "risk": UNKNOWN_RISK})
    interaction.refresh_from_db()
    _queue_send(interaction)
    return interaction


@transaction.atomic
def close_unknown(interaction_pk: int, *, by) -> Interaction:
    """Close an interaction whose send ended with an unknown outcome as failed, as ``by``
    decided after checking the API's side: it is never sent again and the run stays failed.
    Recorded as ``interaction.closed``. Raises ``CannotDoThat`` as ``resend_unknown`` does."""
    interaction = lock_interaction(interaction_pk)
    _check_unknown(interaction)
    message = f"Closed as failed by {by.get_username()}: the send's outcome was unknown; it is not sent again."
    Interaction.objects.filter(pk=interaction.pk).update(dispatch=Interaction.Dispatch.ERROR, error=message)
    log.record(actor=by, verb="interaction.closed", obj=interaction, run=interaction.run,
                       before={"dispatch": Interaction.Dispatch.UNKNOWN, "error": interaction.error},
                       after={"dispatch": Interaction.Dispatch.ERROR, "error": message})
    _set_run_status(interaction.run, Run.Status.FAILED)
    interaction.refresh_from_db()
    return interaction


def _check_unknown(interaction: Interaction) -> None:
    if interaction.dispatch != Interaction.Dispatch.UNKNOWN:
        raise CannotDoThat("Only an interaction whose send has an unknown outcome can be resent or closed.")
    if interaction.run.interactions.filter(sequence__gt=interaction.sequence).exists():
        raise CannotDoThat("A later interaction of this run exists: this one cannot be resent.")


def give_up(interaction_pk: int, exc: BaseException, *, polls: int | None = None) -> None:
    """Retries ran out for a retryable error: record it on the interaction and fail the run.

    ``exc`` a ``gemini.MalformedResponse``: the last of ``polls`` polls in a row that got a
    body that is not an interaction; the message names what was missing and how many polls
    tried, and that last body is kept as the ``raw_response`` artifact."""
    interaction = Interaction.objects.select_related("run").get(pk=interaction_pk)
    if interaction.dispatch == Interaction.Dispatch.PENDING:
        _fail_send(interaction, Interaction.Dispatch.ERROR, f"Gave up after retries: {gemini.describe_error(exc)}")
    elif interaction.dispatch == Interaction.Dispatch.SENT and not interaction.is_stable:
        if isinstance(exc, gemini.MalformedResponse):
            _fail_send(
                interaction, Interaction.Dispatch.SENT,
                f"Polling gave up after {polls} polls in a row that got no interaction. The last: {exc}",
                raw_body=exc.body,
            )
        else:
            # Through _fail_send: in one transaction, under the run's lock, as the event requires.
            _fail_send(interaction, Interaction.Dispatch.SENT,
                       f"Polling gave up after retries: {gemini.describe_error(exc)}")


def _unknown_outcome(cause: str) -> str:
    return (
        f"{cause} The API may or may not have created this interaction; Handoff does not send it "
        "again, so a function result is never delivered twice."
    )


def _check_claimed_send(interaction_pk: int, now) -> None:
    interaction = Interaction.objects.select_related("run").get(pk=interaction_pk)
    if interaction.dispatch != Interaction.Dispatch.SENDING:
        return  # already answered (or refused): nothing to do
    expires = interaction.sent_at + sending_lease()
    if now < expires:
        raise StillSending((expires - now).total_seconds())
    # The claim ran out with no answer recorded: the worker holding it died mid-request. One
    # transaction, so the row never shows ``unknown`` without the error and the failed run.
    with transaction.atomic():
        lock_interaction(interaction_pk)
        if Interaction.objects.filter(pk=interaction_pk, dispatch=Interaction.Dispatch.SENDING).update(
            dispatch=Interaction.Dispatch.UNKNOWN
        ):
            _fail_send(
                interaction, Interaction.Dispatch.UNKNOWN,
                _unknown_outcome("The worker sending this request stopped before an answer was recorded."),
            )


@transaction.atomic
def _fail_send(interaction: Interaction, dispatch: str, message: str, raw_body: str | None = None) -> None:
    interaction = lock_interaction(interaction.pk, run_pk=interaction.run_id)
    interaction.dispatch = dispatch
    interaction.error = message
    interaction.finished_at = timezone.now()
    interaction.save(update_fields=["dispatch", "error", "finished_at"])
    if raw_body is not None:
        # A body Handoff could not read is kept whatever the capture setting: it is the evidence.
        _save_artifact(interaction, Artifact.Kind.RAW_RESPONSE, raw_body, media_type="text/plain")
    _fail_run(interaction, message)


# How the run's error words an interaction the API ended without success, by its status (the
# API's enum: docs/interactions-api.md §4.1); another status is named as it is.
ENDED = {
    "failed": "The Interactions API reports that interaction {n} failed",
    "incomplete": "The Interactions API stopped interaction {n} before it was complete",
    "budget_exceeded": "Interaction {n} went over its budget",
}


def ended_message(interaction: Interaction) -> str:
    """Why ``interaction`` (stable, not completed) ended its run, in plain words for the run's
    error: what its status means, then the API's errors (``message (code)``, ``; `` between
    them), e.g. "The Interactions API reports that interaction 2 failed: backend error
    (internal)."."""
    n = interaction.sequence + 1
    said = ENDED.get(interaction.status, "Interaction {n} ended with the status {status}").format(
        n=n, status=interaction.status
    )
    details = []
    for error in interaction.errors if isinstance(interaction.errors, list) else []:
        if not isinstance(error, dict):
            details.append(str(error))
            continue
        message, code = str(error.get("message") or "").strip().rstrip("."), str(error.get("code") or "").strip()
        details.append(f"{message} ({code})" if message and code else message or code)
    details = [detail for detail in details if detail]
    return said + (f": {'; '.join(details)}" if details else "") + "."


def _fail_run(interaction: Interaction, message: str) -> None:
    run = interaction.run
    log.record(
        actor=SYSTEM_ACTOR, verb="interaction.failed", obj=interaction, run=run,
        after={"dispatch": interaction.dispatch, "error": message},
    )
    run.error = message
    run.save(update_fields=["error"])
    _set_run_status(run, Run.Status.FAILED)


# --- Polling ---------------------------------------------------------------------------------


def poll_delay(poll_count: int) -> float:
    """Seconds before the next ``get`` of a background interaction that has been polled
    ``poll_count`` times: doubling from POLL_INITIAL_DELAY up to POLL_MAX_DELAY, so a run of T
    seconds costs O(log T) requests until the cap."""
    return min(settings.POLL_MAX_DELAY, settings.POLL_INITIAL_DELAY * 2**poll_count)


def poll(interaction_pk: int) -> None:
    """``interactions.get`` a background interaction and record the answer.

    A no-op once the interaction is stable, so duplicate deliveries cost at most one extra GET.
    Raises the SDK's errors; the task retries the transient ones. Raises
    ``gemini.MalformedResponse`` for a 200 body that is not an interaction, after keeping the
    body (the ``raw_response`` artifact, whatever the capture setting) and a note on the
    interaction; the task polls again with backoff, ``settings.POLL_MALFORMED_LIMIT`` polls in a
    row at most (see ``give_up``).
    """
    interaction = Interaction.objects.select_related("run").get(pk=interaction_pk)
    if interaction.is_stable or interaction.dispatch != Interaction.Dispatch.SENT:
        return
    Interaction.objects.filter(pk=interaction_pk).update(poll_count=F("poll_count") + 1)
    try:
        response = gemini.get(interaction.interaction_id)
    except gemini.MalformedResponse as exc:
        # One odd answer says nothing about the job itself: the SDK reads such a body as
        # status=None without complaint (docs/interactions-api.md §10.4), and Google's documented
        # bodies differ (the breaking-changes guide's legacy example has no status). Kept as
        # evidence, and retried.
        _save_artifact(interaction, Artifact.Kind.RAW_RESPONSE, exc.body, media_type="text/plain")
        Interaction.objects.filter(pk=interaction_pk).update(
            error=f"Poll {interaction.poll_count + 1}: {exc} Its body is kept as the raw response; "
                  "the poll was retried."
        )
        raise
    except api_errors.APIStatusError as exc:
        if is_retryable(exc) or exc.status_code in AMBIGUOUS_STATUS_CODES:
            raise
        _fail_send(interaction, Interaction.Dispatch.SENT, gemini.describe_error(exc))
        return
    record(interaction, response)


# --- Recording -------------------------------------------------------------------------------


CONTENT_TYPES = frozenset({"text", "image", "audio", "video", "document"})


def step_dicts(response: gemini.Response) -> list[dict[str, Any]]:
    """The steps of a response as the API sent them, whatever their type (unknown types
    included). A response in the legacy ``outputs`` shape is read into steps."""
    if not response.steps and isinstance(response.payload.get("outputs"), list):
        return steps_from_legacy_outputs(response.payload["outputs"])
    return response.steps


def steps_from_legacy_outputs(outputs: list[Any]) -> list[dict[str, Any]]:
    """Steps for a response in the legacy shape (``outputs`` of content blocks, removed from the
    API on 2026-06-08 per the breaking-changes guide): runs of content blocks become one
    ``model_output`` step; thoughts, calls and results are already step-shaped."""
    steps: list[dict[str, Any]] = []
    for block in outputs:
        if not isinstance(block, dict):
            continue
        if block.get("type") in CONTENT_TYPES:
            if steps and steps[-1].get("type") == "model_output" and steps[-1].get("_legacy"):
                steps[-1]["content"].append(block)
            else:
                steps.append({"type": "model_output", "content": [block], "_legacy": True})
        else:
            steps.append(block)
    for step in steps:
        step.pop("_legacy", None)
    return steps


def record(interaction: Interaction, response: gemini.Response) -> None:
    """Store what the API answered for ``interaction``: id, status, new steps, usage, output
    text and artifacts; then move the run on. A stable interaction is recorded once: a later
    call for it (a duplicate poll) changes nothing. Timed, commit and seal included, in
    ``handoff_recording_seconds`` (``dashboard.metrics``)."""
    with metrics.recording():
        _record(interaction, response)


# The interaction's columns ``_record`` sets.
RECORDED_FIELDS = ("step_count", "interaction_id", "dispatch", "status", "sdk_version", "schema_warning", "output_text",
                   "usage", "errors", "finished_at", "next_poll_at")


@transaction.atomic
def _record(interaction: Interaction, response: gemini.Response) -> None:
    interaction = lock_interaction(interaction.pk, run_pk=interaction.run_id)
    if interaction.is_stable:
        return
    status = response.status
    now = timezone.now()
    steps = step_dicts(response)
    usage_before = interaction.usage
    recorded_before = interaction.dispatch == Interaction.Dispatch.SENT
    known = interaction.step_count
    added = max(len(steps) - known, 0)

    interaction.step_count = known + added
    interaction.interaction_id = response.id or interaction.interaction_id
    interaction.dispatch = Interaction.Dispatch.SENT
    interaction.status = status
    interaction.sdk_version = gemini.SDK_VERSION
    interaction.schema_warning = response.schema_error or ""
    interaction.output_text = gemini.output_text(steps)
    interaction.usage = response.usage or interaction.usage
    interaction.errors = response.errors
    stable = status in Interaction.STABLE_STATUSES
    if stable:
        interaction.finished_at = now
        interaction.next_poll_at = None
    else:
        delay = poll_delay(interaction.poll_count)
        interaction.next_poll_at = now + timedelta(seconds=delay)
    # The columns set above only: the request (the whole input, the tools) is never written again.
    interaction.save(update_fields=RECORDED_FIELDS)

    if added:
        Step.objects.bulk_create(
            Step.from_api(data, interaction=interaction, index=i) for i, data in enumerate(steps) if i >= known
        )
    artifacts = []
    if settings.CAPTURE_RAW_PAYLOADS:
        artifacts.append(_artifact(interaction, Artifact.Kind.RAW_RESPONSE, response.body))
    if stable:
        if interaction.output_text:
            artifacts.append(_artifact(interaction, Artifact.Kind.OUTPUT_TEXT, interaction.output_text, "text/plain"))
        if interaction.usage:
            artifacts.append(_artifact(interaction, Artifact.Kind.USAGE, json.dumps(interaction.usage, indent=2)))
    _save_artifacts(artifacts)

    run = interaction.run
    log.record(
        actor=SYSTEM_ACTOR, verb="interaction.recorded", obj=interaction, run=run,
        after={"interaction_id": interaction.interaction_id, "status": status,
               "previous_interaction_id": interaction.previous_interaction_id},
    )
    for result in _function_results(interaction.request):
        log.record(
            actor=SYSTEM_ACTOR, verb="function_result.sent", obj=interaction, run=run,
            after={"call_id": result.get("call_id"), "name": result.get("name"),
                   "result": result.get("result"), "is_error": bool(result.get("is_error")),
                   "previous_interaction_id": interaction.previous_interaction_id,
                   "interaction_id": interaction.interaction_id},
        )
    _count_recorded(interaction, added, usage_before, recorded_before=recorded_before)
    _advance_run(run, interaction, delay=None if stable else delay,
                 continuation_token=response.continuation_token)


# The usage fields the run page sums (docs/interactions-api.md §4), in Run.usage.
USAGE_FIELDS = ("total_input_tokens", "total_output_tokens", "total_thought_tokens", "total_cached_tokens",
                "total_tool_use_tokens", "total_tokens")


def whole_tokens(value: object) -> int:
    """A token count read out of usage JSON (a number, or its text as PostgreSQL's ``->>``
    gives it), or 0 when it is not a whole number above 0."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _count_interaction(run: Run) -> None:
    """Count a new interaction of ``run`` in ``Run.interaction_count``. By F(), so it adds to
    what the row holds."""
    Run.objects.filter(pk=run.pk).update(interaction_count=F("interaction_count") + 1)


def _count_recorded(
    interaction: Interaction, added: int, usage_before: dict[str, Any] | None, *, recorded_before: bool,
) -> None:
    """Keep the run's counts once ``record`` stored ``added`` new steps of ``interaction`` and
    replaced its usage ``usage_before`` with ``interaction.usage``, in one UPDATE of the run: its
    ``step_count`` (by F()), ``usage`` (summed field by field) and, once the
    interaction is stable, ``total_tokens``. Runs under ``record``'s locks (run, then
    interaction), so the run's usage read there is current. The interaction's own
    ``step_count`` is saved with it by ``record``.

    Only an interaction recorded before (a background one, polled again) can gain steps once an
    interaction after it exists (a follow-up of ``requires_continuation``): then the later
    interactions' ``first_step`` moves by ``added``, so the timeline never overlaps."""
    run = interaction.run
    if added and recorded_before:
        Interaction.objects.filter(run_id=run.pk, sequence__gt=interaction.sequence).update(
            first_step=F("first_step") + added
        )
    changes: dict[str, Any] = {"step_count": F("step_count") + added} if added else {}
    before = usage_before if isinstance(usage_before, dict) else {}
    after = interaction.usage if isinstance(interaction.usage, dict) else {}
    if before != after:
        summed = dict.fromkeys(USAGE_FIELDS, 0) | (run.usage or {})
        for field in USAGE_FIELDS:
            summed[field] += whole_tokens(after.get(field)) - whole_tokens(before.get(field))
        changes["usage"] = run.usage = summed
    if interaction.is_stable and after:
        changes["total_tokens"] = F("total_tokens") + whole_tokens(after.get("total_tokens"))
    if changes:
        Run.objects.filter(pk=run.pk).update(**changes)


def _function_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    items = request.get("input")
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and i.get("type") == "function_result"]


def _advance_run(run: Run, interaction: Interaction, delay: float | None, continuation_token: str | None) -> None:
    status = interaction.status
    S = Interaction.Status
    # ``run`` is the row ``record`` locked: its status is current (``_set_run_status(current=True)``).
    if run.status == Run.Status.CANCELLED:
        return  # recorded for the timeline, but nothing more is asked of the API
    if status in (S.QUEUED, S.IN_PROGRESS):
        _set_run_status(run, Run.Status.RUNNING, current=True)
        _queue_poll(interaction, delay)
    elif status == S.REQUIRES_CONTINUATION:
        # The per-request decode limit was reached (docs/interactions-api.md §9): continue with the
        # token and no input, as the SDK's automatic continuation does.
        if not (continuation_token and interaction.interaction_id):
            _fail_run(interaction, "The interaction requires continuation but sent no continuation_token.")
        else:
            continue_with(interaction, continuation_token=continuation_token)
    elif status == S.REQUIRES_ACTION:
        if not interaction.function_calls():
            _fail_run(interaction, "The interaction requires action but holds no function call.")
            return
        _set_run_status(run, hooks.handle_requires_action(interaction), current=True)
    elif status == S.COMPLETED:
        _set_run_status(run, Run.Status.COMPLETED, current=True, output_text=interaction.output_text)
    elif status == S.CANCELLED:
        _set_run_status(run, Run.Status.CANCELLED, current=True)
    else:
        _fail_run(interaction, ended_message(interaction))


def _set_run_status(run: Run, status: str, *, current: bool = False, **also: Any) -> bool:
    """Move ``run`` to ``status`` with one conditional UPDATE (``WHERE status = <the status
    read>``), which also sets the fields in ``also`` (the output text of a completed run), and
    record the change when it won. A final run stays final. Returns whether this call changed
    the status: ``False`` when it already was ``status``, is final, or another transaction
    changed it first (a cancel racing a decision's follow-up, say).

    ``current``: ``run.status`` is known to be the row's (the caller's transaction locked the
    row, read it then, and changed its status only through here), so it is not read again."""
    if not current:
        run.refresh_from_db(fields=["status"])
    before = run.status
    if before == status or before in Run.FINAL_STATUSES:
        return False
    changes: dict[str, Any] = {"status": status, **also}
    if status in Run.FINAL_STATUSES:
        changes["finished_at"] = timezone.now()
        changes["duration_ms"] = int((changes["finished_at"] - run.created_at).total_seconds() * 1000)
    if not Run.objects.filter(pk=run.pk, status=before).update(**changes):
        run.refresh_from_db(fields=["status"])
        return False
    for field, value in changes.items():
        setattr(run, field, value)
    log.record(
        actor=SYSTEM_ACTOR, verb="run.status_changed", obj=run, run=run,
        before={"status": before}, after={"status": status},
    )
    return True


def _save_manifest(interaction: Interaction) -> None:
    manifest = gemini.request_manifest("POST", "/interactions", interaction.request)
    with transaction.atomic():
        _save_artifact(interaction, Artifact.Kind.REQUEST_MANIFEST, json.dumps(manifest, indent=2))
        if settings.CAPTURE_RAW_PAYLOADS:
            _save_artifact(interaction, Artifact.Kind.RAW_REQUEST, json.dumps(interaction.request))


def _artifact(interaction: Interaction, kind: str, content: str, media_type: str = "application/json") -> Artifact:
    return Artifact(interaction=interaction, kind=kind, content=content, media_type=media_type,
                    size_bytes=len(content.encode()))


def _save_artifacts(artifacts: list[Artifact]) -> None:
    """Store ``artifacts``, each replacing the interaction's artifact of its kind: one upsert
    (``INSERT … ON CONFLICT (interaction, kind) DO UPDATE``) for all of them."""
    if artifacts:
        Artifact.objects.bulk_create(
            artifacts, update_conflicts=True, unique_fields=["interaction", "kind"],
            update_fields=["content", "media_type", "size_bytes"],
        )


def _save_artifact(interaction: Interaction, kind: str, content: str, media_type: str = "application/json") -> None:
    _save_artifacts([_artifact(interaction, kind, content, media_type)])
