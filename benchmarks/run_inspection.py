"""Benchmark: every page of the run list at 1,000,000 runs (or ``--runs 10000000``).

Seeds PostgreSQL with the runs (server-side ``INSERT … SELECT FROM generate_series``, the list's
indexes rebuilt afterwards, one pending approval per run waiting for one), then takes every
combination the list page offers through Django's full request stack (the test ``Client``,
signed in): each filter of ``RunFilterForm`` (every choice of a choice field, "has pending
approvals", and for the text and date fields values drawn from the seeded runs: the most and the
least common model, agent and tool, a user, a common word and an order number, a day, from a day,
to a day) and no filter, times each sort of ``RunFilterForm.SORTS``, times three positions: the
first page, the page after a cursor halfway down that filtered list, and the page before it.
It prints, worst first (by server time), as medians over repeated requests:

- the server time; the *floor* (the SQL statements that request ran, re-run alone through a raw
  cursor: execute + fetchall) and their ratio; the query count; the indexes of the list query's
  plan;
- how many combinations meet the target: under 30 ms of server time, and a query count that
  does not change with the data or the position: the same for every sort and cursor of a filter
  (a full-text search reads the statistics of its words once more than other pages, see
  ``runs.models.search_is_selective``);
- beside them, measured in the same run: a signed-in request that renders nothing, Django's own
  fixed cost of a request (middleware, session and user queries), which every page carries.

The run detail page is measured by ``benchmarks/run_detail.py``, with its own long run.

    .venv/bin/python benchmarks/run_inspection.py [--keep] [--repeat 15] [--runs 1000000]

``--rows`` is the same as ``--runs``. With ``--keep`` the database is left in place and the next
invocation reuses it (it seeds again only when the number of runs differs); without it the
database is dropped at the end.

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
from common import drop_database, ensure_database, reference_url  # noqa: E402 (after sys.path is set)

DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_runs")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost"
# Persistent connections, as deployed: a page does not pay for a new connection.
os.environ["HANDOFF_CONN_MAX_AGE"] = "600"

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
    status, error, output_text, total_tokens, duration_ms, created_by_id, created_at, finished_at,
    interaction_count, step_count, usage, pending_approvals
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
    CASE WHEN final THEN created_at + duration_ms * interval '1 millisecond' END,
    -- The counts the run page keeps: seed_pending_approvals gives each waiting run one
    -- interaction with no step (its approvals' trigger counts them in pending_approvals).
    CASE WHEN status = 'waiting_for_approval' THEN 1 ELSE 0 END, 0, '{}'::jsonb, 0
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
    """Empty the runs tables and seed ``rows`` runs."""
    from django.db import connection

    print(f"Seeding {rows:,} runs:", flush=True)
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


def plan_indexes(sql: str) -> str:
    """The scans of the plan PostgreSQL runs ``sql`` with, e.g. "Index Scan run_created_idx", each
    once, in plan order; the per-run count of pending approvals (the same on every page) left out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    scans = []

    def walk(node):
        if node.get("Subplan Name", "").startswith("SubPlan") and "approvals_approval" in json_text(node):
            return
        if "Index Name" in node or node.get("Node Type") == "Seq Scan":
            scans.append(f"{node['Node Type']} {node.get('Index Name', node.get('Relation Name', ''))}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return ", ".join(dict.fromkeys(scans))


def json_text(node: dict) -> str:
    import json

    return json.dumps(node)


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


def filters(runs, users) -> list[tuple[str, dict[str, str]]]:
    """Every filter the list's form offers, one at a time, as (label, query) pairs: each choice of
    a choice field, each boolean set, and for the text and date fields values taken from the
    seeded runs (the most and the least common where the data has several). The sort field is
    left out: ``combinations`` crosses these with each sort."""
    from django import forms
    from django.db.models import Count, Max, Min

    from runs.forms import RunFilterForm

    def common(field: str, exclude: str = "") -> list[str]:
        counted = runs.exclude(**{field: exclude}).values(field).annotate(n=Count("pk")).order_by("-n", field)
        values = [row[field] for row in counted]
        return list(dict.fromkeys([values[0], values[-1]])) if values else []

    tools = {}
    for names, n in runs.values_list("tool_names").annotate(n=Count("pk")):
        for name in filter(None, names.split(",")):
            tools[name] = tools.get(name, 0) + n
    by_count = sorted(tools, key=lambda name: (-tools[name], name))
    span = runs.aggregate(first=Min("created_at"), last=Max("created_at"))
    middle = (span["first"] + (span["last"] - span["first"]) / 2).date().isoformat()
    order_number = f"A-{100000 + runs.count() * 2 // 3}"
    values = {
        "q": ["refunds", order_number],
        "model": common("model", ""),
        "agent": common("agent", ""),
        "tool": list(dict.fromkeys([by_count[0], by_count[-1]])),
        "by": [users[1].username],
        "from": [middle],
        "to": [middle],
    }
    found = [("no filter", {})]
    for name, field in RunFilterForm.base_fields.items():
        if name == "sort":
            continue
        if isinstance(field, forms.ChoiceField):
            found += [(f"{name}={value}", {name: value}) for value, _ in field.choices if value]
        elif isinstance(field, forms.BooleanField):
            found.append((f"{name}=1", {name: "1"}))
        else:
            found += [(f"{name}={value}", {name: value}) for value in values[name]]
    # Both ends of the date range at once: a single day.
    found.append((f"from=to={middle}", {"from": middle, "to": middle}))
    return found


def combinations(runs, users) -> list[tuple[str, str]]:
    """(label, URL) of every filter × sort × position: the first page, the page after a cursor
    halfway down that filtered and sorted list, and the page before that cursor."""
    from urllib.parse import urlencode

    from django.http import QueryDict

    from runs.forms import RunFilterForm
    from runs.models import SORT_KEYS, Cursor, Run

    found = []
    for label, query in filters(runs, users):
        for sort in RunFilterForm.SORTS:
            params = {**query, **({"sort": sort} if sort != "started" else {})}
            form = RunFilterForm(QueryDict(urlencode(params)))
            assert form.is_valid(), (params, form.errors)
            key = SORT_KEYS[sort]
            # The runs the list pages through (RunQuerySet.page lists those with a sort key).
            listed = Run.objects.filtered(**form.filters()).filter(**{f"{key}__isnull": False})
            listed = listed.order_by(f"-{key}", "-pk").only(key)
            # Setup only: OFFSET finds the run halfway down (the page itself is a keyset seek).
            # An empty list gets the cursor halfway down the whole table in that order.
            middle = listed[listed.count() // 2: listed.count() // 2 + 1].first()
            if middle is None:
                middle = runs.order_by(f"-{key}", "-pk").only(key)[runs.count() // 2]
            cursor = str(Cursor.of(middle, sort))
            name = f"{label}, sort={sort}"
            url = "/runs/?" + urlencode(params)
            found.append((f"{name}, first page", url))
            found.append((f"{name}, after a deep cursor", url + ("&" if params else "") + urlencode({"after": cursor})))
            found.append((f"{name}, before a deep cursor", url + ("&" if params else "") + urlencode({"before": cursor})))
    return [(label, url.replace("/runs/?&", "/runs/?")) for label, url in found]


TARGET_MS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", "--rows", dest="runs", type=int, default=1_000_000,
                        help="runs to seed (default 1,000,000); --rows is the same")
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

    from runs.models import Run

    assert not settings.DEBUG, "Measure with DEBUG off (DJANGO_DEBUG unset)."
    call_command("migrate", verbosity=0)
    users = [User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})[0]
             for name in USERNAMES]
    count = Run.objects.count()
    if count != args.runs:
        print(f"{DATABASE_URL.rsplit('/', 1)[1]}: {count:,} runs, {args.runs:,} wanted.")
        seed(args.runs, users)
    else:
        print(f"{DATABASE_URL.rsplit('/', 1)[1]}: reusing the {count:,} runs seeded earlier.")

    client = Client()
    client.force_login(users[0])
    with Timer("finding the filters' values and a deep cursor for each filter and sort"):
        pages = combinations(Run.objects.all(), users)
    reference_page = reference_url()

    print(f"\nRun list, {count if count == args.runs else args.runs:,} runs, {len(pages)} pages, medians of "
          f"{args.repeat} requests (ms). server: Django's test client, signed in; floor: every statement "
          f"that request ran, re-run alone (session, user, navigation badge, the list).", flush=True)
    results = []
    for n, (label, url) in enumerate(pages, 1):
        results.append((label, url, measure(client, url, args.repeat)))
        if n % 20 == 0:
            print(f"  measured {n} of {len(pages)}…", flush=True)
    # Django's fixed cost, measured after the pages, with the same warm caches.
    reference = measure(client, reference_page, args.repeat)

    width = max(len(label) for label, _, _ in results)
    header = f"  {'page':<{width}} {'server ms':>9} {'floor ms':>9} {'ratio':>6} {'queries':>7}  indexes of the plan"
    print(header)
    print("  " + "-" * (len(header) + 20))
    results.sort(key=lambda item: -item[2]["server"])
    for label, url, result in results:
        print(f"  {label:<{width}} {result['server']:>9.1f} {result['floor']:>9.1f} "
              f"{result['server'] / result['floor']:>5.1f}x {result['queries']:>7}  {result['plan']}")
    counts, by_filter = {}, {}
    for label, _, result in results:
        counts[result["queries"]] = counts.get(result["queries"], 0) + 1
        by_filter.setdefault(label.split(", sort=")[0], set()).add(result["queries"])
    varying = sorted(name for name, seen in by_filter.items() if len(seen) > 1)
    meeting = [r for r in results if r[2]["server"] < TARGET_MS and r[0].split(", sort=")[0] not in varying]
    worst_label, worst_url, worst = results[0]
    print(f"\n  {len(meeting)} of {len(results)} pages meet the target (under {TARGET_MS} ms of server time, the "
          f"same query count on every sort and cursor of a filter; query counts seen: "
          f"{', '.join(f'{q} on {n}' for q, n in sorted(counts.items()))}; filters whose count varies: "
          f"{', '.join(varying) or 'none'}). "
          f"Worst: {worst_label} ({worst_url}), {worst['server']:.1f} ms, {worst['queries']} queries.")
    print(f"  Django's fixed cost, a signed-in request that renders nothing (session and user queries only): "
          f"server {reference['server']:.1f} ms, floor {reference['floor']:.1f} ms, {reference['queries']} queries.")

    if not args.keep:
        connection.close()
        drop_database(DATABASE_URL)
        print("\nDatabase dropped (--keep to reuse it next time).")
    print(f"Total {time.perf_counter() - begun:.0f} s.")


if __name__ == "__main__":
    main()
