"""Rows for view tests, written straight with the ORM (no API, no worker).

Plain functions with keyword arguments for what a test cares about and sensible defaults for
the rest. They keep a run's counts as runs.execution does when it records (``Run.interaction_count``,
``step_count``, ``usage``, ``total_tokens``; ``Interaction.step_count``, ``first_step``): the run
page reads them and never counts.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.db.models import Count, F
from django.utils import timezone

from approvals import tools
from approvals.models import Approval, arguments_hash
from runs.execution import USAGE_FIELDS, whole_tokens
from runs.models import Artifact, Interaction, Run, Step

_ids = itertools.count(1)


def make_run(
    *,
    status: str = Run.Status.COMPLETED,
    model: str = "gemini-2.5-flash",
    agent: str = "",
    input: Any = "What is the status of order A-1001?",
    output_text: str = "",
    error: str = "",
    total_tokens: int = 0,
    created_by=None,
    created_at=None,
    **fields: Any,
) -> Run:
    """A run without interactions (its counts at 0); ``total_tokens`` is what the interactions
    added later (``make_interaction``) add to."""
    created_at = created_at or timezone.now()
    finished = status in Run.FINAL_STATUSES
    finished_at = fields.pop("finished_at", created_at + timedelta(seconds=3) if finished else None)
    return Run.objects.create(
        status=status,
        model="" if agent else model,
        agent=agent,
        input=input,
        # As runs.execution.create_run records them: the full text for search, and its preview.
        input_text=fields.pop("input_text", input if isinstance(input, str) else str(input)),
        input_preview=input if isinstance(input, str) else str(input)[:300],
        output_text=output_text,
        error=error,
        total_tokens=total_tokens,
        created_by=created_by,
        created_at=created_at,
        finished_at=finished_at,
        duration_ms=fields.pop(
            "duration_ms", int((finished_at - created_at).total_seconds() * 1000) if finished_at else None
        ),
        **fields,
    )


def make_interaction(
    run: Run,
    *,
    sequence: int | None = None,
    status: str = Interaction.Status.COMPLETED,
    request: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    **fields: Any,
) -> Interaction:
    """The next interaction of ``run``, after its steps so far (``first_step``), counted in the
    run with its ``usage``: summed into ``Run.usage`` field by field, and into ``total_tokens``
    once stable, as runs.execution records it."""
    run.refresh_from_db(fields=["interaction_count", "step_count", "usage", "total_tokens"])
    if sequence is None:
        sequence = run.interaction_count
    now = timezone.now()
    interaction = Interaction.objects.create(
        run=run,
        sequence=sequence,
        first_step=run.step_count,
        interaction_id=fields.pop("interaction_id", f"v1_test{next(_ids):06d}"),
        request=request if request is not None else {"model": run.target, "input": run.input},
        dispatch=fields.pop("dispatch", Interaction.Dispatch.SENT),
        status=status,
        usage=usage,
        sent_at=fields.pop("sent_at", now),
        finished_at=fields.pop("finished_at", now + timedelta(milliseconds=850)),
        sdk_version=fields.pop("sdk_version", "3.3.0"),
        **fields,
    )
    run.interaction_count += 1
    if isinstance(usage, dict) and usage:
        run.usage = dict.fromkeys(USAGE_FIELDS, 0) | run.usage
        for field in USAGE_FIELDS:
            run.usage[field] += whole_tokens(usage.get(field))
        if interaction.is_stable:
            run.total_tokens += whole_tokens(usage.get("total_tokens"))
    Run.objects.filter(pk=run.pk).update(
        interaction_count=run.interaction_count, usage=run.usage, total_tokens=run.total_tokens
    )
    return interaction


def _count_steps(interaction: Interaction, added: int) -> None:
    """Count ``added`` new steps of ``interaction`` in it and its run, and move the interactions
    after it (as runs.execution does for an interaction polled again), in the rows and in the
    instances at hand."""
    Interaction.objects.filter(pk=interaction.pk).update(step_count=F("step_count") + added)
    Interaction.objects.filter(run_id=interaction.run_id, sequence__gt=interaction.sequence).update(
        first_step=F("first_step") + added
    )
    Run.objects.filter(pk=interaction.run_id).update(step_count=F("step_count") + added)
    interaction.refresh_from_db(fields=["step_count", "first_step"])
    interaction.run.refresh_from_db(fields=["step_count"])


def make_step(interaction: Interaction, data: dict[str, Any], *, index: int | None = None) -> Step:
    """A step from a dict as the API sends it (``type``, and ``id`` or ``call_id``), after the
    interaction's steps so far unless ``index`` says where."""
    if index is None:
        interaction.refresh_from_db(fields=["step_count"])
        index = interaction.step_count
    step = Step.from_api(data, interaction=interaction, index=index)
    step.save()
    _count_steps(interaction, 1)
    return step


