"""``Run.pending_approvals``, and the run list's indexes of runs that have some, in each sort
order. The count is kept by a trigger of approvals (its migration 0009, which also fills it)."""

import importlib

from django.db import migrations, models
from django.db.models import Q

PostgreSQLOnly = importlib.import_module("runs.migrations.0002_run_search_and_sorts").PostgreSQLOnly
FIELD = models.PositiveIntegerField(default=0, db_default=0, editable=False)


def add_column_on_sqlite(apps, schema_editor):
    # SQLite adds a NOT NULL column with a default by rebuilding the table, which recreates the
    # full-text index SQLite cannot have (migration 0002); ALTER TABLE ADD COLUMN needs no rebuild.
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("ALTER TABLE runs_run ADD COLUMN pending_approvals integer unsigned NOT NULL "
                              "DEFAULT 0 CHECK (pending_approvals >= 0)")


def pending_index(field: str, name: str) -> migrations.AddIndex:
    return migrations.AddIndex(
        model_name="run",
        index=models.Index(fields=[f"-{field}", "-id"], name=name, condition=Q(pending_approvals__gt=0)),
    )


class Migration(migrations.Migration):
    dependencies = [("runs", "0008_run_counts")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddField(model_name="run", name="pending_approvals", field=FIELD)],
            database_operations=[
                PostgreSQLOnly(migrations.AddField(model_name="run", name="pending_approvals", field=FIELD)),
                migrations.RunPython(add_column_on_sqlite, migrations.RunPython.noop),
            ],
        ),
        pending_index("created_at", "run_pending_created_idx"),
        pending_index("duration_ms", "run_pending_duration_idx"),
        pending_index("total_tokens", "run_pending_tokens_idx"),
    ]
