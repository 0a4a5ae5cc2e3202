"""``Run.created_by_system``: who started a run no user started (``system:cli``), so pages name
the system rather than showing no one. Runs started so before this field are found by the audit
event that recorded their start (``run.started`` by ``system:cli``); a run whose creator was
deleted later keeps a blank, as it should."""

import importlib

from django.db import migrations, models

PostgreSQLOnly = importlib.import_module("runs.migrations.0002_run_search_and_sorts").PostgreSQLOnly
FIELD = models.CharField(blank=True, default="", db_default="", max_length=64)


def add_column_on_sqlite(apps, schema_editor):
    # As migration 0009: SQLite would add a NOT NULL column with a default by rebuilding the
    # table, which breaks the triggers that name it; ALTER TABLE ADD COLUMN needs no rebuild.
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("ALTER TABLE runs_run ADD COLUMN created_by_system varchar(64) NOT NULL DEFAULT ''")


def name_the_system(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    started = AuditEvent.objects.filter(verb="run.started", actor="system:cli").values("run_id")
    Run.objects.filter(created_by__isnull=True, pk__in=started).update(created_by_system="system:cli")


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0010_run_created_idx_sort_keys"),
        # The audit log, to find the runs the system started before this field.
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddField(model_name="run", name="created_by_system", field=FIELD)],
            database_operations=[
                PostgreSQLOnly(migrations.AddField(model_name="run", name="created_by_system", field=FIELD)),
                migrations.RunPython(add_column_on_sqlite, migrations.RunPython.noop),
            ],
        ),
        migrations.RunPython(name_the_system, migrations.RunPython.noop, elidable=True),
    ]
