"""A worker process killed (SIGKILL) between a decision and the API call: afterwards the API holds
exactly one ``function_result`` for the call, never two, and none is lost.

Everything that publishes tasks here runs in a process of its own (``start_run``, ``decide``, the
``celery -A dashboard worker`` processes), against this session's PostgreSQL test database and a
Redis database of its own: a killed worker's task is handed out again only once Redis's
``visibility_timeout`` has passed, and that timeout is global to a Redis database, so shortening
it on the suite's shared broker database would redeliver other workers' tasks too. The test
process only reads the database and the emulator's request log.

Timeouts are short so each scenario takes seconds: a request may take
``HANDOFF_GEMINI_TIMEOUT_MS`` (5 s), a claimed send is given up after that plus
``HANDOFF_SENDING_LEASE_MARGIN`` (1 s), and an unacknowledged task returns after
``HANDOFF_BROKER_VISIBILITY_TIMEOUT`` (3 s).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from approvals.models import Approval
from audit.models import AuditEvent
from runs.models import Interaction, Run
from tests.conftest import make_user, purge_task_queue, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A Redis database no other test uses (see the module docstring).
BROKER_DB = 13
VISIBILITY_TIMEOUT = 3.0
ORDER = "Order A-1001 arrived broken, refund please."


def database_url() -> str:
    """This session's test database (pytest-django renamed it in settings when it created it)."""
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def broker_url() -> str:
    url = urlsplit(settings.CELERY_BROKER_URL)
    assert url.scheme in ("redis", "rediss"), "these tests need the Redis broker (make test sets it)"
    return urlunsplit(url._replace(path=f"/{BROKER_DB}"))


