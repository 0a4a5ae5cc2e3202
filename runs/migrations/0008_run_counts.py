"""Counts the run page reads instead of counting: ``Interaction.step_count`` and ``first_step``
(the run-wide position of its first step), ``Run.interaction_count``, ``Run.step_count`` and
``Run.usage`` (its interactions' usage summed field by field), kept from now on by
runs.execution as interactions and steps are recorded, and filled here for the rows already
there. The run's counts are added as NULL, filled, then made NOT NULL: a run without them
cannot exist, so the page has no counting path (on SQLite, see the operations). Plus the
indexes the page's timeline and timing chart read through.

The counts are three UPDATEs that PostgreSQL and SQLite (3.33 and later: UPDATE … FROM) both
run; the usage sums are read in Python, as JSON, with the rule runs.execution applies to each
recorded interaction (a value that is not a whole number of tokens counts as 0).
"""

import importlib

import django.db.models.expressions
from django.db import migrations, models

PostgreSQLOnly = importlib.import_module("runs.migrations.0002_run_search_and_sorts").PostgreSQLOnly

USAGE_FIELDS = ("total_input_tokens", "total_output_tokens", "total_thought_tokens", "total_cached_tokens",
                "total_tool_use_tokens", "total_tokens")

STEP_COUNTS = """
UPDATE runs_interaction SET step_count = (
    SELECT COUNT(*) FROM runs_step WHERE runs_step.interaction_id = runs_interaction.id
)
"""
# The steps of the interactions before each one in its run: a running sum, in one pass.
FIRST_STEPS = """
UPDATE runs_interaction SET first_step = positions.first_step
FROM (
    SELECT id, SUM(step_count) OVER (PARTITION BY run_id ORDER BY sequence) - step_count AS first_step
    FROM runs_interaction
) AS positions
WHERE runs_interaction.id = positions.id
"""
RUN_COUNTS = """
UPDATE runs_run SET
    interaction_count = (SELECT COUNT(*) FROM runs_interaction WHERE runs_interaction.run_id = runs_run.id),
    step_count = (SELECT COALESCE(SUM(step_count), 0) FROM runs_interaction WHERE runs_interaction.run_id = runs_run.id),
    usage = COALESCE(usage, '{}')
"""
BATCH = 2000


def whole_tokens(value):
    """A token count read out of usage JSON, or 0 when it is not a whole number above 0."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def fill_counts(apps, schema_editor):
    """Fill the counts of every existing run and interaction. Safe to run again."""
    Interaction = apps.get_model("runs", "Interaction")
    Run = apps.get_model("runs", "Run")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(STEP_COUNTS)
        cursor.execute(FIRST_STEPS)
        cursor.execute(RUN_COUNTS)
    sums: dict[int, dict[str, int]] = {}
    rows = Interaction.objects.filter(usage__isnull=False).order_by("run_id").values_list("run_id", "usage")
    for run_id, usage in rows.iterator(chunk_size=BATCH):
        if not isinstance(usage, dict):
            continue
        if run_id not in sums and len(sums) >= BATCH:
            _save_usage(Run, sums)
        summed = sums.setdefault(run_id, dict.fromkeys(USAGE_FIELDS, 0))
        for field in USAGE_FIELDS:
            summed[field] += whole_tokens(usage.get(field))
    _save_usage(Run, sums)


def _save_usage(Run, sums):
    runs = [Run(pk=pk, usage=usage) for pk, usage in sums.items()]
    Run.objects.bulk_update(runs, ["usage"], batch_size=BATCH)
    sums.clear()


class Migration(migrations.Migration):

    dependencies = [("runs", "0007_run_list_indexes")]

    operations = [
        migrations.AddField(
            model_name="interaction",
            name="first_step",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="interaction",
            name="step_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="run",
            name="interaction_count",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="step_count",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="usage",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill_counts, migrations.RunPython.noop),
        # NOT NULL in PostgreSQL. SQLite changes a column's NULL-ness only by rebuilding the table,
        # and a rebuild of runs_run would recreate the PostgreSQL-only search index (migration
        # 0002): there the columns stay nullable, filled all the same, and Django writes their
        # defaults on every insert.
        PostgreSQLOnly(migrations.AlterField(
            model_name="run",
            name="interaction_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        )),
        PostgreSQLOnly(migrations.AlterField(
            model_name="run",
            name="step_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        )),
        PostgreSQLOnly(migrations.AlterField(
            model_name="run",
            name="usage",
            field=models.JSONField(default=dict, editable=False),
        )),
        migrations.AddIndex(
            model_name="interaction",
            index=models.Index(fields=["run", "first_step", "sequence"], name="interaction_run_first_step_idx"),
        ),
        migrations.AddIndex(
            model_name="interaction",
            index=models.Index(
                models.F("run"),
                models.OrderBy(
                    models.ExpressionWrapper(
                        django.db.models.expressions.CombinedExpression(models.F("finished_at"), "-", models.F("sent_at")),
                        output_field=models.DurationField(),
                    ),
                    descending=True,
                ),
                models.F("sequence"),
                condition=models.Q(("finished_at__isnull", False), ("sent_at__isnull", False)),
                name="interaction_run_took_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="interaction",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False), ("sent_at__isnull", False)),
                fields=["run", "finished_at"], name="interaction_run_finished_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="interaction",
            index=models.Index(
                condition=models.Q(("sent_at__isnull", True), ("finished_at__isnull", True), _connector="OR"),
                fields=["run", "sequence"], name="interaction_run_open_idx",
            ),
        ),
    ]
