"""``Run.created_by_system``: who started a run no user started (``system:cli``), so pages name
the system rather than showing no one. Runs started so before this field are found by the audit
event that recorded their start (``run.started`` by ``system:cli``); a run whose creator was
deleted later keeps a blank, as it should."""

from django.db import migrations, models


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
        migrations.AddField(
            model_name="run",
            name="created_by_system",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(name_the_system, migrations.RunPython.noop, elidable=True),
    ]
