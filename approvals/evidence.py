"""What a run's evidence bundle holds besides its audit events: the run, each interaction with its
steps and artifacts, and every function call with how it was settled. Gathered here, the layer
that knows both runs and approvals; the bundle's format, its audit events and its signature are
``audit.bundles``'."""

from __future__ import annotations

from approvals.models import Approval
from audit import bundles, log
from runs.models import Run


def run_files(run: Run) -> dict[str, bytes]:
    """The run's files for its bundle: ``run.json``, ``interactions/<sequence>.json`` (with the
    steps, in order), ``artifacts/<sequence>-<kind>.json|txt`` and ``approvals.json`` (each
    call, its policy, every reviewer's decision). Four queries."""
    run_data = {
        "id": run.pk, "model": run.model, "agent": run.agent, "input": run.input, "tools": run.tools,
        "background": run.background, "system_instruction": run.system_instruction,
        "generation_config": run.generation_config, "status": run.status, "error": run.error,
        "output_text": run.output_text, "total_tokens": run.total_tokens,
        "created_by": run.created_by.get_username() if run.created_by else None,
        "created_at": run.created_at, "finished_at": run.finished_at,
    }
    files: dict[str, bytes] = {"run.json": bundles.json_bytes(run_data)}
    for interaction in run.interactions.order_by("sequence").prefetch_related("steps", "artifacts"):
        files[f"interactions/{interaction.sequence}.json"] = bundles.json_bytes({
            "sequence": interaction.sequence, "interaction_id": interaction.interaction_id,
            "previous_interaction_id": interaction.previous_interaction_id, "request": interaction.request,
            "status": interaction.status, "dispatch": interaction.dispatch, "usage": interaction.usage,
            "errors": interaction.errors, "error": interaction.error, "output_text": interaction.output_text,
            "poll_count": interaction.poll_count, "sdk_version": interaction.sdk_version,
            "sent_at": interaction.sent_at, "finished_at": interaction.finished_at,
            "steps": [step.data for step in interaction.steps.all()],
        })
        for artifact in interaction.artifacts.all():
            extension = "json" if artifact.media_type == "application/json" else "txt"
            files[f"artifacts/{interaction.sequence}-{artifact.kind}.{extension}"] = artifact.content.encode()
    approvals = [{
        "call_id": a.call_id, "function_name": a.function_name, "arguments": a.arguments,
        "edited_arguments": a.edited_arguments, "status": a.status, "policy": a.policy,
        "approvals_required": a.approvals_required, "approver_group": a.approver_group,
        "decided_by": a.decided_by.get_username() if a.decided_by else None, "decided_at": a.decided_at,
        "reason": a.reason, "result": a.result, "result_is_error": a.result_is_error,
        "decisions": [{"user": d.user.get_username(), "verdict": d.verdict, "reason": d.reason,
                       "arguments": d.arguments, "at": d.created_at} for d in a.decisions.all()],
    } for a in Approval.objects.filter(run=run).select_related("decided_by").prefetch_related("decisions__user")]
    files["approvals.json"] = bundles.json_bytes(approvals)
    return files


def write_bundle(run: Run, destination) -> dict[str, str]:
    """Seal what is waiting, then write ``run``'s evidence bundle into ``destination`` (a path or a
    binary file object), as ``audit.bundles.write`` does. Returns its manifest (file name →
    SHA-256 hex). Raises ``SigningKeyError`` when the key cannot be read."""
    log.seal()
    return bundles.write(run_id=run.pk, files=run_files(run), destination=destination)
