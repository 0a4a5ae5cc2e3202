"""Full-text search through run_search_document(input_text, output_text), a PL/pgSQL function
with a realistic cost, and the GIN index rebuilt on it (same name, same document).

Why: parsing a document (to_tsvector) takes ~20 µs a run, yet PostgreSQL prices it at its default
COST 100, like 25 additions. For "newest first, 50 a page" it then prefers walking run_created_idx
and parsing every run it meets until 51 match, even for a word it expects in 0.5% of runs: for an
order number (one run in a million) that parsed the whole table, 8.5 s. Priced at COST 10000,
parsing dominates both plans and PostgreSQL compares them by how many documents each parses:
the walk 51 / selectivity of them, the GIN index its matches. It walks for common words (fast,
it stops at 51) and uses run_search_idx for everything rarer than about sqrt(51 / runs) (0.7%
of a million runs). PL/pgSQL because PostgreSQL inlines a SQL function, and its cost with it.

PostgreSQL only, like migration 0002: other databases search with a substring match.
"""

import importlib

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models
from django.db import migrations

PostgreSQLOnly = importlib.import_module("runs.migrations.0002_run_search_and_sorts").PostgreSQLOnly

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION run_search_document(input_text text, output_text text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 10000 AS $$
BEGIN
    RETURN to_tsvector('english'::regconfig, coalesce(input_text, '') || ' ' || coalesce(output_text, ''));
END
$$
"""
DROP_FUNCTION = "DROP FUNCTION IF EXISTS run_search_document(text, text)"


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0002_run_search_and_sorts"),
    ]

    operations = [
        PostgreSQLOnly(migrations.RunSQL(CREATE_FUNCTION, DROP_FUNCTION)),
        PostgreSQLOnly(migrations.RemoveIndex(model_name="run", name="run_search_idx")),
        PostgreSQLOnly(
            migrations.AddIndex(
                model_name="run",
                index=django.contrib.postgres.indexes.GinIndex(
                    django.db.models.Func(
                        django.db.models.F("input_text"), django.db.models.F("output_text"),
                        function="run_search_document",
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                    name="run_search_idx",
                ),
            )
        ),
        # The planner's statistics on an expression index come from ANALYZE; without them it
        # guesses every word's frequency, and autovacuum may not analyze a large table for long.
        PostgreSQLOnly(migrations.RunSQL("ANALYZE runs_run", migrations.RunSQL.noop)),
    ]
