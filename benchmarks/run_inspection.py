"""Benchmark: the run list at 1,000,000 runs, and the detail page of a run of 5,000 steps.

Seeds PostgreSQL with a million runs (server-side ``INSERT … SELECT FROM generate_series``, the
list's indexes rebuilt afterwards) and one run of 5,000 steps over 25 interactions, then takes
pages through Django's full request stack (the test ``Client``, signed in) and prints, as medians
over repeated requests:

- for each list page (first page, a cursor ~500k runs deep, filters, search, sorts): the server
  time, the *floor* (the SQL statements that request ran, re-run alone through a raw cursor:
  execute + fetchall), their ratio (target: within 3x), the query count (target: the same on
  every page, whatever the data) and the indexes the list query's plan uses;
- for scale, the same figures for a signed-in request that renders nothing: Django's own cost
  of a request (middleware, session and user queries), which every page carries;
- the first paint of the 5,000-step run's detail page (target: 150 ms).

    .venv/bin/python benchmarks/run_inspection.py [--keep] [--repeat 15] [--rows 1000000]

With ``--keep`` the database is left in place and the next invocation reuses it (it seeds again
only when the number of runs differs); without it the database is dropped at the end.

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/handoff_bench_runs, created
if missing).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_runs")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost"
# Persistent connections, as deployed: a page does not pay for a new connection.
os.environ["HANDOFF_CONN_MAX_AGE"] = "600"

BIG_RUN_INPUT = "Benchmark: the run of 5,000 steps (25 interactions of 200)."
USERNAMES = ("bench-alice", "bench-bob", "bench-carol", "bench-dave")

# Values the seeded runs draw from. Topics share words so that searches match a few percent of
# the table, as a real team's runs would.
MODELS = [
    "gemini-3-flash-preview", "gemini-3-flash-preview", "gemini-3-flash-preview",
    "gemini-2.5-flash", "gemini-2.5-flash", "gemini-2.5-flash",
    "gemini-3-pro-preview", "gemini-3-pro-preview", "gemini-2.5-pro", "gemini-2.5-flash-lite",
]
AGENTS = ["deep-research-pro-preview-12-2025", "support-triage-agent"]
TOPICS = [
    "My order arrived with a cracked headband, I want a refund",
    "Refund request: the blender stopped working after two days",
    "Where is my parcel? Tracking has not moved since Monday",
    "Please change the delivery address for my last order",
    "The invoice shows the wrong VAT number, can you reissue it",
    "Cancel my subscription before the next billing date",
    "I was charged twice for the same order, refund the duplicate",
    "Summarize the latest research on solid-state batteries",
    "Compare three CRM vendors on pricing and data export",
    "Write a polite reply to a customer asking about warranty terms",
    "Translate the return policy into German and French",
    "Which of our warehouses ships fastest to Lisbon",
    "Delete my account and all personal data (GDPR request)",
    "Explain the error in this Python traceback from the nightly job",
    "The headphones are missing a cable, send a replacement",
    "Draft a product description for the new espresso grinder",
    "List orders over 500 euros shipped last week",
    "Customer says the package was damaged in transit, photos attached",
    "Is the discount code SPRING24 still valid for outlet items",
    "Plan a research report on heat pumps in cold climates",
]
REPLIES = [
    "I have issued a refund of the full amount; it will reach your card in 3-5 days.",
    "Your parcel is with the carrier and should arrive tomorrow.",
    "The address is updated for every order that has not shipped yet.",
    "Here is a corrected invoice with the right VAT number.",
    "Your subscription is cancelled; you keep access until the end of the period.",
    "Report: solid-state batteries promise higher energy density but face manufacturing hurdles.",
    "All three vendors export CSV; only one offers an API without an extra fee.",
    "A replacement cable is on its way, no need to return anything.",
    "The code is valid until the end of the month, except on outlet items.",
    "The warranty covers manufacturing defects for two years from delivery.",
]
ERRORS = [
    "429 RESOURCE_EXHAUSTED: quota exceeded for model\nRetry-After: 30",
    "500 INTERNAL: the model failed to produce a response",
    "function issue_refund raised TimeoutError: payments API did not answer in 10 s\nTraceback (most recent call last): ...",
    "400 INVALID_ARGUMENT: tool declaration send_email has an invalid schema",
    "budget_exceeded: the interaction used more tokens than allowed",
    "Outcome unknown: the worker died while the request was under way",
]
TOOL_SETS = ["", ",lookup_order,", ",lookup_order,issue_refund,", ",send_email,",
             ",lookup_order,issue_refund,send_email,", ",delete_account,lookup_order,"]


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Timer:
    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.started = time.perf_counter()
        print(f"  {self.label}…", end="", flush=True)

    def __exit__(self, *exc):
        print(f" {time.perf_counter() - self.started:.1f} s", flush=True)


SEED_RUNS_SQL = """
INSERT INTO runs_run (
    model, agent, input, input_text, input_preview, tools, tool_names, background, system_instruction,
    status, error, output_text, total_tokens, duration_ms, created_by_id, created_at, finished_at
)
SELECT
    CASE WHEN is_agent THEN '' ELSE (%(models)s::text[])[1 + floor(r_target * %(n_models)s)::int] END,
    CASE WHEN is_agent THEN (%(agents)s::text[])[1 + floor(r_target * %(n_agents)s)::int] ELSE '' END,
    to_jsonb(input_text), input_text, left(input_text, 300), '[]'::jsonb,
    (%(tool_sets)s::text[])[1 + floor(r_tools * %(n_tool_sets)s)::int],
    is_agent, '',
    status,
    CASE WHEN status = 'failed' THEN (%(errors)s::text[])[1 + floor(r_text * %(n_errors)s)::int] ELSE '' END,
    CASE WHEN status = 'completed' THEN (%(replies)s::text[])[1 + floor(r_text * %(n_replies)s)::int] ELSE '' END,
    CASE WHEN final THEN floor(r_tokens * r_tokens * 250000)::int ELSE floor(r_tokens * 3000)::int END,
    duration_ms,
    CASE WHEN r_user < 0.1 THEN NULL ELSE (%(users)s::int[])[1 + floor(r_user * %(n_users)s)::int] END,
    created_at,
    CASE WHEN final THEN created_at + duration_ms * interval '1 millisecond' END
