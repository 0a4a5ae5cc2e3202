"""Benchmark: exporting the audit log.

Seeds PostgreSQL with 1,000,000 audit events (server-side SQL), then streams them through the
same code the page and ``export_audit`` use (``audit.exports.export_lines``) to a null sink,
as CSV and as JSONL, and prints events per second (median of the repeats) and peak Python
memory (tracemalloc, a separate pass) for a tenth of the log and for all of it: flat memory
means the two peaks are about the same.

    .venv/bin/python benchmarks/audit_export.py [--events 1000000] [--repeats 3]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/handoff_bench_audit,
created if missing).
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common import ensure_database  # noqa: E402 (after sys.path is set)
DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_audit")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

SEED_SQL = """
INSERT INTO approvals_auditevent
    (actor, verb, object_type, object_id, run_id, tool, before, after, request_id, created_at)
SELECT
    (ARRAY['alice', 'dave', 'erin', 'system:worker', 'system:policy'])[1 + n %% 5],
    (ARRAY['approval.approved', 'approval.rejected', 'interaction.recorded', 'run.status_changed',
           'function_result.sent'])[1 + n %% 5],
    'approval', (n %% 50000)::text, n / 10,
    CASE WHEN n %% 5 < 2 THEN 'issue_refund' ELSE '' END,
    jsonb_build_object('status', 'pending'),
    jsonb_build_object('status', 'approved', 'call_id', 'call_' || n, 'function_name', 'issue_refund',
                       'arguments', jsonb_build_object('order_id', 'A-' || n, 'amount', (n %% 2000) + 0.5,
                                                       'reason', 'Item arrived damaged, customer sent photos')),
    md5(n::text), now() - make_interval(secs => %s - n)
FROM generate_series(1, %s) AS n
"""


class NullSink:
    def __init__(self):
        self.bytes = 0

    def write(self, text: str) -> None:
        self.bytes += len(text)


def export(events, fmt: str) -> tuple[int, int]:
    """Stream ``events`` to a null sink; returns (events exported, characters written)."""
    from audit.exports import export_chunks

    sink, rows = NullSink(), 0
    for text, count in export_chunks(events, fmt):
        sink.write(text)
        rows += count
    return rows, sink.bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ensure_database(DATABASE_URL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from audit.models import AuditEvent

    call_command("migrate", verbosity=0)
    count = AuditEvent.objects.count()
    if count != args.events:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")  # the append-only trigger
            cursor.execute("TRUNCATE approvals_auditevent, approvals_chainlink")
            cursor.execute(SEED_SQL, [args.events, args.events])
            cursor.execute("SET session_replication_role = DEFAULT")
            cursor.execute("ANALYZE approvals_auditevent")
        print(f"seeded {args.events:,} events in {time.monotonic() - started:.1f} s")

    first_id = AuditEvent.objects.order_by("id").values_list("id", flat=True).first()
    tenth = AuditEvent.objects.filter(id__lt=first_id + args.events // 10)
    everything = AuditEvent.objects.all()
    print(f"{'format':<6} {'events':>10} {'median s':>9} {'events/s':>10} {'MB out':>8} {'peak MiB':>9}")
    for fmt in ("csv", "jsonl"):
        for label, events, repeats in (("10%", tenth, args.repeats), ("100%", everything, args.repeats)):
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                rows, size = export(events, fmt)
                times.append(time.perf_counter() - started)
            tracemalloc.start()
            export(events, fmt)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            median = statistics.median(times)
            data_rows = rows
            print(f"{fmt:<6} {data_rows:>10,} {median:>9.2f} {data_rows / median:>10,.0f} {size / 1e6:>8.1f} "
                  f"{peak / 2**20:>9.1f}   ({label} of the log)")


if __name__ == "__main__":
    main()
