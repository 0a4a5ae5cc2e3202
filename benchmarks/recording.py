"""Benchmark: recording an interaction of 50 steps, with 0, 1,000,000 and 10,000,000 audit events.

Recording is what a worker does with every answer of the API: parse the body, store the
interaction, its 50 steps and its artifacts, write the audit events, move the run on, and, after
the commit, seal the new events into the hash chain. The product's number: under 10 ms, and the
median with 10,000,000 events in the log within 1.2x of the median with none.

One PostgreSQL database per log size (``handoff_bench_recording_<events>``), seeded server-side
(``INSERT … SELECT FROM generate_series``: events, and a link for each, as a year of use leaves
them). Each database is measured by a child process of its own; the children take turns, round
after round, so the sizes are measured side by side under the same load. Each round times
``--repeat`` recordings, each of a fresh run and interaction, and prints per size:

- the median and p95 of a whole recording (``gemini.parse`` + ``execution.record``, commit and
  seal included) and the median of the seal alone;
- the floor: one transaction inserting 50 rows of the same steps into a table of their own
  through a raw cursor, the least a recording of 50 steps costs this database;
- the ratio of each size's median to its floor, and to the median with an empty log.

    .venv/bin/python benchmarks/recording.py [--events 0,1000000,10000000] [--repeat 100]
        [--rounds 3] [--keep]

With ``--keep`` the databases stay for the next invocation (a database is seeded again only when
it holds another number of events). Environment: DATABASE_SERVER (default
postgres://postgres@127.0.0.1:5432).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SERVER = os.environ.get("DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
PAYLOAD = ROOT / "tests" / "payloads" / "05_google_search_steps_quickstart.json"
STEPS = 50

SEED_EVENTS = """
INSERT INTO approvals_auditevent
    (actor, verb, object_type, object_id, run_id, tool, before, after, request_id, created_at)
SELECT
    (ARRAY['alice', 'dave', 'erin', 'system:worker', 'system:policy'])[1 + n %% 5],
    (ARRAY['approval.approved', 'interaction.recorded', 'run.status_changed', 'function_result.sent',
           'approval.rejected'])[1 + n %% 5],
    'interaction', (n / 3)::text, n / 10,
    CASE WHEN n %% 5 = 0 THEN 'issue_refund' ELSE '' END,
    jsonb_build_object('status', 'running'),
    jsonb_build_object('status', 'completed', 'interaction_id', 'v1_' || md5(n::text)),
    md5(n::text), now() - make_interval(secs => %s - n)