FROM (
    SELECT *,
        status IN ('completed', 'failed', 'cancelled') AS final,
        CASE WHEN status IN ('completed', 'failed', 'cancelled')
             THEN 200 + floor(r_duration * r_duration * r_duration * 1800000)::bigint END AS duration_ms
    FROM (
        SELECT
            i,
            -- Newest last (ids follow time, as in production), ~2.6 s apart over a month.
            date_trunc('milliseconds', now() - (%(n)s - i) * interval '2.6 seconds' - random() * interval '2 seconds') AS created_at,
            random() < 0.1 AS is_agent,
            -- Only the newest runs are still queued or running; a run can wait for a reviewer
            -- for days.
            CASE
                WHEN i > %(n)s - 300 AND r_status < 0.3 THEN 'running'
                WHEN i > %(n)s - 300 AND r_status < 0.4 THEN 'queued'
                WHEN r_outcome < 0.01 THEN 'waiting_for_approval'
                WHEN r_outcome < 0.11 THEN 'failed'
                WHEN r_outcome < 0.14 THEN 'cancelled'
                ELSE 'completed'
            END AS status,
            (%(topics)s::text[])[1 + floor(random() * %(n_topics)s)::int] || ' (order A-' || (100000 + i) || ').' AS input_text,
            random() AS r_target, random() AS r_tools, random() AS r_text, random() AS r_tokens,
            random() AS r_user, random() AS r_duration
        FROM (SELECT i, random() AS r_status, random() AS r_outcome FROM generate_series(1, %(n)s) AS i) AS numbers
        OFFSET 0
    ) AS drawn
    OFFSET 0
) AS run
"""


def seed(rows: int, users) -> None:
    """Empty the runs tables and seed ``rows`` runs plus the 5,000-step run."""
    from django.db import connection

    print(f"Seeding {rows:,} runs and the 5,000-step run:", flush=True)
    with connection.cursor() as cursor:
        with Timer("emptying the tables"):
            cursor.execute("TRUNCATE runs_run RESTART IDENTITY CASCADE")
        # Bulk loads are faster with the secondary indexes built once afterwards.
        cursor.execute("""
            SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = 'runs_run'::regclass AND NOT x.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        """)
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        with Timer(f"inserting {rows:,} runs (generate_series)"):
            cursor.execute("SELECT setseed(0.42)")
            cursor.execute(SEED_RUNS_SQL, {
                "n": rows, "models": MODELS, "n_models": len(MODELS), "agents": AGENTS, "n_agents": len(AGENTS),
                "topics": TOPICS, "n_topics": len(TOPICS), "replies": REPLIES, "n_replies": len(REPLIES),
                "errors": ERRORS, "n_errors": len(ERRORS), "tool_sets": TOOL_SETS, "n_tool_sets": len(TOOL_SETS),
                "users": [u.pk for u in users], "n_users": len(users),
            })
        with Timer(f"building {len(indexes)} indexes (including the full-text GIN index)"):
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                cursor.execute(definition)
    with Timer("pending approvals for the runs waiting for one"):
        seed_pending_approvals()
    with Timer("the run of 5,000 steps"):
        seed_big_run(users[0])
    with Timer("VACUUM ANALYZE"):
        with connection.cursor() as cursor:
            for table in ("runs_run", "runs_interaction", "runs_step", "runs_artifact", "approvals_approval"):
                cursor.execute(f"VACUUM ANALYZE {table}")


def seed_pending_approvals() -> None:
    """One requires_action interaction and one pending approval per waiting run (~1%)."""
    from approvals.models import Approval, arguments_hash
    from runs.models import Interaction, Run

    waiting = list(Run.objects.filter(status=Run.Status.WAITING_FOR_APPROVAL).values_list("pk", "created_at"))
    arguments = {"order_id": "A-1003", "amount": 249.0, "reason": "Damaged in transit"}
    interactions = Interaction.objects.bulk_create(
        [Interaction(run_id=pk, sequence=0, interaction_id=f"v1_bench_wait_{pk}", request={"input": "…"},
                     dispatch=Interaction.Dispatch.SENT, status=Interaction.Status.REQUIRES_ACTION,
                     created_at=created, sent_at=created, finished_at=created) for pk, created in waiting],
        batch_size=5000,
    )
    Approval.objects.bulk_create(
        [Approval(run_id=i.run_id, interaction=i, call_id=f"call_{i.run_id}", function_name="issue_refund",
                  arguments=arguments, arguments_hash=arguments_hash(arguments), status=Approval.Status.PENDING,
                  policy="Refunds above $200 need a reviewer ($249.00).", created_at=i.created_at)
         for i in interactions],
        batch_size=5000,
    )


def big_run_steps(interaction: int) -> list[dict]:
    """200 steps of mixed types for one interaction of the big run, as the API types them."""
    steps = []
    for k in range(20):
        call = f"i{interaction}_{k}"
        steps += [
            {"type": "thought", "signature": "EuYBCuMBAdHtim9" + call,
             "summary": [{"type": "text", "text": f"Step {k}: check the order, then decide on the refund."}]},
            {"type": "function_call", "id": f"fc_{call}", "name": "lookup_order", "arguments": {"order_id": f"A-{1000 + k}"}},
            {"type": "function_result", "call_id": f"fc_{call}", "name": "lookup_order",
             "result": {"order_id": f"A-{1000 + k}", "status": "delivered", "total": 249.0, "items": ["headphones"]}},
            {"type": "google_search_call", "id": f"gs_{call}", "arguments": {"queries": [f"headphone return policy {k}"]}},
            {"type": "google_search_result", "call_id": f"gs_{call}",
             "result": [{"title": "Returns and refunds", "url": "https://example.com/returns", "snippet": "Refunds within 30 days."}]},
            {"type": "code_execution_call", "id": f"ce_{call}",
             "arguments": {"language": "python", "code": f"total = 249.0 * {k}\nprint(round(total * 0.2, 2))"}},
            {"type": "code_execution_result", "call_id": f"ce_{call}", "result": f"{round(249.0 * k * 0.2, 2)}\n"},
            {"type": "function_call", "id": f"rf_{call}", "name": "issue_refund",
             "arguments": {"order_id": f"A-{1000 + k}", "amount": 49.0, "reason": "Damaged"}},
            {"type": "function_result", "call_id": f"rf_{call}", "name": "issue_refund",
             "result": {"refund_id": f"R-{call}", "status": "issued"}},
            {"type": "model_output", "content": [{"type": "text", "text": f"Refund {k} issued for order A-{1000 + k}."}]},
        ]
    return steps


def seed_big_run(user) -> None:
    """A completed run of 25 interactions of 200 steps each, its calls settled by policy."""
    from datetime import timedelta

    from django.utils import timezone

    from approvals.models import Approval, arguments_hash
    from runs.models import Artifact, Interaction, Run, Step

    started = timezone.now() - timedelta(minutes=30)
    tools = [{"type": "function", "name": name, "description": name, "parameters": {"type": "object"}}
             for name in ("lookup_order", "issue_refund")]
    run = Run.objects.create(
        model="gemini-3-flash-preview", input=BIG_RUN_INPUT, input_text=BIG_RUN_INPUT, input_preview=BIG_RUN_INPUT,
        tools=tools, tool_names=",lookup_order,issue_refund,", status=Run.Status.COMPLETED,
        output_text="All 500 refunds are issued.", total_tokens=1_234_567, created_by=user,
        created_at=started, finished_at=started + timedelta(minutes=25), duration_ms=25 * 60 * 1000,
    )
    interactions = Interaction.objects.bulk_create([
        Interaction(
            run=run, sequence=n, interaction_id=f"v1_bench_big_{n:02d}",
            previous_interaction_id=f"v1_bench_big_{n - 1:02d}" if n else "",
            request={"model": run.model, "input": BIG_RUN_INPUT if not n else "function results", "tools": tools},
            dispatch=Interaction.Dispatch.SENT, status=Interaction.Status.COMPLETED if n == 24 else Interaction.Status.REQUIRES_ACTION,
            output_text="" if n < 24 else run.output_text,
            usage={"total_input_tokens": 40000, "total_output_tokens": 6000, "total_thought_tokens": 3000,
                   "total_cached_tokens": 1000, "total_tool_use_tokens": 400, "total_tokens": 49383},
            sdk_version="3.3.0", created_at=started + timedelta(minutes=n),
            sent_at=started + timedelta(minutes=n), finished_at=started + timedelta(minutes=n, seconds=40),
        )
        for n in range(25)
    ])
    steps, approvals, artifacts = [], [], []
    for interaction in interactions:
        for index, data in enumerate(big_run_steps(interaction.sequence)):
            kind = data["type"]
            steps.append(Step(interaction=interaction, index=index, type=kind, name=data.get("name", ""),
                              call_id=data.get("id") if kind.endswith("_call") else data.get("call_id", ""), data=data))
            if kind == "function_call":
                approvals.append(Approval(
                    run=run, interaction=interaction, call_id=data["id"], function_name=data["name"],
                    arguments=data["arguments"], arguments_hash=arguments_hash(data["arguments"]),
                    status=Approval.Status.AUTO, policy="Runs at once.", created_at=interaction.created_at,
                    result={"status": "ok"}, settled_at=interaction.finished_at,
                ))
        artifacts.append(Artifact(interaction=interaction, kind=Artifact.Kind.USAGE, content='{"total_tokens": 49383}', size_bytes=23))
    Step.objects.bulk_create(steps, batch_size=2500)
    Approval.objects.bulk_create(approvals, batch_size=2500)
    Artifact.objects.bulk_create(artifacts)


def plan_indexes(sql: str) -> str:
    """The scan nodes of the plan PostgreSQL runs ``sql`` with, e.g. "Index Scan run_created_idx"."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    scans = []

    def walk(node):
        if "Relation Name" in node and node["Relation Name"] == "runs_run" or node.get("Index Name", "").startswith("run"):
            scans.append(f"{node['Node Type']} {node.get('Index Name', '')}".strip())
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return ", ".join(dict.fromkeys(scans))


