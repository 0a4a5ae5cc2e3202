"""Benchmark: the approval desk, fast and exactly once under load.

(a) Approve click to follow-up ``create`` at the API, worker idle (the floor): the order-support
    scenario run N times; each time, once the refund call waits for a reviewer and the worker is
    idle, one signed-in reviewer claims it, opens its page and clicks Approve over HTTP (gunicorn),
    timed until the emulator has received the follow-up carrying its ``function_result``. Prints
    the median, p90 and spread.
(b) 50 reviewers working one queue of 500 calls in this process: 100 runs that each ask for 5
    refunds at once (each over $200, so each needs one reviewer, through the real policy). Every
    reviewer is a thread with its own database connection looping ``Approval.claim_next`` →
    approve (or reject one call in ten) until the queue is empty. Prints the decisions made, the
    duplicates found (a call handed to two reviewers, a call with more than one decision, a call
    with more than one ``function_result`` at the API), the lost found (decided calls whose
    ``function_result`` never reached the API), the wall time and decisions/s, and the time until
    the last follow-up reached the API.
(c) The same desk under load through the real pages, for each worker size (``--workers 1,2,4``:
    one ``celery -A dashboard worker --concurrency N`` prefork worker, as ``make serve`` runs it):
    50 reviewer threads, each with its own signed-in session, loop over HTTP against gunicorn:
    POST "Claim next", GET the call's page (the arguments hash it shows), read it, POST Approve
    (or Reject, one call in ten). Reading takes each reviewer a time drawn from 0 to 2 x
    ``--think`` seconds; one row per think time (``--think 0,5``): 0 is reviewers that click as
    fast as the pages answer, which holds the machine's CPU at its limit (the desk's most
    decisions per second), 5 is people who read the call they decide. Per run, the latency is
    from the last of its 5 clicks to its follow-up's arrival at the API (the model can go on only
    once all 5 are answered). Prints p50 and p95 of that latency and their ratios to the floor
    (a), decisions/s (clicks answered by the web side) and answered/s (function results at the
    API per second, from the first claim to the last follow-up), and the duplicate and lost
    counts.

A real Celery worker process on PostgreSQL and Redis, gunicorn (its configuration file, DEBUG
off) for the pages, and the bundled emulator in a process of its own (so the reviewer threads
here do not slow its answers), reached over HTTP by the worker's google-genai client. All of it,
with the database and the reviewers, shares this machine's cores.

    .venv/bin/python benchmarks/approval_desk.py [--runs 15] [--reviewers 50] [--calls 500]
        [--workers 1,2,4] [--think 0,5] [--skip-in-process] [--keep]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/handoff_bench_desk, created
afresh each run, dropped at the end unless --keep), CELERY_BROKER_URL (default
redis://127.0.0.1:6379/2). (b)'s 50 reviewers hold 50 database connections at once, plus the
worker's and gunicorn's: the server needs max_connections well above that.
"""

import argparse
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common import drop_database  # noqa: E402 (after sys.path is set)

DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_desk")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("HANDOFF_TOOL_MODULES", "approvals.demo")  # the order-support demo's tools
os.environ["HANDOFF_TASK_QUEUE"] = "handoff-bench-desk"
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
os.environ["DJANGO_DEBUG"] = "0"
# A fixed number of processes (gunicorn sync workers, prefork children): keeping connections
# saves a connect per request or task, as the README advises for gunicorn.
os.environ.setdefault("HANDOFF_CONN_MAX_AGE", "60")

MODEL = "gemini-3-flash-preview"
CALLS_PER_RUN = 5
BIN = ROOT / ".venv/bin"
GUNICORN = ("-c dashboard/gunicorn.conf.py" if (ROOT / "dashboard/gunicorn.conf.py").exists() else "-w 2")