FROM generate_series(%s, %s) AS n
"""
# Links with hashes of the right shape: recording reads only the chain's last link and the
# backlog, so the chain need not verify for this measurement.
SEED_LINKS = """
INSERT INTO approvals_chainlink (position, event_id, prev_hash, hash, sealed_at)
SELECT n, n, encode(sha256((n - 1)::text::bytea), 'hex'), encode(sha256(n::text::bytea), 'hex'), now()
FROM generate_series(%s, %s) AS n
"""
SEED_BATCH = 1_000_000


def database_url(events: int) -> str:
    return f"{SERVER}/handoff_bench_recording_{events}"


def prepare(events: int, keep: bool) -> None:
    """Create, migrate and seed the database for ``events`` (skipped when it already holds
    exactly that many)."""
    import psycopg

    url = database_url(events)
    name = url.rsplit("/", 1)[1]
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SECRET_KEY="benchmark-only", DJANGO_SETTINGS_MODULE="dashboard.settings")

    def migrate():
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"], env=env, check=True)

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and keep:
            with psycopg.connect(url) as db:
                try:
                    held = db.execute("SELECT count(*) FROM approvals_chainlink").fetchone()[0]
                except psycopg.Error:
                    held = -1
            if held >= events:  # its seeded events, and the recordings of earlier invocations
                migrate()  # the code may have gained migrations since
                print(f"  {events:>12,} events: database kept from an earlier invocation", flush=True)
                return
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate()
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as db:
        # Events sealed long ago: not queued for sealing (the queueing trigger is off for this
        # session only; it runs as the database's superuser).
        db.execute("SET session_replication_role = replica")
        for first in range(1, events + 1, SEED_BATCH):
            last = min(events, first + SEED_BATCH - 1)
            db.execute(SEED_EVENTS, [events, first, last])
            db.execute(SEED_LINKS, [first, last])
        db.execute(f"SELECT setval(pg_get_serial_sequence('approvals_auditevent', 'id'), {max(events, 1)})")
        db.execute("VACUUM ANALYZE")
    print(f"  {events:>12,} events: seeded in {time.monotonic() - started:.0f} s", flush=True)


def response_body(n: int) -> str:
    """A completed interaction of ``STEPS`` steps, cycled from Google's published search example
    (thought, google_search_call, google_search_result, model_output), each step made unique."""
    published = json.loads(PAYLOAD.read_text())
    steps = []
    for i in range(STEPS):
        step = json.loads(json.dumps(published["steps"][i % len(published["steps"])]))
        if step["type"] == "google_search_call":
            step["id"] = f"search_{n}_{i}"
        elif step["type"] == "google_search_result":
            step["call_id"] = f"search_{n}_{i - 1}"
        elif step["type"] == "model_output":
            step["content"][0]["text"] += f" ({n}.{i})"
        steps.append(step)
    return json.dumps({**published, "id": f"v1_bench_{n}", "steps": steps,
                       "usage": {"total_input_tokens": 420, "total_output_tokens": 980, "total_tokens": 1400}})


def child(repeat: int, round_number: int) -> None:
    """Time ``repeat`` recordings against DATABASE_URL; print one JSON line of timings (ms)."""
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Max

    from audit import log
    from runs import execution, gemini
    from runs.models import Interaction, Run

    seal = log.seal
    seal_ms: list[float] = []

    def timed_seal(*args, **kwargs):
        started = time.perf_counter()
        try:
            return seal(*args, **kwargs)
        finally:
            seal_ms.append((time.perf_counter() - started) * 1000)

    log.seal = timed_seal  # the commit hook calls log.seal by name: time it where it runs
    base = (Run.objects.aggregate(n=Max("pk"))["n"] or 0) + 1
    bodies = [response_body(base + i) for i in range(repeat + 3)]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE floor_steps (id bigserial PRIMARY KEY, position int, data jsonb)")
    record_ms, floor_ms = [], []
    for i, body in enumerate(bodies):
        run = Run.objects.create(model="gemini-3.5-flash", input="Who won Euro 2024?", input_text="Who won Euro 2024?",
                                 interaction_count=1)
        interaction = Interaction.objects.create(run=run, sequence=1, request={"model": run.model, "input": run.input},
                                                 dispatch=Interaction.Dispatch.SENDING)
        started = time.perf_counter()
        execution.record(interaction, gemini.parse(body))
        elapsed = (time.perf_counter() - started) * 1000
        steps = json.loads(body)["steps"]
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.executemany("INSERT INTO floor_steps (position, data) VALUES (%s, %s)",
                               [(p, json.dumps(s)) for p, s in enumerate(steps)])
            cursor.execute("COMMIT")
        floor = (time.perf_counter() - started) * 1000
        if i >= 3:  # the first few warm the caches and the connection
            record_ms.append(elapsed)
            floor_ms.append(floor)
    assert Interaction.objects.get(pk=interaction.pk).steps.count() == STEPS
    print(json.dumps({"record": record_ms, "floor": floor_ms, "seal": seal_ms[3:]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="0,1000000,10000000", help="audit log sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=100, help="recordings per size and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each measuring every size in turn")
    parser.add_argument("--keep", action="store_true", help="keep the databases for the next invocation")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.repeat, args.child)
        return
    sizes = [int(n) for n in args.events.split(",")]
    print(f"Recording an interaction of {STEPS} steps (parse, steps, artifacts, audit, seal) on PostgreSQL")
    print("Seeding:")
    for events in sizes:
        prepare(events, args.keep)
    timings = {events: {"record": [], "floor": [], "seal": []} for events in sizes}
    for round_number in range(1, args.rounds + 1):
        for events in sizes:
            env = dict(os.environ, DATABASE_URL=database_url(events), DJANGO_SECRET_KEY="benchmark-only",
                       DJANGO_SETTINGS_MODULE="dashboard.settings", HANDOFF_CONN_MAX_AGE="600",
                       CELERY_BROKER_URL="memory://")
            out = subprocess.run([sys.executable, __file__, "--child", str(round_number), "--repeat", str(args.repeat)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            for key, values in json.loads(out.strip().splitlines()[-1]).items():
                timings[events][key].extend(values)
        print(f"  round {round_number} of {args.rounds} done", flush=True)

    def median(values):
        return statistics.median(values)

    empty = median(timings[sizes[0]]["record"])
    print()
    print(f"Medians over {args.rounds} rounds x {args.repeat} recordings (ms); target: under 10 ms, and within 1.2x "
          f"of the median at {sizes[0]:,} events")
    print(f"{'audit events':>14} {'record':>8} {'p95':>8} {'seal':>7} {'floor':>7} {'/ floor':>8} {'/ ' + format(sizes[0], ','):>8}")
    for events in sizes:
        t = timings[events]
        record, floor = median(t["record"]), median(t["floor"])
        p95 = statistics.quantiles(t["record"], n=20)[-1]
        print(f"{events:>14,} {record:>8.2f} {p95:>8.2f} {median(t['seal']):>7.2f} {floor:>7.2f} "
              f"{record / floor:>7.1f}x {record / empty:>7.2f}x")
    if not args.keep:
        import psycopg

        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            for events in sizes:
                conn.execute(f'DROP DATABASE IF EXISTS "handoff_bench_recording_{events}" WITH (FORCE)')


if __name__ == "__main__":
    main()