@pytest.fixture
def handoff(tmp_path, api, transactional_db):
    """Runs Handoff's processes: ``worker()`` starts a worker process, ``manage(...)`` a
    management command; every process gets the test database, this module's broker, a queue of
    its own and the short timeouts. Workers still alive at the end are killed."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(), CELERY_BROKER_URL=broker_url(),
        HANDOFF_TASK_QUEUE=f"handoff-killed-{uuid.uuid4().hex[:8]}", HANDOFF_CONN_MAX_AGE="0",
        HANDOFF_GEMINI_TIMEOUT_MS="5000", HANDOFF_SENDING_LEASE_MARGIN="1", HANDOFF_EXECUTION_LEASE="4",
        HANDOFF_BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        # The periodic sweeps, for workers started with beat: every second, for work stranded 2 s.
        HANDOFF_DEADLINE_CHECK_SECONDS="1", HANDOFF_RECOVERY_CHECK_SECONDS="1", HANDOFF_STRANDED_AFTER="2",
    )
    workers: list[WorkerProcess] = []

    class Handoff:
        def worker(self, *, beat: bool = False) -> WorkerProcess:
            """A worker process; with ``beat``, running the periodic sweeps too (every second)."""
            worker = WorkerProcess(env, tmp_path / f"worker{len(workers)}.log",
                                   beat_schedule=tmp_path / f"beat{len(workers)}" if beat else None)
            workers.append(worker)
            return worker

        def manage(self, *args: str) -> list[str]:
            done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout.splitlines()

    yield Handoff()
    for worker in workers:
        worker.kill()
    # What is left of the queue (tasks of a killed worker, the queue's bindings) goes with it.
    purge_task_queue(env["CELERY_BROKER_URL"], env["HANDOFF_TASK_QUEUE"])


class WorkerProcess:
    """``celery -A dashboard worker`` (prefork, 2 processes) in a session of its own, so that
    ``kill()`` can SIGKILL the main process and its pool children together, as a machine loss
    or an OOM kill of the whole container would."""

    CONCURRENCY = 2  # pool processes: at most this many tasks are cut off by one kill

    def __init__(self, env: dict[str, str], log: Path, beat_schedule: Path | None = None):
        self.log = log
        beat = ["-B", "-s", str(beat_schedule)] if beat_schedule else []
        self.process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "dashboard", "worker", f"--concurrency={self.CONCURRENCY}", "--loglevel=INFO",
             "-Q", env["HANDOFF_TASK_QUEUE"], "-n", f"killed-{uuid.uuid4().hex[:8]}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", *beat],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(lambda: self.process.poll() is not None or " ready." in log.read_text(), timeout=30)
        assert self.process.poll() is None, log.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def function_results_for(api, call_id: str) -> list[dict]:
    """The creates the API received that carry a ``function_result`` for ``call_id``."""
    return [
        request for request in api.requests_for(method="POST", path_suffix="/interactions")
        if any(isinstance(item, dict) and item.get("type") == "function_result" and item.get("call_id") == call_id
               for item in (request["body"] or {}).get("input") or [])
    ]


def waiting_refund(handoff) -> Approval:
    run_pk = int(handoff.manage("start_run", "--model", "gemini-3-flash-preview", "--tool", "lookup_order",
                                "--tool", "issue_refund", "--input", ORDER)[-1])
    wait_for(lambda: Run.objects.filter(pk=run_pk, status=Run.Status.WAITING_FOR_APPROVAL).exists(), timeout=30)
    return Approval.objects.get(run_id=run_pk, function_name="issue_refund")


def test_a_worker_killed_mid_send_leaves_one_result_and_an_unknown_outcome_never_resent(handoff, api):
    make_user("alice", "reviewers")
    first = handoff.worker()
    refund = waiting_refund(handoff)
    release = threading.Event()
    api.hold_next_create(release)

    handoff.manage("decide", str(refund.pk), "--approve", "--as", "alice")
    # The follow-up reached the API (logged on arrival) and is held there: kill its worker now.
    wait_for(lambda: function_results_for(api, refund.call_id), timeout=30)
    follow_up = Interaction.objects.get(run_id=refund.run_id, sequence=2)
    assert follow_up.dispatch == Interaction.Dispatch.SENDING
    first.kill()
    delivered_at = time.monotonic()
    # The API goes on and creates the interaction although nobody reads its answer.
    release.set()
    wait_for(lambda: len(api.interaction_ids) == 3)
    # Start the next worker once the dead one's task is due again, so its start-up sweep of
    # Redis's unacknowledged tasks hands it over.
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - delivered_at)))
    handoff.worker()

    # The redelivered send finds the claim and, once the claim's lease has run out, records the
    # outcome as unknown. Handoff cannot tell whether the API received the request (here it did),
    # so it says so and does not resend: a resend could answer the call twice.
    wait_for(lambda: Run.objects.filter(pk=refund.run_id, status__in=Run.FINAL_STATUSES).exists(), timeout=30)
    follow_up.refresh_from_db()
    run = Run.objects.get(pk=refund.run_id)
    assert follow_up.dispatch == Interaction.Dispatch.UNKNOWN
    assert "does not send it again" in follow_up.error
    assert run.status == Run.Status.FAILED and run.error == follow_up.error
    assert AuditEvent.objects.filter(verb="interaction.failed", object_id=str(follow_up.pk)).exists()
    time.sleep(1.0)  # a second send, if there were one, would be on its way by now
    assert len(function_results_for(api, refund.call_id)) == 1
    assert len(api.requests_for(method="POST", path_suffix="/interactions")) == 3
    refund.refresh_from_db()
    assert refund.status == Approval.Status.APPROVED and refund.settled_at is not None
    assert AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).count() == 1


def test_a_decision_taken_while_no_worker_runs_is_answered_once_a_worker_starts(handoff, api):
    make_user("alice", "reviewers")
    first = handoff.worker()
    refund = waiting_refund(handoff)
    first.kill()

    handoff.manage("decide", str(refund.pk), "--approve", "--as", "alice")
    time.sleep(1.0)
    refund.refresh_from_db()
    assert refund.execution_started_at is None and function_results_for(api, refund.call_id) == []
    handoff.worker()

    wait_for(lambda: Run.objects.filter(pk=refund.run_id, status__in=Run.FINAL_STATUSES).exists(), timeout=30)
    run = Run.objects.get(pk=refund.run_id)
    assert run.status == Run.Status.COMPLETED, run.error
    [request] = function_results_for(api, refund.call_id)
    refund.refresh_from_db()
    assert request["body"]["input"] == [refund.function_result()]
    assert refund.result["status"] == "issued"


def lock_waiters(statement: str) -> int:
    """How many backends of this database wait for a lock while running a statement that starts
    with ``statement``. Asked outside any transaction (pg_stat_activity keeps one snapshot per
    transaction); matched by its start, as long queries are cut short there."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s", [statement + "%"]
        )
        return cursor.fetchone()[0]


def killed_while_blocked(handoff, block_sql: str, params: list, waiting_on: str) -> Approval:
    """An approved refund whose worker was killed while it waited for a lock another connection
    held (``block_sql``) on a statement starting with ``waiting_on``, and a new worker that has
    since taken the redelivered task. The decision is taken while no worker runs, so the lock can
    be taken after it and before the worker starts."""
    make_user("alice", "reviewers")
    first = handoff.worker()
    refund = waiting_refund(handoff)
    first.kill()
    handoff.manage("decide", str(refund.pk), "--approve", "--as", "alice")
    with psycopg.connect(database_url()) as blocker:
        blocker.execute(block_sql, params)
        second = handoff.worker()
        wait_for(lambda: lock_waiters(waiting_on), timeout=30)
        second.kill()
        killed_at = time.monotonic()
        blocker.rollback()
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - killed_at)))
    third = handoff.worker()
    wait_for(lambda: re.search(r"execute_function_call\[.*\] (succeeded|raised)", third.log.read_text()), timeout=30)
    return refund


@pytest.fixture
def killed_before_its_result_was_committed(handoff, api) -> Approval:
    """Killed after the tool body ran, while committing its result: the audit log's table is
    locked, so the worker waits on the ``function_call.executed`` event, in the transaction
    that records the result. (A fixture, so that a failure here is an error, never mistaken for
    a failure of the test.)"""
    return killed_while_blocked(handoff, "LOCK TABLE approvals_auditevent IN SHARE MODE", [],
                                'INSERT INTO "approvals_auditevent"')


