"""Benchmark: the run detail page and its timeline chunks, for runs of 5,000 to 100,000 steps.

Seeds PostgreSQL (server-side ``INSERT … SELECT FROM generate_series``) with five completed runs
whose counts are kept as runs.execution keeps them (``Run.step_count``, ``interaction_count``,
``usage``; ``Interaction.step_count``, ``first_step``):

- 25 interactions × 200 steps (5,000 steps), 2,500 × 2 (5,000 steps, many short interactions),
  250 × 200 (50,000 steps), 500 × 200 and 50,000 × 2 (100,000 steps each);

then takes through Django's full request stack (the test ``Client``, signed in) the first paint
of each run's page, the header's refresh, and the htmx chunk of the timeline at its start (step
100), its middle and its end, and prints the median server time over ``--repeat`` requests, the
query count and the indexes the statements' plans use. Worst first, against the target (150 ms)
and a floor: a signed-in request that renders nothing, Django's fixed cost of a request,
measured in the same run.

    .venv/bin/python benchmarks/run_detail.py [--keep] [--repeat 15]

With ``--keep`` the database is left in place and the next invocation reuses it; without it the
database is dropped at the end.

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/handoff_bench_run_detail,
created if missing).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common import drop_database, ensure_database, reference_url  # noqa: E402 (after sys.path is set)

DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_run_detail")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost"
# Persistent connections, as deployed: a page does not pay for a new connection.
os.environ["HANDOFF_CONN_MAX_AGE"] = "600"

TARGET_MS = 150
USERNAME = "bench-alice"
# (interactions, steps per interaction)
RUNS = [(25, 200), (2_500, 2), (250, 200), (500, 200), (50_000, 2)]
USAGE = {"total_input_tokens": 4000, "total_output_tokens": 600, "total_thought_tokens": 300,
         "total_cached_tokens": 100, "total_tool_use_tokens": 40, "total_tokens": 4940}


def label(interactions: int, steps: int) -> str:
    return f"{interactions:,} × {steps} ({interactions * steps:,} steps)"


# Interactions of one run: a second apart, each 1-40 s long, usage on every one; the last is
# completed, the others asked for function calls. Each with its counts, as recording keeps them:
# its steps, and the steps of the interactions before it.
SEED_INTERACTIONS_SQL = """
INSERT INTO runs_interaction (
    run_id, sequence, interaction_id, previous_interaction_id, request, dispatch, status, output_text,
    usage, errors, error, schema_warning, poll_count, sdk_version, created_at, sent_at, finished_at,
    step_count, first_step
)
SELECT %(run)s, n, 'v1_bench_' || %(run)s || '_' || n, CASE WHEN n > 0 THEN 'v1_bench_' || %(run)s || '_' || (n - 1) ELSE '' END,
    jsonb_build_object('model', 'gemini-3-flash-preview', 'input', CASE WHEN n = 0 THEN 'Benchmark run' ELSE 'function results' END),
    'sent', CASE WHEN n = %(n)s - 1 THEN 'completed' ELSE 'requires_action' END, '',
    %(usage)s::jsonb, '[]'::jsonb, '', '', 0, '3.3.0',
    %(started)s + n * interval '1 second', %(started)s + n * interval '1 second',
    %(started)s + n * interval '1 second' + (1000 + (n * 7919) %% 39000) * interval '1 millisecond',
    %(steps)s, n * %(steps)s
FROM generate_series(0, %(n)s - 1) AS n
"""
# Steps of mixed types, ten kinds in turn, as the API types them.
SEED_STEPS_SQL = """
INSERT INTO runs_step (interaction_id, index, type, call_id, name, data)
SELECT i.id, k, kind.type,
    CASE WHEN kind.type LIKE '%%_call' OR kind.type LIKE '%%_result' THEN 'c_' || i.id || '_' || (k / 2) ELSE '' END,
    CASE WHEN kind.type IN ('function_call', 'function_result') THEN 'lookup_order' ELSE '' END,
    CASE kind.type
        WHEN 'thought' THEN jsonb_build_object('type', 'thought', 'signature', 'EuYBCuMBAdHtim9' || k,
            'summary', jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'Check the order, then decide.')))
        WHEN 'function_call' THEN jsonb_build_object('type', 'function_call', 'id', 'c_' || i.id || '_' || (k / 2),
            'name', 'lookup_order', 'arguments', jsonb_build_object('order_id', 'A-' || (1000 + k)))
        WHEN 'function_result' THEN jsonb_build_object('type', 'function_result', 'call_id', 'c_' || i.id || '_' || (k / 2),
            'name', 'lookup_order', 'result', jsonb_build_object('status', 'delivered', 'total', 249.0))
        WHEN 'google_search_call' THEN jsonb_build_object('type', 'google_search_call', 'id', 'c_' || i.id || '_' || (k / 2),
            'arguments', jsonb_build_object('queries', jsonb_build_array('headphone return policy ' || k)))
        WHEN 'google_search_result' THEN jsonb_build_object('type', 'google_search_result', 'call_id', 'c_' || i.id || '_' || (k / 2),
            'result', jsonb_build_array(jsonb_build_object('title', 'Returns', 'url', 'https://example.com/returns')))
        WHEN 'code_execution_call' THEN jsonb_build_object('type', 'code_execution_call', 'id', 'c_' || i.id || '_' || (k / 2),
            'arguments', jsonb_build_object('language', 'python', 'code', 'print(249.0 * ' || k || ')'))
        WHEN 'code_execution_result' THEN jsonb_build_object('type', 'code_execution_result', 'call_id', 'c_' || i.id || '_' || (k / 2),
            'result', (249.0 * k)::text)
        ELSE jsonb_build_object('type', 'model_output', 'content',
            jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'Refund ' || k || ' issued.')))
    END