def recreate_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def wait_for(predicate, timeout=60.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(predicate)
        time.sleep(interval)
    return value


def race(work, each: list, barrier: threading.Barrier, *, clock) -> tuple[float, float]:
    """Run ``work(item)`` for each item in a thread of its own, all let go at once through
    ``barrier`` (one party more than the items, this thread); returns when the ``clock`` started
    and the seconds until the last thread ended."""
    threads = [threading.Thread(target=work, args=(item,)) for item in each]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = clock()
    for thread in threads:
        thread.join()
    return started, clock() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


# --- The emulator, in a process of its own ----------------------------------------------------


def _serve_emulator(conn, id_tag: str) -> None:
    from runs.emulator import EmulatorServer

    server = EmulatorServer(port=0, id_tag=id_tag).start()
    conn.send(server.url)
    while True:
        command, *args = conn.recv()
        if command == "stop":
            server.stop()
            conn.send(None)
            return
        conn.send(server.requests_for(*args))


class EmulatorProcess:
    """The bundled emulator served from a child process; ``requests_for`` asks it for its log."""

    def __init__(self, id_tag: str):
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(target=_serve_emulator, args=(child, id_tag), daemon=True)
        self.process.start()
        self.url = self._conn.recv()

    def requests_for(self, method: str | None = None, path_suffix: str | None = None) -> list[dict]:
        with self._lock:
            self._conn.send(("requests_for", method, path_suffix))
            return self._conn.recv()

    def stop(self) -> None:
        with self._lock:
            self._conn.send(("stop",))
            self._conn.recv()
        self.process.join(timeout=10)


def follow_ups(emulator) -> list[dict]:
    """Every create the API received chained with ``previous_interaction_id`` (a follow-up)."""
    return [request for request in emulator.requests_for(method="POST", path_suffix="/interactions")
            if (request["body"] or {}).get("previous_interaction_id")]


def function_results(emulator) -> list[dict]:
    """Every ``function_result`` the API received in a follow-up."""
    return [item for request in follow_ups(emulator) for item in request["body"].get("input") or []
            if isinstance(item, dict) and item.get("type") == "function_result"]


def first_arrivals(emulator) -> dict[str, float]:
    """call_id → epoch seconds its first ``function_result`` reached the API."""
    arrivals: dict[str, float] = {}
    for request in follow_ups(emulator):
        for item in request["body"].get("input") or []:
            if isinstance(item, dict) and item.get("type") == "function_result":
                arrivals.setdefault(item["call_id"], request["received_at"])
    return arrivals


# --- Processes: gunicorn and the worker -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, log: Path) -> subprocess.Popen:
    """gunicorn as ``make serve`` runs it (its configuration file, when there is one), bound here."""
    config = ROOT / "dashboard/gunicorn.conf.py"
    options = ["-c", str(config)] if config.exists() else ["-w", "2"]
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), *options, "dashboard.wsgi", "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "HANDOFF_WEB_BIND": f"127.0.0.1:{port}"},
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    import requests

    def up():
        try:
            return requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).status_code == 200
        except requests.RequestException:
            return process.poll() is not None
    try:
        wait_for(up, timeout=30, interval=0.1)
    except TimeoutError:
        stop(process)
        raise
    assert process.poll() is None, log.read_text()
    return process


def start_worker(concurrency: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN / "celery"), "-A", "dashboard", "worker", f"--concurrency={concurrency}",
         "--loglevel=INFO", "-Q", os.environ["HANDOFF_TASK_QUEUE"], "-n", f"bench-{concurrency}@%h"],
        # Its output carries the console email backend's notifications (one per call): to a file.
        cwd=ROOT, env=os.environ.copy(), stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    wait_for(lambda: process.poll() is not None or " ready." in log.read_text(), timeout=60, interval=0.1)
    assert process.poll() is None, log.read_text()
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- Reviewers over HTTP ----------------------------------------------------------------------


def reviewer_users(prefix: str, count: int):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User

    group = Group.objects.get_or_create(name="reviewers")[0]
    users = []
    for i in range(count):
        # No usable password: hashing 50 of them would take longer than the run itself; the
        # sessions are made as a sign-in would make them (``Client.force_login``).
        user, _ = User.objects.get_or_create(
            username=f"{prefix}-{i:02d}",
            defaults={"email": f"{prefix}-{i:02d}@example.com", "password": make_password(None)},
        )
        users.append(user)
    group.user_set.add(*users)
    return users


