"""Runs end to end: a real Celery worker, the real google-genai SDK over HTTP, the emulator."""

import json
import threading


from approvals import tools
from approvals.models import Approval
from audit.models import AuditEvent
from runs import execution, tasks
from runs.models import Artifact, Interaction, Run
from tests.conftest import make_user, wait_for

MODEL = "gemini-3-flash-preview"
ORDER_INPUT = "My order A-1001 arrived with a cracked headband. Refund please."


def settled(run: Run, *statuses: str) -> Run:
    statuses = statuses or Run.FINAL_STATUSES
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=statuses).exists())
    run.refresh_from_db()
    return run


def start_order_support() -> Run:
    return execution.create_run(
        model=MODEL, input=ORDER_INPUT, tools=tools.declarations(["lookup_order", "issue_refund"])
    )


def creates(api) -> list[dict]:
    return api.requests_for(method="POST", path_suffix="/interactions")


def test_a_plain_run_completes_with_steps_usage_and_a_redacted_manifest(worker, api):
    run = execution.create_run(model=MODEL, input="Why gate refunds?")

    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    interaction = run.interactions.get()
    assert [s.type for s in interaction.steps.all()] == ["thought", "model_output"]
    assert run.output_text and run.output_text == interaction.output_text
    assert interaction.usage["total_tokens"] > 0 and run.total_tokens == interaction.usage["total_tokens"]
    manifest = json.loads(interaction.artifacts.get(kind=Artifact.Kind.REQUEST_MANIFEST).content)
    assert manifest["body"] == {"model": MODEL, "input": "Why gate refunds?"}
    assert "test-key" not in json.dumps(manifest)
    assert not interaction.artifacts.filter(kind=Artifact.Kind.RAW_RESPONSE).exists()
    [request] = creates(api)
    assert request["body"] == {"model": MODEL, "input": "Why gate refunds?"}


def test_the_order_support_refund_waits_for_a_reviewer_then_completes(worker, api, alice):
    run = start_order_support()

    run = settled(run, Run.Status.WAITING_FOR_APPROVAL)
    lookup = Approval.objects.get(run=run, function_name="lookup_order")
    refund = Approval.objects.get(run=run, function_name="issue_refund")
    assert lookup.status == Approval.Status.AUTO and lookup.result["total"] == 249.0
    assert refund.status == Approval.Status.PENDING and refund.arguments["amount"] == 249.0
    assert "$200" in refund.policy

    assert refund.approve(by=alice, shown_hash=refund.arguments_hash)
    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    assert "249" in run.output_text
    refund.refresh_from_db()
    assert refund.result["status"] == "issued"
    follow_up = creates(api)[-1]["body"]
    asking = run.interactions.get(sequence=1)
    assert follow_up["previous_interaction_id"] == asking.interaction_id
    assert follow_up["input"] == [{
        "type": "function_result", "call_id": refund.call_id, "name": "issue_refund", "result": refund.result,
    }]
    assert len(creates(api)) == 3
    verbs = list(AuditEvent.objects.filter(run_id=run.pk).values_list("verb", flat=True))
    assert "approval.approved" in verbs and "function_result.sent" in verbs


def test_a_rejected_refund_sends_the_reason_as_an_error_result_and_the_run_goes_on(worker, api, alice):
    run = settled(start_order_support(), Run.Status.WAITING_FOR_APPROVAL)
    refund = Approval.objects.get(run=run, function_name="issue_refund")

    assert refund.reject(by=alice, shown_hash=refund.arguments_hash, reason="Damage not shown in photos")
    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    [result] = creates(api)[-1]["body"]["input"]
    assert result["call_id"] == refund.call_id
    assert result["is_error"] is True
    assert "Damage not shown in photos" in json.dumps(result["result"])
    assert "Damage not shown in photos" in run.output_text


def test_the_start_task_run_twice_creates_one_remote_interaction(worker, api):
    run = execution.create_run(model=MODEL, input="Only once, please.")
    first = run.interactions.get()

    # A redelivery racing the original delivery, and a third call once it is done. Whichever
    # loses the claim while the winner's request is under way is told to look again later.
    tasks.send_interaction.delay(first.pk)
    try:
        execution.send(first.pk)
    except execution.StillSending:
        pass
    settled(run)
    execution.send(first.pk)

    assert len(creates(api)) == 1
    assert Interaction.objects.filter(run=run).count() == 1


def test_two_reviewers_approving_at_once_send_one_function_result(worker, api, alice):
    dave = make_user("dave", "reviewers")
    run = settled(start_order_support(), Run.Status.WAITING_FOR_APPROVAL)
    refund = Approval.objects.get(run=run, function_name="issue_refund")
    barrier = threading.Barrier(3)
    outcomes = []

    def decide(user):
        from django.db import connection

        barrier.wait()
        try:
            outcomes.append(Approval.objects.get(pk=refund.pk).approve(by=user, shown_hash=refund.arguments_hash))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(u,)) for u in (alice, dave, alice)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run = settled(run)

    assert sorted(outcomes) == [False, False, True]
    results = [i for r in creates(api) for i in (r["body"].get("input") or []) if isinstance(i, dict)
               and i.get("call_id") == refund.call_id]
    assert len(results) == 1
    assert AuditEvent.objects.filter(verb="approval.approved", object_id=str(refund.pk)).count() == 1


def test_a_background_agent_run_is_polled_until_it_completes(worker, api):
    run = execution.create_run(
        agent="deep-research-pro-preview-12-2025", input="Research refund gating.", background=True
    )

    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    interaction = run.interactions.get()
    assert interaction.poll_count >= 2
    types = [s.type for s in interaction.steps.all()]
    assert {"code_execution_call", "code_execution_result", "google_search_call", "model_output"} <= set(types)
    gets = api.requests_for(method="GET")
    assert len(gets) == interaction.poll_count


def test_a_failed_interaction_fails_the_run_with_the_api_error(worker, api):
    run = settled(execution.create_run(model=MODEL, input="Summarise. [fault:failed]"))

    assert run.status == Run.Status.FAILED
    assert "failed" in run.error
    assert run.interactions.get().errors


def test_a_transient_503_is_retried_and_the_run_completes(worker, api):
    run = settled(execution.create_run(model=MODEL, input="Flaky upstream [fault:503x2]"))

    assert run.status == Run.Status.COMPLETED, run.error
    assert len(creates(api)) == 3


def test_a_malformed_response_fails_the_run_and_keeps_the_body(worker, api):
    run = settled(execution.create_run(model=MODEL, input="Break it [fault:garbage]"))

    assert run.status == Run.Status.FAILED
    assert "not JSON" in run.error
    interaction = run.interactions.get()
    assert interaction.dispatch == Interaction.Dispatch.ERROR
    assert interaction.artifacts.get(kind=Artifact.Kind.RAW_RESPONSE).content


def test_an_unknown_step_type_survives_the_round_trip(worker, api):
    run = settled(execution.create_run(model=MODEL, input="Show me [fault:unknown_step]"))

    step = run.interactions.get().steps.get(type="hologram_projection")
    assert step.data["frames"] == 3
    assert not step.is_known
