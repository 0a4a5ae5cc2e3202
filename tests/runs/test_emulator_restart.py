"""A restart of the emulator changes nothing for Handoff: a run waiting for approval, or a
completed run a person continues, goes on against the restarted emulator, which finds the
interactions it created before (a real worker, the real SDK over HTTP)."""

import os

import pytest

from approvals import tools
from approvals.models import Approval
from runs import execution, gemini
from runs.emulator import EmulatorServer
from runs.models import Run
from tests.conftest import wait_for

MODEL = "gemini-3-flash-preview"


class Restartable:
    """An emulator with a state file that a test can restart on the same port."""

    def __init__(self, state_path):
        self.server = EmulatorServer(port=0, background_polls=2, state_path=state_path).start()

    def restart(self) -> EmulatorServer:
        self.server.stop()
        self.server = EmulatorServer(
            port=self.server.port, background_polls=2, state_path=self.server.state_path).start()
        return self.server


@pytest.fixture
def restartable(worker, tmp_path):
    """The SDK pointed at an emulator of its own (the session's emulator keeps serving the other
    tests), as the run command points it at the one it starts."""
    emulator = Restartable(tmp_path / "emulator" / "interactions.sqlite3")
    session_url = os.environ["GOOGLE_GEMINI_BASE_URL"]
    os.environ["GOOGLE_GEMINI_BASE_URL"] = emulator.server.url
    gemini.client.cache_clear()
    yield emulator
    emulator.server.stop()
    os.environ["GOOGLE_GEMINI_BASE_URL"] = session_url
    gemini.client.cache_clear()


def settled(run: Run, *statuses: str) -> Run:
    statuses = statuses or Run.FINAL_STATUSES
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=statuses).exists())
    run.refresh_from_db()
    return run


def test_a_refund_approved_after_an_emulator_restart_completes_the_run(restartable, alice):
    run = execution.create_run(
        model=MODEL, input="My order A-1001 arrived with a cracked headband. Refund please.",
        tools=tools.declarations(["lookup_order", "issue_refund"]),
    )
    run = settled(run, Run.Status.WAITING_FOR_APPROVAL)
    refund = Approval.objects.get(run=run, function_name="issue_refund")

    server = restartable.restart()
    assert refund.approve(by=alice, shown_hash=refund.arguments_hash)
    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    assert "refund of $249.00 for order A-1001" in run.output_text
    [follow_up] = server.requests_for(method="POST", path_suffix="/interactions")
    assert follow_up["body"]["previous_interaction_id"] == run.interactions.get(sequence=1).interaction_id
    assert [item["call_id"] for item in follow_up["body"]["input"]] == [refund.call_id]


def test_a_completed_run_continued_after_an_emulator_restart_completes_again(restartable, alice):
    run = settled(execution.create_run(model=MODEL, input="Why gate refunds?"))
    assert run.status == Run.Status.COMPLETED, run.error

    restartable.restart()
    execution.continue_run(run.pk, text="And why at $200?", by=alice)
    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    first, second = run.interactions.order_by("sequence")
    assert second.previous_interaction_id == first.interaction_id
    assert "And why at $200?" in run.output_text
