"""The run list's indexes for every filter and sort order (see Run.Meta.indexes).

Every equality filter (status, model, agent, who started the run) gets an index in each sort
order, so a page of a value whose runs sit at the far end of the order (runs waiting for approval
have no duration, and few tokens) starts at its cursor instead of walking the whole order. The
tool filter gets a trigram index (PostgreSQL only, like the full-text index of migration 0002):
``LIKE '%,name,%'`` on a rare tool reads that tool's runs only.
"""

import importlib

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

PostgreSQLOnly = importlib.import_module("runs.migrations.0002_run_search_and_sorts").PostgreSQLOnly


class Migration(migrations.Migration):
    dependencies = [("runs", "0006_role_groups")]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["status", "-duration_ms", "-id"], name="run_status_duration_idx"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["status", "-total_tokens", "-id"], name="run_status_tokens_idx"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["model", "-duration_ms", "-id"], name="run_model_duration_idx"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["model", "-total_tokens", "-id"], name="run_model_tokens_idx"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=models.Q(("agent", ""), _negated=True), fields=["agent", "-duration_ms", "-id"],
                name="run_agent_duration_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=models.Q(("agent", ""), _negated=True), fields=["agent", "-total_tokens", "-id"],
                name="run_agent_tokens_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["created_by", "-duration_ms", "-id"], name="run_creator_duration_idx"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["created_by", "-total_tokens", "-id"], name="run_creator_tokens_idx"),
        ),
        PostgreSQLOnly(TrigramExtension()),
        PostgreSQLOnly(
            migrations.AddIndex(
                model_name="run",
                index=django.contrib.postgres.indexes.GinIndex(
                    fields=["tool_names"], name="run_tool_names_idx", opclasses=["gin_trgm_ops"],
                ),
            )
        ),
        # Statistics for the planner on the new indexes (and the trigram one) at once.
        PostgreSQLOnly(migrations.RunSQL("ANALYZE runs_run", migrations.RunSQL.noop)),
    ]