def make_steps(interaction: Interaction, steps: list[dict[str, Any]]) -> list[Step]:
    """Many steps at once after the interaction's steps so far, stored as the recorder stores
    them (one INSERT) and counted."""
    interaction.refresh_from_db(fields=["step_count"])
    known = interaction.step_count
    rows = Step.objects.bulk_create(
        Step.from_api(data, interaction=interaction, index=known + i) for i, data in enumerate(steps)
    )
    if rows:
        _count_steps(interaction, len(rows))
    return rows


def keep_counts(run: Run) -> Run:
    """Recount ``run``'s kept counts from its rows (its interactions in ``sequence`` order, their
    steps and usage), for rows written straight with the ORM or in bulk; ``total_tokens`` is left
    as it is. Returns ``run``, with the counts."""
    position, updated = 0, []
    usage = dict.fromkeys(USAGE_FIELDS, 0)
    rows = run.interactions.order_by("sequence").annotate(counted=Count("steps"))
    for pk, counted, used in rows.values_list("pk", "counted", "usage"):
        updated.append(Interaction(pk=pk, step_count=counted, first_step=position))
        position += counted
        for field in USAGE_FIELDS:
            usage[field] += whole_tokens(used.get(field)) if isinstance(used, dict) else 0
    Interaction.objects.bulk_update(updated, ["step_count", "first_step"], batch_size=1000)
    Run.objects.filter(pk=run.pk).update(interaction_count=len(updated), step_count=position, usage=usage)
    run.interaction_count, run.step_count, run.usage = len(updated), position, usage
    return run


def text_output(text: str) -> dict[str, Any]:
    return {"type": "model_output", "content": [{"type": "text", "text": text}]}


def function_call(name: str = "issue_refund", arguments: dict[str, Any] | None = None, call_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": call_id or f"call_{next(_ids):04d}",
        "name": name,
        "arguments": arguments if arguments is not None else {"order_id": "A-1003", "amount": 1450.0, "reason": "Damaged"},
    }


def make_approval(
    interaction: Interaction,
    step: Step,
    *,
    status: str = Approval.Status.PENDING,
    policy: str = "Refunds above $200 need a reviewer ($1,450.00).",
    requires_manual_result: bool = False,
    **fields: Any,
) -> Approval:
    arguments = step.data.get("arguments") or {}
    fields.setdefault("allowed_decisions", sorted(tools.allowed_decisions(step.name)))
    return Approval.objects.create(
        run=interaction.run,
        interaction=interaction,
        call_id=step.call_id,
        function_name=step.name,
        arguments=arguments,
        arguments_hash=arguments_hash(arguments),
        status=status,
        policy=policy,
        requires_manual_result=requires_manual_result,
        **fields,
    )


def make_pending_approval(
    *, name: str = "issue_refund", arguments: dict[str, Any] | None = None, requires_manual_result: bool = False
) -> Approval:
    """A run waiting for approval of one function call, as the worker leaves it."""
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL, input="Refund order A-1003, it arrived broken.")
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    step = make_step(interaction, function_call(name, arguments))
    return make_approval(interaction, step, requires_manual_result=requires_manual_result)


def make_artifact(interaction: Interaction, *, kind: str = Artifact.Kind.USAGE, content: str = '{"total_tokens": 10}',
                  media_type: str = "application/json") -> Artifact:
    return Artifact.objects.create(interaction=interaction, kind=kind, content=content, media_type=media_type)


def requested_call(function_name: str, arguments: dict[str, Any], *, created_by=None, call_id: str = "call_1") -> Approval:
    """A run whose first interaction was recorded as requiring one function call, settled by the
    real policy (``settle_function_calls``): the approval carries what policy requires. No worker:
    tasks queued on commit do not run inside a test's transaction."""
    import json

    from runs import execution, gemini

    run = Run.objects.create(model="gemini-3-flash-preview", input="x", created_by=created_by,
                             interaction_count=1)
    interaction = Interaction.objects.create(run=run, sequence=0, request={"model": run.model, "input": "x"})
    payload = {"id": f"v1_test{run.pk}", "status": "requires_action",
               "steps": [{"type": "function_call", "id": call_id, "name": function_name, "arguments": arguments}]}
    execution.record(interaction, gemini.parse(json.dumps(payload)))
    return Approval.objects.get(interaction=interaction)


def parallel_refunds_input(orders: list[str], *, first_total: float = 201) -> list[dict[str, Any]]:
    """A first input that makes the emulated model ask for one refund per order at once, each
    at ``first_total`` + its position (USD): the customer's message with its order lookups already
    answered, as a stateless history the API accepts without ``previous_interaction_id``, so a
    run costs one ``create`` before it waits for reviewers."""
    return [
        {"type": "user_input",
         "content": [{"type": "text", "text": f"Orders {', '.join(orders)} arrived broken, refund please."}]},
        *({"type": "function_call", "id": f"lookup_{order}", "name": "lookup_order", "arguments": {"order_id": order}}
          for order in orders),
        *({"type": "function_result", "call_id": f"lookup_{order}", "name": "lookup_order",
           "result": {"order_id": order, "currency": "USD", "total": first_total + i, "status": "delivered"}}
          for i, order in enumerate(orders)),
    ]
