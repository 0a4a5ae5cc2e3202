"""Shared fixtures: personas, the Interactions API emulator over HTTP, and a real Celery worker.

The suite runs on PostgreSQL with a Redis broker (see the Makefile's ``test`` target); the SDK
talks to the emulator over HTTP exactly as it would talk to Google.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from django.contrib.auth.models import Group, User

from runs.emulator import EmulatorServer

PASSWORD = "correct horse battery staple"


def pytest_configure(config):
    from django.conf import settings

    vendor = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in vendor:
        raise pytest.UsageError(
            f"The suite runs on PostgreSQL, not {vendor}: set DATABASE_URL (make test does)."
        )


@pytest.fixture(scope="session")
def emulator():
    """The bundled Interactions API emulator on a free port; the SDK is pointed at it through
    its own environment variables, as a deployment would point it at Google."""
    server = EmulatorServer(host="127.0.0.1", port=0, background_polls=2).start()
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "GOOGLE_GENAI_API_VERSION"):
        os.environ.pop(name, None)
    os.environ["GEMINI_API_KEY"] = "test-key"
    os.environ["GOOGLE_GEMINI_BASE_URL"] = server.url
    from runs import gemini

    gemini.client.cache_clear()
    yield server
    server.stop()


@pytest.fixture
def api(emulator):
    """The emulator, with its interactions and request log forgotten before the test."""
    emulator.reset()
    return emulator


@pytest.fixture(scope="session", autouse=True)
def flush_past_audit_triggers():
    """Transactional tests end with a flush that TRUNCATEs every table; the audit tables refuse
    TRUNCATE (a trigger, migration 0007). The suite connects as a superuser, so its flush skips
    triggers for that one transaction (``SET LOCAL session_replication_role``), as a database
    owner resetting a test database would."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        sql = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET LOCAL session_replication_role = replica", *sql] if sql else sql

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(scope="session")
def audit_signing_key_file(tmp_path_factory):
    """One audit signing key for the session, outside the repository's data folder; processes
    the suite starts (workers, commands) inherit it through the environment."""
    path = tmp_path_factory.mktemp("audit-key") / "audit-signing-key.pem"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HANDOFF_AUDIT_SIGNING_KEY_FILE", str(path))
        yield path


@pytest.fixture(autouse=True)
def audit_checkpoint_log(settings, audit_signing_key_file, tmp_path):
    """A checkpoint log of the test's own: the log lives outside the database on purpose, so it
    outlives the test's rollback, and a checkpoint left by one test would be missing from the
    next test's database (which ``verify_audit`` reports as deleted checkpoints)."""
    settings.HANDOFF_AUDIT_SIGNING_KEY_FILE = audit_signing_key_file
    settings.HANDOFF_AUDIT_CHECKPOINT_LOG = tmp_path / "audit-checkpoints.jsonl"
    return settings.HANDOFF_AUDIT_CHECKPOINT_LOG


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, emulator):
    """A real Celery worker (threads pool) consuming from the Redis broker, on a queue of its own
    so nothing else on the machine takes this session's tasks."""
    from celery.contrib.testing.worker import start_worker

    from dashboard.celery import app

    queue = f"handoff-test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING",
        queues=[queue], shutdown_timeout=10,
    ) as worker:
        yield worker


@pytest.fixture
def worker(celery_worker, api, transactional_db):
    """Tests that go through the worker need committed data (the worker has its own database
    connections), so they use ``transactional_db``.

    At the end, waits (up to 30 s) for the tasks the worker is running to finish: the flush that
    empties the database after the test TRUNCATEs table after table, and a task still holding
    row locks and asking for another table's would deadlock with it. Tasks waiting on a
    countdown are not waited for; they find nothing of this test when they run."""
    from celery.worker import state

    yield celery_worker
    deadline = time.monotonic() + 30
    while state.active_requests and time.monotonic() < deadline:
        time.sleep(0.05)


def make_user(username: str, *groups: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    for name in groups:
        # get_or_create: transactional tests flush the groups the data migration made.
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def alice(db):
    """A reviewer: may decide function calls and read the audit log."""
    return make_user("alice", "reviewers")


@pytest.fixture
def bob(db):
    """An engineer: starts, tracks and runs again any run, cancels and continues their own; may
    not decide."""
    return make_user("bob", "engineers")


@pytest.fixture
def carol(db):
    """An auditor: reads runs and exports the audit log, may not decide."""
    return make_user("carol", "auditors")


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` seconds pass
    (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def on_sqlite(tmp_path, script: str, stdin: str | None = None):
    """Migrate a fresh SQLite file (the embedded default) in a process of its own, run ``script``
    there with ``manage.py shell -c`` (``stdin`` on its standard input), and return the JSON its
    last output line holds. The suite runs on PostgreSQL; this is how it sees SQLite."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "HANDOFF_TEST_DATABASE_NAME"}}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}", HANDOFF_DATA_DIR=str(tmp_path))

    def manage(*args, stdin=None) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=Path(__file__).resolve().parents[1], env=env,
                              input=stdin, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--no-input")
    return json.loads(manage("shell", "-c", script, stdin=stdin).strip().splitlines()[-1])


def purge_task_queue(broker_url: str, queue: str) -> None:
    """Delete what the broker holds for ``queue`` (tasks of a killed worker, the queue's
    bindings): a suite's private queue goes when its test does."""
    import redis

    broker = redis.Redis.from_url(broker_url)
    for key in broker.scan_iter(f"*{queue}*"):
        broker.delete(key)
    broker.close()


def wait_for_port(port: int, server, log_path, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:``port``; fail with the ``server`` process's
    log (``log_path``) if it exits first or ``timeout`` seconds pass."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log_path.read_text())
            time.sleep(0.2)
