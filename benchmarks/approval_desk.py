"""Benchmark: the approval desk, fast and exactly once under load.

(a) Approve click to follow-up ``create`` at the API, worker idle: the order-support scenario run
    N times; each time, once the refund call waits for a reviewer and the worker is idle, the
    approval is POSTed through Django's full request stack (the view the Approve button posts to)
    and timed until the emulator has received the follow-up carrying its ``function_result``.
    Prints the median, p90 and spread.
(b) 50 reviewers working one queue of 500 calls: 100 runs that each ask for 5 refunds at once
    (each over $200, so each needs one reviewer, through the real policy). Every reviewer is a
    thread with its own database connection looping ``Approval.claim_next`` → approve (or reject
    one call in ten) until the queue is empty; the worker runs the tools and sends each run's
    follow-up to the emulator. Prints the decisions made, the duplicates found (a call handed to
    two reviewers, a call with more than one decision, a call with more than one
    ``function_result`` at the API), the lost found (decided calls whose ``function_result``
    never reached the API), the wall time of the decisions and decisions/s, and the time until
    the last follow-up reached the API.

A real Celery worker process (prefork, 2 processes) on PostgreSQL and Redis, and the bundled
emulator in this process, reached over HTTP by the worker's google-genai client.

    .venv/bin/python benchmarks/approval_desk.py [--runs 15] [--reviewers 50] [--calls 500]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/handoff_bench_desk, created
if missing), CELERY_BROKER_URL (default redis://127.0.0.1:6379/2). 50 reviewers hold 50 database
connections at once, plus the worker's: the server needs max_connections well above that.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_desk")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ["HANDOFF_TASK_QUEUE"] = "handoff-bench-desk"
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost"

MODEL = "gemini-3-flash-preview"
CALLS_PER_RUN = 5


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def wait_for(predicate, timeout=60.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(predicate)
        time.sleep(interval)
    return value


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


def function_results(emulator) -> list[dict]:
    """Every ``function_result`` the API received in a follow-up (a create chained with
    ``previous_interaction_id``)."""
    return [
        item
        for request in emulator.requests_for(method="POST", path_suffix="/interactions")
        if (request["body"] or {}).get("previous_interaction_id")
        for item in request["body"].get("input") or []
        if isinstance(item, dict) and item.get("type") == "function_result"
    ]


def approve_latency(emulator, runs: int) -> list[float]:
    """(a): milliseconds from the Approve POST to the follow-up create at the API, per run (the
    first run, which warms the worker's connections, is left out)."""
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from approvals import tools
    from approvals.models import Approval
    from runs import execution
    from runs.models import Run
    from tests.conftest import make_user

    reviewer = (User.objects.filter(username="desk-bench-reviewer").first()
                or make_user("desk-bench-reviewer", "reviewers"))
    client = Client()
    client.force_login(reviewer)
    latencies = []
    for i in range(runs + 1):
        run = execution.create_run(
            model=MODEL, tools=tools.declarations(["lookup_order", "issue_refund"]),
            input=f"Order A-1001 arrived broken, refund please (benchmark {time.time()}).",
        )
        wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING_FOR_APPROVAL).exists())
        refund = Approval.objects.get(run=run, function_name="issue_refund")
        time.sleep(0.5)  # let the worker go idle
        seen = len(emulator.requests_for(method="POST", path_suffix="/interactions"))
        started = time.time()
        response = client.post(reverse("approvals:approve", args=[refund.pk]), {"shown_hash": refund.arguments_hash})
        assert response.status_code in (200, 302), response.status_code

        def follow_up():
            for request in emulator.requests_for(method="POST", path_suffix="/interactions")[seen:]:
                for item in (request["body"] or {}).get("input") or []:
                    if isinstance(item, dict) and item.get("call_id") == refund.call_id:
                        return request
            return None

        request = wait_for(follow_up)
        wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).exists())
        if i:
            latencies.append((request["received_at"] - started) * 1000)
    return latencies


def rejects(approval) -> bool:
    """One call in ten is rejected: the first call of every run whose index ends in an even digit."""
    order = approval.arguments["order_id"]
    return order.endswith("0") and int(order[-2]) % 2 == 0


def reviewers_desk(emulator, reviewers: int, calls: int, settle_timeout: float) -> dict:
    """(b): the 50-reviewer run. Returns the counts and times it prints."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from approvals import tools
    from approvals.models import Approval, Decision
    from runs import execution
    from runs.models import Run
    from tests.factories import parallel_refunds_input

    group = Group.objects.get_or_create(name="reviewers")[0]
    users = []
    for i in range(reviewers):
        # No usable password: hashing 50 of them would take longer than the run itself.
        user, _ = User.objects.get_or_create(
            username=f"desk-bench-{i:02d}",
            defaults={"email": f"desk-bench-{i:02d}@example.com", "password": make_password(None)},
        )
        users.append(user)
    group.user_set.add(*users)

    tag = f"{int(time.time()) % 100000:05d}"
    declarations = tools.declarations(["lookup_order", "issue_refund"])
    run_ids = [
        execution.create_run(
            model=MODEL, tools=declarations,
            input=parallel_refunds_input([f"B-{tag}{i:03d}{n}" for n in range(CALLS_PER_RUN)], first_total=201 + i),
        ).pk
        for i in range(calls // CALLS_PER_RUN)
    ]
    queue = Approval.objects.filter(run_id__in=run_ids)
    wait_for(lambda: queue.filter(status=Approval.Status.PENDING).count() == len(run_ids) * CALLS_PER_RUN,
             timeout=300, interval=0.2)

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

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    decided_in = time.monotonic() - started
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
    parser.add_argument("--calls", type=int, default=500, help="calls in the queue of (b), a multiple of 5")
    parser.add_argument("--settle-timeout", type=float, default=180, help="seconds (b) waits for the follow-ups")
    args = parser.parse_args()

    ensure_database(DATABASE_URL)
    from runs.emulator import EmulatorServer

    emulator = EmulatorServer(port=0, id_tag=f"{int(time.time()) % 100000:05d}").start()
    os.environ["GEMINI_API_KEY"] = "benchmark"
    os.environ["GOOGLE_GEMINI_BASE_URL"] = emulator.url

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    worker = subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "dashboard", "worker", "--concurrency=2",
         "--loglevel=WARNING", "-Q", os.environ["HANDOFF_TASK_QUEUE"]],
        # Its stdout carries the console email backend's notifications (one per call): not wanted here.
        cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL,
    )
    try:
        latencies = approve_latency(emulator, args.runs)
        desk = reviewers_desk(emulator, args.reviewers, args.calls, args.settle_timeout)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        emulator.stop()

    print(f"Approval desk benchmark: PostgreSQL {DATABASE_URL.rsplit('/', 1)[1]}, "
          f"broker {os.environ['CELERY_BROKER_URL']}, one worker process (prefork, 2)")
    print(f"(a) approve click -> follow-up create at the API, worker idle, {len(latencies)} runs:")
    print(f"    median {statistics.median(latencies):.1f} ms   p90 {percentile(latencies, 0.9):.1f} ms   "
          f"min {min(latencies):.1f} ms   max {max(latencies):.1f} ms   (target: median under 250 ms)")
    print(f"(b) {desk['reviewers']} reviewers, one queue of {desk['calls']} calls "
          f"({desk['runs']} runs x {CALLS_PER_RUN} parallel calls, 1 in 10 rejected):")
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


if __name__ == "__main__":
    main()
