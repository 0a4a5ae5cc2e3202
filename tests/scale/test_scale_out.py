"""Scaled out as production runs it: two web servers, two workers and the beat, 50 reviewers
racing on one queue through the pages, and one worker SIGKILLed midway. Afterwards every call
was answered exactly once at the API and every run ended.

Every Handoff process here is a real one (``gunicorn dashboard.wsgi`` with DEBUG off, ``celery
-A dashboard worker``, ``celery -A dashboard beat``) on this session's PostgreSQL test database,
with a Redis database of its own (a killed worker's unacknowledged task comes back after the
broker's visibility timeout, which is global to a Redis database; see
tests/approvals/test_worker_killed.py) and a queue of its own. The test process serves the
emulator, signs the reviewers in, and reads the database and the emulator's request log.

The beat runs the sweeps every second for work stranded 2 s (``HANDOFF_STRANDED_AFTER``), and a
claimed execution runs out after 4 s (``HANDOFF_EXECUTION_LEASE``), so whatever the killed
worker held is picked up in seconds.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.test import Client

from approvals.models import Approval
from runs.models import Interaction, Run
from tests.approvals.test_worker_killed import WorkerProcess, database_url
from tests.conftest import purge_task_queue, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A Redis database no other test uses (test_worker_killed has 13).
BROKER_DB = 12
REVIEWERS = 50
RUNS = 20
CALLS_PER_RUN = 5
# Reviewers who do not claim: they open calls from the queue page and decide them, racing the
# claimers (who then answer 409 to one of them).
RACERS = 10


def broker_url() -> str:
    url = urlsplit(settings.CELERY_BROKER_URL)
    assert url.scheme in ("redis", "rediss"), "this test needs the Redis broker (make test sets it)"
    return urlunsplit(url._replace(path=f"/{BROKER_DB}"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A server process in a session of its own, so ``kill()`` takes its children too."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def deployment(tmp_path, api, transactional_db):
    """Two gunicorns (their base URLs in ``web``), two workers (``workers``) and the beat, with
    this test's queue, broker database and short sweeps. All are killed at the end."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(), CELERY_BROKER_URL=broker_url(), DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1", HANDOFF_TASK_QUEUE=f"handoff-scale-{uuid.uuid4().hex[:8]}",
        HANDOFF_CONN_MAX_AGE="0", HANDOFF_GEMINI_TIMEOUT_MS="5000", HANDOFF_SENDING_LEASE_MARGIN="1",
        HANDOFF_EXECUTION_LEASE="4", HANDOFF_BROKER_VISIBILITY_TIMEOUT="3",
        HANDOFF_DEADLINE_CHECK_SECONDS="1", HANDOFF_RECOVERY_CHECK_SECONDS="1", HANDOFF_STRANDED_AFTER="2",
    )
    processes: list[Process | WorkerProcess] = []
    ports = [free_port(), free_port()]

    class Deployment:
        web = [f"http://127.0.0.1:{port}" for port in ports]

        def manage(self, *args: str) -> list[str]:
            done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout.splitlines()

    try:
        for i, port in enumerate(ports):
            processes.append(Process([str(BIN / "gunicorn"), "dashboard.wsgi", "-b", f"127.0.0.1:{port}",
                                      "-w", "1", "--threads", "4"], env, tmp_path / f"web{i}.log"))
        processes.append(Process([str(BIN / "celery"), "-A", "dashboard", "beat", "--loglevel=INFO",
                                  "-s", str(tmp_path / "beat-schedule")], env, tmp_path / "beat.log"))
        Deployment.workers = [WorkerProcess(env, tmp_path / f"worker{i}.log") for i in range(2)]
        processes.extend(Deployment.workers)
        for url in Deployment.web:
            wait_for(lambda url=url: answers(url), timeout=30, interval=0.2)
        yield Deployment()
    finally:
        for process in processes:
            process.kill()
        purge_task_queue(env["CELERY_BROKER_URL"], env["HANDOFF_TASK_QUEUE"])


def answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/accounts/login/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


class Reviewer:
    """One person's browser: a signed-in session of its own against one of the web servers."""

    def __init__(self, user: User, base: str):
        client = Client()
        client.force_login(user)
        self.base = base
        self.http = requests.Session()
        # A connection per request: a browser sends a request again when the server closed the
        # kept-alive connection it was reusing at that very instant (gunicorn closes idle ones
        # after HANDOFF_WEB_KEEPALIVE seconds); requests does not, and would report a reset.
        self.http.headers["Connection"] = "close"
        self.http.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
        page = self.http.get(f"{base}/approvals/", timeout=30)
        assert page.status_code == 200, page.status_code
        self.csrf = {"X-CSRFToken": self.http.cookies["csrftoken"]}
        self.statuses: Counter = Counter()

    def claim_next(self) -> int | None:
        response = self.http.post(f"{self.base}/approvals/claim-next/", headers=self.csrf, allow_redirects=False,
                                  timeout=30)
        assert response.status_code == 302, response.status_code
        match = re.search(r"/approvals/(\d+)/$", response.headers["Location"])
        return int(match.group(1)) if match else None

    def listed(self) -> list[int]:
        page = self.http.get(f"{self.base}/approvals/", timeout=30)
        return sorted({int(pk) for pk in re.findall(r'href="/approvals/(\d+)/"', page.text)})

    def decide(self, pk: int) -> None:
        """Open the call's page and click Approve (Reject, with a reason, for one call in ten)."""
        page = self.http.get(f"{self.base}/approvals/{pk}/", timeout=30)
        shown = re.search(r'name="shown_hash" value="([^"]+)"', page.text)
        if shown is None:
            self.statuses["decided before it was opened"] += 1  # no decision form any more
            return
        if pk % 10 == 0:
            url, data = f"{self.base}/approvals/{pk}/reject/", {"shown_hash": shown[1], "reason": "Over the limit"}
        else:
            url, data = f"{self.base}/approvals/{pk}/approve/", {"shown_hash": shown[1]}
        self.statuses[self.http.post(url, data=data, headers=self.csrf, allow_redirects=False, timeout=30).status_code] += 1


