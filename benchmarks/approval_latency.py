"""Benchmark: time from the Approve click to the follow-up ``create`` reaching the API.

Runs the order-support scenario N times against the bundled emulator with a real Celery worker
process, PostgreSQL and Redis. For each run it waits until the refund call waits for a reviewer
and the worker is idle, then POSTs the approval through Django's full request stack (the same
view the Approve button posts to) and takes the time until the emulator has received the
follow-up ``interactions.create`` carrying the ``function_result``. Prints the median and spread.

    .venv/bin/python benchmarks/approval_latency.py [--runs 15]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/handoff_bench, created if
missing), CELERY_BROKER_URL (default redis://127.0.0.1:6379/1).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ["HANDOFF_TASK_QUEUE"] = "handoff-bench"
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost"


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def wait_for(predicate, timeout=30.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(predicate)
        time.sleep(interval)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    ensure_database(DATABASE_URL)
    from runs.emulator import EmulatorServer

    emulator = EmulatorServer(port=0).start()
    os.environ["GEMINI_API_KEY"] = "benchmark"
    os.environ["GOOGLE_GEMINI_BASE_URL"] = emulator.url

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    call_command("migrate", verbosity=0)
    from approvals import tools
    from approvals.models import Approval
    from runs import execution
    from runs.models import Run
    from tests.conftest import make_user
    from django.contrib.auth.models import User

    reviewer = User.objects.filter(username="bench-reviewer").first() or make_user("bench-reviewer", "reviewers")
    client = Client()
    client.force_login(reviewer)

    worker = subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "dashboard", "worker", "--concurrency=2",
         "--loglevel=WARNING", "-Q", "handoff-bench"],
        cwd=ROOT, env=os.environ.copy(),
    )
    latencies = []
    try:
        for i in range(args.runs + 1):
            run = execution.create_run(
                model="gemini-3-flash-preview", tools=tools.declarations(["lookup_order", "issue_refund"]),
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
            if i:  # the first run warms up the worker's connections
                latencies.append((request["received_at"] - started) * 1000)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        emulator.stop()

    latencies.sort()
    print(f"approve click -> follow-up create at the API, {len(latencies)} runs, worker idle:")
    print(f"  median {statistics.median(latencies):.1f} ms   min {latencies[0]:.1f} ms   "
          f"max {latencies[-1]:.1f} ms   p90 {latencies[int(0.9 * (len(latencies) - 1))]:.1f} ms")


if __name__ == "__main__":
    main()