@pytest.fixture
def killed_after_its_result_was_committed(handoff, api) -> Approval:
    """Killed after the tool body ran and its result was committed, while it waited to settle the
    call (the interaction's row is locked)."""
    return killed_while_blocked(handoff, "SELECT id FROM runs_interaction WHERE id = "
                                "(SELECT interaction_id FROM approvals_approval WHERE function_name = 'issue_refund')"
                                " FOR UPDATE", [], 'SELECT "runs_interaction".')


def the_one_result_sent(api, refund: Approval) -> dict:
    """The ``function_result`` the API received for ``refund`` once its run ended, asserting it
    received exactly one and the run completed."""
    wait_for(lambda: function_results_for(api, refund.call_id), timeout=30)
    wait_for(lambda: Run.objects.filter(pk=refund.run_id, status__in=Run.FINAL_STATUSES).exists(), timeout=30)
    time.sleep(1.0)  # a second send, if there were one, would be on its way by now
    [request] = function_results_for(api, refund.call_id)
    assert Run.objects.get(pk=refund.run_id).status == Run.Status.COMPLETED
    [result] = [item for item in request["body"]["input"] if item["call_id"] == refund.call_id]
    return result


def test_a_worker_killed_before_the_tools_result_was_committed_answers_once_with_an_unknown_outcome(
    killed_before_its_result_was_committed, api
):
    refund = killed_before_its_result_was_committed

    # The body may have run (here it did), so it is not run again; once the dead worker's claim
    # runs out (HANDOFF_EXECUTION_LEASE, 4 s here) the redelivered task answers the call with an
    # error saying its effect is unknown. The model hears of the call exactly once, and the run
    # goes on.
    result = the_one_result_sent(api, refund)
    assert result["is_error"] is True and "effect is unknown" in result["result"]["error"]
    assert AuditEvent.objects.filter(verb="function_call.outcome_unknown", object_id=str(refund.pk)).count() == 1
    assert not AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).exists()


def test_a_worker_killed_after_the_tools_result_was_committed_sends_that_result_exactly_once(
    killed_after_its_result_was_committed, api
):
    refund = killed_after_its_result_was_committed

    # The body's result was committed before the worker went on to settle the call: the
    # redelivered task finds it and settles the call with it. The body is not run again, and
    # what the model hears is what the tool did, not "effect unknown".
    result = the_one_result_sent(api, refund)
    assert result["result"]["status"] == "issued" and "is_error" not in result
    assert AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).count() == 1
    assert not AuditEvent.objects.filter(verb="function_call.outcome_unknown", object_id=str(refund.pk)).exists()


# SIGKILL the worker this long after an approve, one trial each: 0 to 0.5 s, evenly spread over
# HANDOFF_KILL_TRIALS trials (default 3; the closing measurement of issue 9 runs 10).
KILL_TRIALS = int(os.environ.get("HANDOFF_KILL_TRIALS", "3"))
KILL_DELAYS = [round(0.5 * i / max(1, KILL_TRIALS - 1), 3) for i in range(KILL_TRIALS)]


@pytest.mark.parametrize("delay", KILL_DELAYS)
def test_a_worker_killed_at_any_moment_after_an_approve_strands_nothing(handoff, api, delay):
    """Whatever the worker was doing when it died (running the body, committing its result,
    settling, sending the follow-up), the run completes, or waits for a person with the risk
    stated (a send of unknown outcome an admin may resend or close); never two results."""
    make_user("alice", "reviewers")
    first = handoff.worker(beat=True)
    refund = waiting_refund(handoff)

    handoff.manage("decide", str(refund.pk), "--approve", "--as", "alice")
    time.sleep(delay)
    first.kill()
    killed_at = time.monotonic()
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - killed_at)))
    handoff.worker(beat=True)

    wait_for(lambda: Run.objects.filter(pk=refund.run_id, status__in=Run.FINAL_STATUSES).exists(), timeout=60)
    run = Run.objects.get(pk=refund.run_id)
    last = run.interactions.order_by("-sequence").first()
    if run.status != Run.Status.COMPLETED:
        # Offered to a person: the page's admin actions resend or close exactly this.
        assert run.status == Run.Status.FAILED and last.dispatch == Interaction.Dispatch.UNKNOWN, (run.error, delay)
    time.sleep(1.0)  # a second send, if there were one, would be on its way by now
    sent = len(function_results_for(api, refund.call_id))
    assert sent == 1 if run.status == Run.Status.COMPLETED else sent <= 1, (sent, delay)
    # One line per trial for the closing measurement (pytest -s): how it ended, not whether.
    print(f"killed {delay:.3f}s after the approve: run {run.status}, last send {last.dispatch}, results sent {sent}")
    refund.refresh_from_db()
    assert refund.settled_at is not None
    assert AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).count() <= 1