def reference_url() -> str:
    """Route ``/_bench/signed-in/`` (in this process only) to a view that needs a signed-in user
    and returns an empty page: Django's own cost of a request (middleware, session, user) with
    nothing of Handoff's in it, to read the list's figures against."""
    from django.contrib.auth.decorators import login_required
    from django.http import HttpResponse
    from django.urls import clear_url_caches, path

    from dashboard import urls

    @login_required
    def signed_in(request):
        return HttpResponse(b"")

    urls.urlpatterns.append(path("_bench/signed-in/", signed_in))
    clear_url_caches()
    return "/_bench/signed-in/"


def measure(client, url: str, repeat: int) -> dict:
    """Median server time of ``url`` over ``repeat`` requests (after one warm-up), the median time
    of the same SQL statements run alone, the query count and the list query's plan."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    server = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        server.append(time.perf_counter() - started)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    statements = [query["sql"] for query in queries.captured_queries]
    list_sql = [sql for sql in statements if 'FROM "runs_run"' in sql and "LIMIT" in sql]
    floor, list_floor = [], []
    with connection.cursor() as cursor:
        for _ in range(repeat + 1):
            started = time.perf_counter()
            for sql in statements:
                # Exactly the text the driver sent (values bound client-side): no parameters.
                before = time.perf_counter()
                cursor.execute(sql)
                cursor.fetchall()
                if list_sql and sql == list_sql[-1]:
                    list_floor.append(time.perf_counter() - before)
            floor.append(time.perf_counter() - started)
    return {
        "server": statistics.median(server) * 1000,
        "floor": statistics.median(floor[1:]) * 1000,
        "list": statistics.median(list_floor[1:]) * 1000 if list_floor else 0.0,
        "queries": len(statements),
        "plan": plan_indexes(list_sql[-1]) if list_sql else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="runs to seed (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=15, help="requests per page (default 15)")
    parser.add_argument("--keep", action="store_true", help="keep the database for the next invocation")
    args = parser.parse_args()
    begun = time.perf_counter()

    ensure_database(DATABASE_URL)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from runs import views
    from runs.models import Run

    assert not settings.DEBUG, "Measure with DEBUG off (DJANGO_DEBUG unset)."
    call_command("migrate", verbosity=0)
    users = [User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})[0]
             for name in USERNAMES]
    expected = args.rows + 1
    count = Run.objects.count()
    if count != expected:
        print(f"{DATABASE_URL.rsplit('/', 1)[1]}: {count:,} runs, {expected:,} wanted.")
        seed(args.rows, users)
    else:
        print(f"{DATABASE_URL.rsplit('/', 1)[1]}: reusing the {count:,} runs seeded earlier.")
    big_run = Run.objects.get(input_preview=BIG_RUN_INPUT)

    client = Client()
    client.force_login(users[0])
    # What a page open on the list asks for every 2 s while a run on it is active: the table alone.
    refresh = Client(headers={"HX-Request": "true"})
    refresh.force_login(users[0])

    def deep_cursor(sort: str, order: tuple[str, str], where: str = "") -> str:
        # Setup only: OFFSET finds a position ~500k runs down; the page itself is a keyset seek.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM runs_run {where} ORDER BY {order[0]} DESC, {order[1]} DESC "
                           f"OFFSET {args.rows // 2} LIMIT 1")
            run = Run.objects.get(pk=cursor.fetchone()[0])
        return views._cursor_of(run, sort)

    pages = [
        ("first page", "/runs/"),
        ("live refresh of the first page", "/runs/", refresh),
        (f"cursor ~{args.rows // 2:,} runs deep", "/runs/?after=" + deep_cursor("started", ("created_at", "id"))),
        ("status=failed", "/runs/?status=failed"),
        ("model=gemini-2.5-pro", "/runs/?model=gemini-2.5-pro"),
        ("q=refunds (a word in 22% of runs)", "/runs/?q=refunds"),
        ("sort=tokens", "/runs/?sort=tokens"),
        (f"q=A-{100000 + args.rows * 2 // 3} (an order number)", f"/runs/?q=A-{100000 + args.rows * 2 // 3}"),
        # Beyond the required six: the other sorts, filters and a deep page of another order.
        (f"sort=tokens, ~{args.rows // 2:,} deep", "/runs/?sort=tokens&after=" + deep_cursor("tokens", ("total_tokens", "id"))),
        ("sort=duration", "/runs/?sort=duration"),
        ("q=refund damaged&status=completed", "/runs/?q=refund+damaged&status=completed"),
        ("pending=1", "/runs/?pending=1"),
        ("tool=send_email", "/runs/?tool=send_email"),
        ("by=bench-bob", "/runs/?by=bench-bob"),
    ]
    print(f"\nRun list, {Run.objects.count():,} runs, medians of {args.repeat} requests. server: Django's "
          f"test client, signed in; floor: every statement that request ran, re-run alone "
          f"(session, user, navigation badge, the list); list SQL: the list query alone (ms).")
    header = (f"  {'page':<36} {'server ms':>9} {'floor ms':>9} {'ratio':>6} {'queries':>7} "
              f"{'list SQL':>8}  plan of the list query")
    print(header)
    print("  " + "-" * (len(header) + 10))
    results = []
    for label, url, *other in pages:
        result = measure(other[0] if other else client, url, args.repeat)
        results.append(result)
        print(f"  {label:<36} {result['server']:>9.1f} {result['floor']:>9.1f} "
              f"{result['server'] / result['floor']:>5.1f}x {result['queries']:>7} {result['list']:>8.1f}  "
              f"{result['plan']}", flush=True)
    worst = max(r["server"] / r["floor"] for r in results)
    counts = sorted({r["queries"] for r in results})
    print(f"  worst ratio {worst:.1f}x (target within 3x); queries per page: {', '.join(map(str, counts))}")
    reference = measure(client, reference_url(), args.repeat)
    print(f"  for scale, a signed-in request that renders nothing (Django's session and user queries "
          f"only): server {reference['server']:.1f} ms, floor {reference['floor']:.1f} ms, "
          f"{reference['server'] / reference['floor']:.1f}x")
    for (label, url, *_), result in zip(pages, results):
        if "q=" in url and "run_search_idx" not in result["plan"]:
            print(f"  {label}: PostgreSQL walks the sort's index, matching each run's stored document until 51 match, rather "
                  f"than read run_search_idx (it estimates the matches common enough for that).")

    print(f"\nRun detail, run #{big_run.pk} ({big_run.interactions.count()} interactions, "
          f"{sum(i.steps.count() for i in big_run.interactions.all()):,} steps), first page:")
    try:
        detail = measure(client, big_run.get_absolute_url(), args.repeat)
    except Exception as exc:  # the detail page is another part of the work: report, do not stop
        print(f"  failed: {exc!r}")
    else:
        print(f"  server {detail['server']:.1f} ms (target 150 ms), SQL alone {detail['floor']:.1f} ms, "
              f"{detail['queries']} queries")

    if not args.keep:
        connection.close()
        drop_database(DATABASE_URL)
        print("\nDatabase dropped (--keep to reuse it next time).")
    print(f"Total {time.perf_counter() - begun:.0f} s.")


if __name__ == "__main__":
    main()