def queue_of_runs(deployment) -> list[int]:
    """RUNS runs, each asking for CALLS_PER_RUN refunds over $200 at once, created in one process
    of the deployment's (so their tasks go to its queue); their ids."""
    script = (
        "from approvals import tools; from runs import execution; "
        "from tests.factories import parallel_refunds_input; "
        "declarations = tools.declarations(['lookup_order', 'issue_refund']); "
        f"print(*[execution.create_run(model='gemini-3-flash-preview', tools=declarations, "
        f"input=parallel_refunds_input([f'S-{{i:03d}}{{n}}' for n in range({CALLS_PER_RUN})], first_total=201 + i)).pk "
        f"for i in range({RUNS})])"
    )
    return [int(pk) for pk in deployment.manage("shell", "-c", script)[-1].split()]


def test_fifty_reviewers_on_two_web_servers_and_a_worker_killed_midway_answer_every_call_exactly_once(
    deployment, api
):
    run_ids = queue_of_runs(deployment)
    calls = Approval.objects.filter(run_id__in=run_ids)
    wait_for(lambda: calls.filter(status=Approval.Status.PENDING).count() == RUNS * CALLS_PER_RUN, timeout=60)

    group = Group.objects.get_or_create(name="reviewers")[0]
    users = [User.objects.create(username=f"reviewer{i:02d}", email=f"reviewer{i:02d}@example.com",
                                 password=make_password(None)) for i in range(REVIEWERS)]
    group.user_set.add(*users)
    reviewers = [Reviewer(user, deployment.web[i % 2]) for i, user in enumerate(users)]
    barrier = threading.Barrier(REVIEWERS + 1)
    errors: list[str] = []

    def claimer(reviewer: Reviewer) -> None:
        barrier.wait()
        while (pk := reviewer.claim_next()) is not None:
            reviewer.decide(pk)

    def racer(reviewer: Reviewer) -> None:
        barrier.wait()
        while pending := reviewer.listed():
            reviewer.decide(random.choice(pending))

    def work(target, reviewer: Reviewer) -> None:
        try:
            target(reviewer)
        except Exception as exc:  # reported below: a thread's failure would otherwise be lost
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(racer if i < RACERS else claimer, reviewer))
               for i, reviewer in enumerate(reviewers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    # Midway: once a third of the calls are decided, one worker dies with whatever it holds.
    decided = calls.exclude(status=Approval.Status.PENDING)
    wait_for(lambda: decided.count() >= RUNS * CALLS_PER_RUN // 3, timeout=60, interval=0.02)
    killed_with = decided.filter(settled_at__isnull=True).count()
    deployment.workers[0].kill()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)

    wait_for(lambda: Run.objects.filter(pk__in=run_ids, status__in=Run.FINAL_STATUSES).count() == RUNS,
             timeout=45, interval=0.2)
    statuses = sum((reviewer.statuses for reviewer in reviewers), Counter())
    # A decision counted (302) or lost its race (409: decided or claimed by someone else); nothing else.
    assert set(statuses) <= {302, 409, "decided before it was opened"}, statuses
    assert statuses[302] == RUNS * CALLS_PER_RUN, statuses

    # function_results in follow-ups (the first create carries the lookups' answered history).
    sent = Counter(
        item["call_id"]
        for request in api.requests_for(method="POST", path_suffix="/interactions")
        if (request["body"] or {}).get("previous_interaction_id")
        for item in request["body"].get("input") or []
        if isinstance(item, dict) and item.get("type") == "function_result"
    )
    runs = {run.pk: run for run in Run.objects.filter(pk__in=run_ids)}
    for approval in calls.select_related("interaction"):
        run = runs[approval.run_id]
        assert approval.status in (Approval.Status.APPROVED, Approval.Status.REJECTED)
        assert approval.settled_at is not None, approval
        last = run.interactions.order_by("-sequence").first()
        if run.status == Run.Status.COMPLETED:
            assert sent[approval.call_id] == 1, (approval.call_id, sent[approval.call_id])
        else:
            # Only a follow-up the killed worker was sending may end this way: its outcome is
            # unknown, so it is offered to a person and never resent (never a second result).
            assert run.status == Run.Status.FAILED and last.dispatch == Interaction.Dispatch.UNKNOWN, run.error
            assert sent[approval.call_id] <= 1
    # One such follow-up at most per process of the killed worker's pool: each was mid-send.
    unfinished = [pk for pk, run in runs.items() if run.status != Run.Status.COMPLETED]
    assert len(unfinished) <= WorkerProcess.CONCURRENCY, unfinished
    print(f"decisions {statuses}; {killed_with} decided calls unsettled when the worker was killed; "
          f"runs not completed: {unfinished}")