class Reviewer:
    """A signed-in browser session, acting through the pages over HTTP."""

    def __init__(self, user, base_url: str):
        import requests
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(user)
        self.http = requests.Session()
        self.http.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
        self.base = base_url
        page = self.http.get(f"{base_url}/approvals/")
        assert page.status_code == 200, page.status_code
        self.csrf = {"X-CSRFToken": self.http.cookies["csrftoken"]}

    def claim_next(self) -> int | None:
        """POST "Claim next"; the claimed approval's id, or ``None`` when nothing is left."""
        response = self.http.post(f"{self.base}/approvals/claim-next/", headers=self.csrf, allow_redirects=False)
        assert response.status_code == 302, response.status_code
        match = re.search(r"/approvals/(\d+)/$", response.headers["Location"])
        return int(match.group(1)) if match else None

    def shown_hash(self, pk: int) -> str:
        page = self.http.get(f"{self.base}/approvals/{pk}/")
        assert page.status_code == 200, page.status_code
        return re.search(r'name="shown_hash" value="([^"]+)"', page.text).group(1)

    def decide(self, pk: int, shown_hash: str, *, reject: bool) -> tuple[float, int]:
        """Click Approve (or Reject with a reason); returns the click's epoch seconds and the
        answer's status (302 counted, 409 lost the race)."""
        clicked = time.time()
        if reject:
            data = {"shown_hash": shown_hash, "reason": "Over the monthly limit"}
            response = self.http.post(f"{self.base}/approvals/{pk}/reject/", data=data, headers=self.csrf,
                                      allow_redirects=False)
        else:
            response = self.http.post(f"{self.base}/approvals/{pk}/approve/", data={"shown_hash": shown_hash},
                                      headers=self.csrf, allow_redirects=False)
        return clicked, response.status_code


def approve_latency(emulator, base_url: str, runs: int) -> list[float]:
    """(a): milliseconds from the Approve click to the follow-up create at the API, per run, the
    worker idle (the first run, which warms connections, is left out)."""
    from approvals import tools
    from approvals.models import Approval
    from runs import execution
    from runs.models import Run

    [user] = reviewer_users("desk-bench-idle", 1)
    reviewer = Reviewer(user, base_url)
    clicks = []
    for _ in range(runs + 1):
        run = execution.create_run(
            model=MODEL, tools=tools.declarations(["lookup_order", "issue_refund"]),
            input=f"Order A-1001 arrived broken, refund please (benchmark {time.time()}).",
        )
        wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING_FOR_APPROVAL).exists())
        refund = Approval.objects.get(run=run, function_name="issue_refund")
        time.sleep(0.5)  # let the worker go idle
        pk = reviewer.claim_next()
        assert pk == refund.pk, (pk, refund.pk)
        clicked, status = reviewer.decide(pk, reviewer.shown_hash(pk), reject=False)
        assert status == 302, status
        wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).exists())
        clicks.append((refund.call_id, clicked))
    arrivals = first_arrivals(emulator)
    return [(arrivals[call_id] - clicked) * 1000 for call_id, clicked in clicks[1:]]