FROM runs_interaction AS i
CROSS JOIN generate_series(0, %(steps)s - 1) AS k
CROSS JOIN LATERAL (SELECT (ARRAY['thought', 'function_call', 'function_result', 'google_search_call',
    'google_search_result', 'code_execution_call', 'code_execution_result', 'model_output', 'thought',
    'model_output'])[1 + k %% 10] AS type) AS kind
WHERE i.run_id = %(run)s
"""
# Runs and interactions whose counts differ from their rows, counted here (in one pass each).
CHECK_COUNTS_SQL = """
WITH counted AS (
    SELECT i.id, i.run_id, i.step_count, i.first_step, COUNT(s.id) AS steps,
        COALESCE(SUM(COUNT(s.id)) OVER (PARTITION BY i.run_id ORDER BY i.sequence
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
    FROM runs_interaction AS i LEFT JOIN runs_step AS s ON s.interaction_id = i.id
    GROUP BY i.id
)
SELECT 'interaction', id FROM counted WHERE step_count <> steps OR first_step <> before
UNION ALL
SELECT 'run', r.id FROM runs_run AS r
LEFT JOIN (SELECT run_id, COUNT(*) AS interactions, SUM(steps) AS steps FROM counted GROUP BY run_id) AS c
    ON c.run_id = r.id
WHERE r.interaction_count <> COALESCE(c.interactions, 0) OR r.step_count <> COALESCE(c.steps, 0)
"""
SEED_ARTIFACTS_SQL = """
INSERT INTO runs_artifact (interaction_id, kind, media_type, content, size_bytes, created_at)
SELECT id, 'usage', 'application/json', usage::text, length(usage::text), finished_at
FROM runs_interaction WHERE run_id = %(run)s
"""


def seed(user) -> None:
    """Empty the runs tables and seed the runs of ``RUNS``."""
    import json
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from runs.models import Run

    print("Seeding:", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE runs_run RESTART IDENTITY CASCADE")
        for interactions, steps in RUNS:
            started_at = time.perf_counter()
            started = timezone.now() - timedelta(days=2)
            run = Run.objects.create(
                model="gemini-3-flash-preview", input=label(interactions, steps), input_text=label(interactions, steps),
                input_preview=label(interactions, steps), status=Run.Status.COMPLETED, created_by=user,
                output_text="All refunds are issued.", total_tokens=USAGE["total_tokens"] * interactions,
                created_at=started, finished_at=started + timedelta(seconds=interactions + 60),
                duration_ms=(interactions + 60) * 1000,
                interaction_count=interactions, step_count=interactions * steps,
                usage={field: value * interactions for field, value in USAGE.items()},
            )
            values = {"run": run.pk, "n": interactions, "steps": steps, "started": started, "usage": json.dumps(USAGE)}
            cursor.execute(SEED_INTERACTIONS_SQL, values)
            cursor.execute(SEED_STEPS_SQL, values)
            cursor.execute(SEED_ARTIFACTS_SQL, values)
            print(f"  {label(interactions, steps)}: {time.perf_counter() - started_at:.1f} s", flush=True)
        # The counts seeded above, against the rows: a page reads them and never counts.
        cursor.execute(CHECK_COUNTS_SQL)
        wrong = cursor.fetchall()
        assert not wrong, f"seeded counts that do not match the rows: {wrong}"
        cursor.execute("ANALYZE runs_run, runs_interaction, runs_step, runs_artifact")


def plan_indexes(statements: list[str]) -> str:
    """The indexes (and sequential scans) the plans of ``statements`` use on the runs tables."""
    import json

    from django.db import connection

    found = []

    def walk(node):
        relation = node.get("Relation Name", "")
        if node.get("Index Name"):
            found.append(node["Index Name"])
        elif relation.startswith("runs_") and node["Node Type"] == "Seq Scan":
            found.append(f"SEQ SCAN {relation}")
        for child in node.get("Plans", []):
            walk(child)

    with connection.cursor() as cursor:
        for sql in statements:
            if "runs_" not in sql or not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0]
            walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    return ", ".join(name for name in dict.fromkeys(found) if "pkey" not in name and "session" not in name)


def measure(client, url: str, headers: dict, repeat: int) -> dict:
    """Median server time of ``url`` (ms) over ``repeat`` requests after one warm-up, its query
    count and the indexes its statements use."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get(url, headers=headers).status_code == 200, url
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    with CaptureQueriesContext(connection) as queries:
        client.get(url, headers=headers)
    statements = [query["sql"] for query in queries.captured_queries]
    return {"ms": statistics.median(times), "queries": len(statements), "indexes": plan_indexes(statements)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="requests per measurement (default 15)")
    parser.add_argument("--keep", action="store_true", help="keep the database for the next invocation")
    args = parser.parse_args()
    begun = time.perf_counter()

    ensure_database(DATABASE_URL)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from runs.models import Interaction, Run

    assert not settings.DEBUG, "Measure with DEBUG off (DJANGO_DEBUG unset)."
    call_command("migrate", verbosity=0)
    user = User.objects.get_or_create(username=USERNAME, defaults={"email": f"{USERNAME}@example.com"})[0]
    wanted = sorted(label(*spec) for spec in RUNS)
    if sorted(Run.objects.values_list("input_preview", flat=True)) != wanted:
        seed(user)
    else:
        print(f"{DATABASE_URL.rsplit('/', 1)[1]}: reusing the runs seeded earlier.")

    client = Client()
    client.force_login(user)
    floor_url = reference_url()
    floor = measure(client, floor_url, {}, args.repeat)

    def chunk(run: Run, first: int) -> tuple[str, dict]:
        # The card the client asks to start from: the first interaction starting at or after ``first``.
        sequence = (Interaction.objects.filter(run=run, first_step__gte=first).order_by("first_step", "sequence")
                    .values_list("sequence", flat=True).first())
        sequence = run.interaction_count if sequence is None else sequence
        return f"{run.get_absolute_url()}?from={first}&i={sequence}", {"HX-Request": "true", "HX-Target": "timeline-more"}

    rows = []
    for run in Run.objects.order_by("step_count", "interaction_count"):
        total = run.step_count
        middle = total // 2 // 100 * 100
        end = (total - 1) // 100 * 100
        requests = [
            ("first paint", run.get_absolute_url(), {}),
            ("header refresh", run.get_absolute_url(), {"HX-Request": "true", "HX-Target": "run-header"}),
            ("chunk at step 100", *chunk(run, 100)),
            (f"chunk at step {middle:,}", *chunk(run, middle)),
            (f"chunk at step {end:,} (end)", *chunk(run, end)),
        ]
        for name, url, headers in requests:
            result = measure(client, url, headers, args.repeat)
            rows.append((result["ms"], run.input_preview, name, result))
            print(".", end="", flush=True)
    print()

    print(f"\nRun detail, medians of {args.repeat} requests (ms of server time: Django's test client, "
          f"signed in). Target: {TARGET_MS} ms. Floor (a signed-in request rendering nothing): "
          f"{floor['ms']:.1f} ms, {floor['queries']} queries.")
    header = f"  {'run':<28} {'request':<28} {'ms':>7} {'× floor':>7} {'queries':>7} {'target':>6}  indexes"
    print(header)
    print("  " + "-" * (len(header) + 40))
    for ms, run_label, name, result in sorted(rows, key=lambda row: -row[0]):
        print(f"  {run_label:<28} {name:<28} {ms:>7.1f} {ms / floor['ms']:>7.1f} {result['queries']:>7} "
              f"{'ok' if ms < TARGET_MS else 'OVER':>6}  {result['indexes']}")
    worst = max(rows, key=lambda row: row[0])
    print(f"\n  Worst: {worst[2]} of {worst[1]}, {worst[0]:.1f} ms ({worst[0] / floor['ms']:.1f}× the floor); "
          f"{'every request under' if worst[0] < TARGET_MS else 'OVER'} {TARGET_MS} ms.")

    from django.db import connections

    connections.close_all()
    if not args.keep:
        drop_database(DATABASE_URL)
    print(f"\nDone in {time.perf_counter() - begun:.0f} s.")


if __name__ == "__main__":
    main()
