"""The emulator keeps its interactions in a state file, so a restart changes nothing a client can
see: follow-ups chain onto interactions created before it, answered calls stay answered, ids do
not repeat, and a background job goes on from the polls it had. Driven by the real google-genai
SDK; no Django and no database (except the one test that starts ``run_emulator``).
"""

import os
import re
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from google.genai import _interactions as api_errors

from runs.emulator import EmulatorServer, StoreInUse
from tests.emulator.conftest import make_client
from tests.emulator.test_scenarios import (AGENT, LOOKED_UP, MODEL, ORDER_TOOLS, answer_calls,
                                           ask_support)

ISSUED = {"refund_id": "R-77", "status": "issued", "amount": 249.0}


@pytest.fixture
def state(tmp_path, monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "emulator" / "interactions.sqlite3"


def restarted(server: EmulatorServer) -> EmulatorServer:
    """``server`` stopped, and a new server started on the same port and state file."""
    server.stop()
    return EmulatorServer(port=server.port, background_polls=server.background_polls,
                          state_path=server.state_path).start()


def test_a_function_result_for_an_interaction_made_before_a_restart_continues_it(state):
    server = EmulatorServer(port=0, state_path=state).start()
    client = make_client(server.url)
    turn1 = ask_support(client, "My kettle from order A-1001 arrived damaged.")
    turn2 = answer_calls(client, turn1, lambda call: LOOKED_UP, tools=ORDER_TOOLS)
    assert turn2.status == "requires_action"

    server = restarted(server)
    try:
        client = make_client(server.url)
        turn3 = answer_calls(client, turn2, lambda call: ISSUED, tools=ORDER_TOOLS)
    finally:
        server.stop()

    assert turn3.status == "completed"
    assert turn3.previous_interaction_id == turn2.id
    # The reply quotes the refund found along the chain, which spans the restart.
    assert "refund of $249.00 for order A-1001" in turn3.output_text


def test_a_completed_interaction_made_before_a_restart_can_be_continued_and_read(state):
    server = EmulatorServer(port=0, state_path=state).start()
    client = make_client(server.url)
    first = client.interactions.create(model=MODEL, input="Why gate refunds?")

    server = restarted(server)
    try:
        client = make_client(server.url)
        again = client.interactions.get(first.id)
        second = client.interactions.create(
            model=MODEL, input="And why at $200?", previous_interaction_id=first.id)
    finally:
        server.stop()

    assert again.status == "completed" and again.output_text == first.output_text
    assert second.status == "completed"
    assert second.previous_interaction_id == first.id
    # A chained turn re-reads the previous turn, so its input tokens count the stored one.
    assert second.usage.total_input_tokens > first.usage.total_input_tokens


def test_calls_answered_before_a_restart_stay_answered(state):
    server = EmulatorServer(port=0, state_path=state).start()
    client = make_client(server.url)
    turn1 = ask_support(client, "Order A-1001 never arrived")
    answer_calls(client, turn1, lambda call: LOOKED_UP)

    server = restarted(server)
    try:
        with pytest.raises(api_errors.BadRequestError) as raised:
            client = make_client(server.url)
            answer_calls(client, turn1, lambda call: LOOKED_UP)
    finally:
        server.stop()

    assert "already received" in raised.value.body["error"]["message"]


def test_ids_never_repeat_across_restarts_on_one_state_file(state):
    server = EmulatorServer(port=0, state_path=state).start()
    client = make_client(server.url)
    before = ask_support(client, "A-1001 is late")

    server = restarted(server)
    try:
        client = make_client(server.url)
        after = ask_support(client, "A-1001 is late")
        ids = server.interaction_ids
    finally:
        server.stop()

    assert before.id == "v1_emu0000000001" and after.id == "v1_emu0000000002"
    assert before.steps[-1].id != after.steps[-1].id
    assert ids == [before.id, after.id]


def test_a_background_job_goes_on_from_the_polls_it_had_before_a_restart(state):
    server = EmulatorServer(port=0, background_polls=3, state_path=state).start()
    client = make_client(server.url)
    started = client.interactions.create(agent=AGENT, input="Tide tables", background=True)
    first = client.interactions.get(started.id).status

    server = restarted(server)
    try:
        client = make_client(server.url)
        later = [client.interactions.get(started.id).status for _ in range(2)]
    finally:
        server.stop()

    assert [first, *later] == ["in_progress", "in_progress", "completed"]


def test_a_counted_fault_is_not_counted_afresh_after_a_restart(state):
    server = EmulatorServer(port=0, state_path=state).start()
    client = make_client(server.url)
    with pytest.raises(api_errors.InternalServerError):
        client.interactions.create(model=MODEL, input="Flaky [fault:503x1]")

    server = restarted(server)
    try:
        client = make_client(server.url)
        retried = client.interactions.create(model=MODEL, input="Flaky [fault:503x1]")
    finally:
        server.stop()

    assert retried.status == "completed"


def test_every_interaction_created_at_once_is_kept(state):
    server = EmulatorServer(port=0, state_path=state).start()
    created, errors = [], []

    def create(number):
        try:
            client = make_client(server.url)
            created.append(client.interactions.create(model=MODEL, input=f"Question {number}").id)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server = restarted(server)
    try:
        kept = server.interaction_ids
        inputs = {server.interaction(interaction_id)["input"] for interaction_id in kept}
    finally:
        server.stop()

    assert errors == []
    assert sorted(kept) == sorted(created) and len(kept) == 20
    assert inputs == {f"Question {n}" for n in range(20)}


def test_reset_forgets_the_stored_interactions_but_not_the_id_counter(state):
    server = EmulatorServer(port=0, state_path=state).start()
    client = make_client(server.url)
    client.interactions.create(model=MODEL, input="Forget me")
    server.reset()

    server = restarted(server)
    try:
        ids_after_restart = server.interaction_ids
        client = make_client(server.url)
        fresh = client.interactions.create(model=MODEL, input="New")
    finally:
        server.stop()

    assert ids_after_restart == []
    assert fresh.id == "v1_emu0000000002"


def test_a_state_file_in_use_by_another_emulator_is_refused(state):
    with EmulatorServer(port=0, state_path=state):
        with pytest.raises(StoreInUse):
            EmulatorServer(port=0, state_path=state).start()


def test_without_a_state_file_a_restart_forgets_everything(tmp_path):
    server = EmulatorServer(port=0).start()
    client = make_client(server.url)
    first = client.interactions.create(model=MODEL, input="Hello")

    server = restarted(server)
    try:
        client = make_client(server.url)
        with pytest.raises(api_errors.NotFoundError):
            client.interactions.get(first.id)
    finally:
        server.stop()

    assert list(tmp_path.iterdir()) == []


def start_command(state: Path) -> tuple[subprocess.Popen, str]:
    """``manage.py run_emulator`` on a free port with ``state``: the process and its URL."""
    project = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SECRET_KEY": "emulator-test-only", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_emulator", "--port", "0", "--id-tag=", "--state", str(state)],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([process.stdout], [], [], 30)
    assert ready, "run_emulator printed nothing within 30 s"
    line = process.stdout.readline().strip()
    match = re.fullmatch(r"Interactions API emulator listening on (http://127\.0\.0\.1:\d+)", line)
    assert match, line + process.stderr.read()
    assert process.stdout.readline().strip() == f"Interactions kept in {state}"
    return process, match.group(1)


def test_a_killed_run_emulator_process_keeps_every_interaction_it_answered(state):
    process, url = start_command(state)
    try:
        client = make_client(url)
        turn1 = ask_support(client, "Order A-1001 arrived damaged")
        turn2 = answer_calls(client, turn1, lambda call: LOOKED_UP)
        # SIGKILL: no handler runs, nothing is flushed on the way out.
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        process, url = start_command(state)
        client = make_client(url)
        turn3 = answer_calls(client, turn2, lambda call: ISSUED)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)

    assert turn2.status == "requires_action"
    assert turn3.status == "completed" and "$249.00" in turn3.output_text
    assert turn3.id == "v1_emu0000000003"
