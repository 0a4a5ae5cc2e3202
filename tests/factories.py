"""Rows for view tests, written straight with the ORM (no API, no worker).

Plain functions with keyword arguments for what a test cares about and sensible defaults for
the rest.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.utils import timezone

from approvals import tools
from approvals.models import Approval, arguments_hash
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
    if sequence is None:
        sequence = run.interactions.count()
    now = timezone.now()
    return Interaction.objects.create(
        run=run,
        sequence=sequence,
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


def make_step(interaction: Interaction, data: dict[str, Any], *, index: int | None = None) -> Step:
    """A step from a dict as the API sends it (``type``, and ``id`` or ``call_id``)."""
    if index is None:
        index = interaction.steps.count()
    step_type = str(data.get("type") or "")
    call_id = data.get("id") if step_type.endswith("_call") else data.get("call_id")
    return Step.objects.create(
        interaction=interaction, index=index, type=step_type, call_id=call_id or "",
        name=data.get("name") or "", data=data,
    )


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

    run = Run.objects.create(model="gemini-3-flash-preview", input="x", created_by=created_by)
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