def queue_of_runs(calls: int, tag: str) -> list[int]:
    """Runs that each ask for CALLS_PER_RUN refunds over $200 at once; returns their ids once
    every call waits for a reviewer."""
    from approvals import tools
    from approvals.models import Approval
    from runs import execution
    from tests.factories import parallel_refunds_input

    declarations = tools.declarations(["lookup_order", "issue_refund"])
    run_ids = [
        execution.create_run(
            model=MODEL, tools=declarations,
            input=parallel_refunds_input([f"B-{tag}{i:03d}{n}" for n in range(CALLS_PER_RUN)], first_total=201 + i),
        ).pk
        for i in range(calls // CALLS_PER_RUN)
    ]
    pending = Approval.objects.filter(run_id__in=run_ids, status=Approval.Status.PENDING)
    wait_for(lambda: pending.count() == len(run_ids) * CALLS_PER_RUN, timeout=300, interval=0.2)
    wait_until_idle()
    return run_ids


def queue_keys() -> list[str]:
    """The broker's lists for the benchmark's queue (kombu keeps one per priority step)."""
    name = os.environ["HANDOFF_TASK_QUEUE"]
    return [name, *(f"{name}\x06\x16{n}" for n in range(1, 10))]


def purge_queue() -> None:
    """Tasks left by an interrupted run name rows of a database that no longer exists."""
    import redis

    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    broker.delete(*queue_keys())
    broker.close()


def wait_until_idle() -> None:
    """Until the broker holds no task for the worker (the queue's "requested" notifications are
    sent): reviewers meet a queue that was filled before they sat down."""
    import redis

    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    wait_for(lambda: sum(broker.llen(key) for key in queue_keys()) == 0, timeout=120, interval=0.1)
    broker.close()
    time.sleep(1.0)  # the last tasks taken finish


def http_desk(emulator, base_url: str, users, calls: int, settle_timeout: float, tag: str, think: float) -> dict:
    """(c) for one worker size: the reviewers work a fresh queue through the pages, each taking
    a time drawn uniformly from 0 to 2 x ``think`` seconds to read a call before deciding it
    (``think`` 0: as fast as the pages answer)."""
    from approvals.models import Approval, Decision
    from runs.models import Run

    run_ids = queue_of_runs(calls, tag)
    reviewers = [Reviewer(user, base_url) for user in users]
    barrier = threading.Barrier(len(reviewers) + 1)
    pace = random.Random(len(tag))
    clicks: dict[int, float] = {}
    outcomes: Counter = Counter()
    errors: list[str] = []

    def work(reviewer: Reviewer) -> None:
        try:
            barrier.wait()
            while (pk := reviewer.claim_next()) is not None:
                shown_hash = reviewer.shown_hash(pk)
                if think:
                    time.sleep(pace.uniform(0, 2 * think))
                clicked, status = reviewer.decide(pk, shown_hash, reject=pk % 10 == 0)
                outcomes[status] += 1
                if status == 302:
                    clicks[pk] = clicked
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    started, decided_in = race(work, reviewers, barrier, clock=time.time)
    final = Run.objects.filter(pk__in=run_ids, status__in=Run.FINAL_STATUSES)
    try:
        wait_for(lambda: final.count() == len(run_ids), timeout=settle_timeout, interval=0.1)
    except TimeoutError:
        pass  # what did not arrive is counted as lost below

    approvals = list(Approval.objects.filter(run_id__in=run_ids))
    at_api = Counter(item["call_id"] for item in function_results(emulator))
    arrivals = first_arrivals(emulator)
    decisions = Counter(Decision.objects.filter(approval__in=approvals).values_list("approval_id", flat=True))
    by_run: dict[int, list] = {}
    for approval in approvals:
        by_run.setdefault(approval.run_id, []).append(approval)
    latencies = []
    for calls_of_run in by_run.values():
        if all(a.pk in clicks and a.call_id in arrivals for a in calls_of_run):
            last_click = max(clicks[a.pk] for a in calls_of_run)
            latencies.append((min(arrivals[a.call_id] for a in calls_of_run) - last_click) * 1000)
    last_arrival = max((arrivals[a.call_id] for a in approvals if a.call_id in arrivals), default=started)
    answered = sum(at_api[a.call_id] > 0 for a in approvals)
    return {
        "calls": len(approvals),
        "runs": len(run_ids),
        "decisions": sum(decisions.values()),
        "lost_races": outcomes[409],
        "other_statuses": {s: n for s, n in outcomes.items() if s not in (302, 409)},
        "decided_twice": sum(n > 1 for n in decisions.values()),
        "duplicates": sum(at_api[a.call_id] > 1 for a in approvals),
        "lost": sum(at_api[a.call_id] == 0 for a in approvals if a.decided_at),
        "completed": Run.objects.filter(pk__in=run_ids, status=Run.Status.COMPLETED).count(),
        "latencies": latencies,
        "decided_in": decided_in,
        "answered_in": last_arrival - started,
        "answered": answered,
        "errors": errors,
    }


# --- (b): reviewers in this process -----------------------------------------------------------


def rejects(approval) -> bool:
    """One call in ten is rejected: the first call of every run whose index ends in an even digit."""
    order = approval.arguments["order_id"]
    return order.endswith("0") and int(order[-2]) % 2 == 0


def reviewers_desk(emulator, reviewers: int, calls: int, settle_timeout: float) -> dict:
    """(b): the 50-reviewer run, each reviewer a thread calling the model methods. Returns the
    counts and times it prints."""
    from django.db import connection

    from approvals.models import Approval, Decision
    from runs.models import Run

    users = reviewer_users("desk-bench", reviewers)
    run_ids = queue_of_runs(calls, f"{int(time.time()) % 100000:05d}")
    queue = Approval.objects.filter(run_id__in=run_ids)

    barrier = threading.Barrier(len(users) + 1)
    taken: dict[str, list[tuple[int, str, bool]]] = {}
    errors: list[str] = []

    def work(user) -> None:
        done = taken.setdefault(user.username, [])
        try:
            barrier.wait()
            while (approval := Approval.claim_next(by=user, queryset=queue)) is not None:
                if rejects(approval):
                    won = approval.reject(by=user, shown_hash=approval.arguments_hash, reason="Over the monthly limit")
                    done.append((approval.pk, "reject", won))
                else:
                    won = approval.approve(by=user, shown_hash=approval.arguments_hash)
                    done.append((approval.pk, "approve", won))
        except Exception as exc:
            errors.append(f"{user.username}: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    started, decided_in = race(work, users, barrier, clock=time.monotonic)
    try:
        wait_for(lambda: Run.objects.filter(pk__in=run_ids, status__in=Run.FINAL_STATUSES).count() == len(run_ids),
                 timeout=settle_timeout, interval=0.1)
    except TimeoutError:
        pass  # what did not arrive is counted as lost below
    answered_in = time.monotonic() - started

    claims = Counter(pk for done in taken.values() for pk, _, _ in done)
    approvals = list(queue)
    decisions = Counter(Decision.objects.filter(approval__in=approvals).values_list("approval_id", flat=True))
    decided = [a for a in approvals if a.status in (Approval.Status.APPROVED, Approval.Status.REJECTED)]
    at_api = Counter(item["call_id"] for item in function_results(emulator))
    return {
        "calls": len(approvals),
        "runs": len(run_ids),
        "reviewers": len(users),
        "decisions": sum(decisions.values()),
        "approved": sum(a.status == Approval.Status.APPROVED for a in approvals),
        "rejected": sum(a.status == Approval.Status.REJECTED for a in approvals),
        "pending": sum(a.status == Approval.Status.PENDING for a in approvals),
        "lost_claims": sum(not won for done in taken.values() for _, _, won in done),
        "handed_twice": sum(n > 1 for n in claims.values()),
        "decided_twice": sum(n > 1 for n in decisions.values()),
        "duplicates": sum(at_api[a.call_id] > 1 for a in approvals),
        "lost": sum(at_api[a.call_id] == 0 for a in decided),
        "completed": Run.objects.filter(pk__in=run_ids, status=Run.Status.COMPLETED).count(),
        "errors": errors,
        "decided_in": decided_in,
        "answered_in": answered_in,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15, help="approvals timed in (a)")
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--calls", type=int, default=500, help="calls in each queue of (b) and (c), a multiple of 5")
    parser.add_argument("--workers", default="1,2,4", help="worker sizes (prefork processes) for (c)")
    parser.add_argument("--think", default="0,5", help="(c)'s reviewers' mean seconds reading a call, one row each")
    parser.add_argument("--settle-timeout", type=float, default=180, help="seconds (b), (c) wait for the follow-ups")
    parser.add_argument("--skip-in-process", action="store_true", help="leave out (b)")
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",") if n]
    thinks = [float(n) for n in args.think.split(",") if n]

    recreate_database(DATABASE_URL)
    purge_queue()
    emulator = EmulatorProcess(id_tag=f"{int(time.time()) % 100000:05d}")
    os.environ["GEMINI_API_KEY"] = "benchmark"
    os.environ["GOOGLE_GEMINI_BASE_URL"] = emulator.url

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    logs = Path(os.environ.get("HANDOFF_BENCH_LOGS", "/tmp/handoff-bench-desk"))
    logs.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    gunicorn = start_gunicorn(port, logs / "gunicorn.log")
    under_load = {}
    try:
        worker = start_worker(2, logs / "worker-idle.log")
        try:
            latencies = approve_latency(emulator, base_url, args.runs)
            desk = None if args.skip_in_process else reviewers_desk(emulator, args.reviewers, args.calls,
                                                                     args.settle_timeout)
        finally:
            stop(worker)
        users = reviewer_users("desk-bench-http", args.reviewers)
        for think in thinks:
            for size in sizes:
                worker = start_worker(size, logs / f"worker-{size}-think-{think:g}.log")
                try:
                    under_load[think, size] = http_desk(emulator, base_url, users, args.calls, args.settle_timeout,
                                                        tag=f"{size}{int(time.time()) % 10000:04d}", think=think)
                finally:
                    stop(worker)
    finally:
        stop(gunicorn)
        emulator.stop()
        connection.close()
        if not args.keep:
            drop_database(DATABASE_URL)

    floor = statistics.median(latencies)
    print(f"Approval desk benchmark: PostgreSQL {DATABASE_URL.rsplit('/', 1)[1]}, "
          f"broker {os.environ['CELERY_BROKER_URL']}, gunicorn {GUNICORN} (DEBUG off), "
          f"HANDOFF_CONN_MAX_AGE={os.environ['HANDOFF_CONN_MAX_AGE']}, {os.cpu_count()} cores")
    print(f"(a) approve click -> follow-up create at the API, worker idle (--concurrency 2), "
          f"{len(latencies)} runs, over HTTP:")
    print(f"    median {floor:.1f} ms   p90 {percentile(latencies, 0.9):.1f} ms   "
          f"min {min(latencies):.1f} ms   max {max(latencies):.1f} ms   (target: median under 250 ms)")
    if desk:
        print(f"(b) {desk['reviewers']} reviewers in this process (model methods), one queue of {desk['calls']} calls "
              f"({desk['runs']} runs x {CALLS_PER_RUN} parallel calls, 1 in 10 rejected), worker --concurrency 2:")
        print(f"    decisions made     {desk['decisions']} ({desk['approved']} approved, {desk['rejected']} rejected, "
              f"{desk['pending']} left pending)")
        print(f"    duplicates found   {desk['duplicates']} function_results answered twice at the API; "
              f"{desk['decided_twice']} calls decided twice; {desk['handed_twice']} calls handed to two reviewers")
        print(f"    lost found         {desk['lost']} decided calls whose function_result never reached the API; "
              f"{desk['lost_claims']} claimed calls whose decision did not count")
        print(f"    runs completed     {desk['completed']} of {desk['runs']}")
        print(f"    decisions          {desk['decided_in']:.1f} s wall, "
              f"{desk['decisions'] / desk['decided_in']:.1f} decisions/s")
        print(f"    last follow-up at the API {desk['answered_in']:.1f} s after the first claim")
        if desk["errors"]:
            print(f"    reviewer errors    {len(desk['errors'])}: {desk['errors'][:3]}")
    print(f"(c) {args.reviewers} reviewers over HTTP (claim next, open, read for 0 to 2 x think s, approve; 1 in 10 "
          f"rejected), one queue of {args.calls} calls per row; latency: a run's last click -> its follow-up at the "
          f"API (target: p95 under 1000 ms with 2 processes)")
    print(f"    {'think s':>7} {'processes':>9} {'p50 ms':>8} {'x floor':>7} {'p95 ms':>8} {'x floor':>7} "
          f"{'decisions/s':>11} {'answered/s':>10} {'last at':>7} {'dup':>4} {'lost':>4} {'done':>8} {'409s':>5}")
    for (think, size), row in under_load.items():
        lat = row["latencies"] or [float("nan")]
        p50, p95 = statistics.median(lat), percentile(lat, 0.95)
        print(f"    {think:>7g} {size:>9} {p50:>8.0f} {p50 / floor:>7.1f} {p95:>8.0f} {p95 / floor:>7.1f} "
              f"{row['decisions'] / row['decided_in']:>11.1f} {row['answered'] / row['answered_in']:>10.1f} "
              f"{row['answered_in']:>6.1f}s {row['duplicates']:>4} {row['lost']:>4} "
              f"{row['completed']:>4}/{row['runs']:<3} {row['lost_races']:>5}")
        if row["errors"] or row["other_statuses"] or row["decided_twice"]:
            print(f"      errors {row['errors'][:3]} other statuses {row['other_statuses']} "
                  f"decided twice {row['decided_twice']}")


if __name__ == "__main__":
    main()
