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
    connections), so they use ``transactional_db``."""
    return celery_worker


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
    """An engineer: starts and reads runs, may not decide."""
    return make_user("bob")


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
