"""Full-text search reads a stored document, ``runs_run.search_vector``, kept by a trigger.

Why: migration 0003 gave PostgreSQL the real cost of parsing a document (~20 µs a run), so it
walks the sort's index only for common words and uses run_search_idx for the rest. Two words
that are each common but seldom appear together defeat that. PostgreSQL multiplies their
frequencies (22% x 5% ~ 1%), walks, and parses every run it meets until 51 match. For
"refund damaged" on 1,000,000 runs that is ~30,000 runs and 200 ms. Matching a stored document
costs ~1 µs, so the same walk takes ~10 ms.

The planner must still choose as before: walk for common words, use the index for rare ones.
Matching a stored column is cheap, so it would now walk for a word it has no statistics for
(which it puts at 0.5% of runs) and read the whole table when the word is in no run: 0.5 s.
So searches read the column through run_search_document(search_vector). That function returns
its argument, and its declared COST is a planning weight: it keeps 0003's choice of plans, while
the work per run is now a function call, not a parse.

It is PARALLEL RESTRICTED: a walk that stops after a few hundred runs should not pay ~5 ms to
start parallel workers.

The trigger computes the document on INSERT, and on UPDATE when input_text or output_text
changes, or when the document written differs from the stored one. So a save() that writes
back the value it read costs no parse, and no write leaves a stale document.

PostgreSQL only, like migrations 0002 and 0003. The column exists everywhere (NULL on SQLite),
and SQLite searches with a substring match.
"""

import importlib

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models
from django.db import migrations

PostgreSQLOnly = importlib.import_module("runs.migrations.0002_run_search_and_sorts").PostgreSQLOnly

DOCUMENT = "to_tsvector('english'::regconfig, coalesce({0}input_text, '') || ' ' || coalesce({0}output_text, ''))"

CREATE_TRIGGER = f"""
CREATE FUNCTION run_search_vector_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.search_vector := {DOCUMENT.format("NEW.")};
    ELSIF NEW.input_text IS DISTINCT FROM OLD.input_text
       OR NEW.output_text IS DISTINCT FROM OLD.output_text
       OR NEW.search_vector IS DISTINCT FROM OLD.search_vector THEN
        NEW.search_vector := {DOCUMENT.format("NEW.")};
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER run_search_vector BEFORE INSERT OR UPDATE ON runs_run
    FOR EACH ROW EXECUTE FUNCTION run_search_vector_update();
"""
DROP_TRIGGER = """
DROP TRIGGER IF EXISTS run_search_vector ON runs_run;
DROP FUNCTION IF EXISTS run_search_vector_update();
"""
BACKFILL = f"UPDATE runs_run SET search_vector = {DOCUMENT.format('')}"

CREATE_FUNCTION = """
CREATE FUNCTION run_search_document(document tsvector) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL RESTRICTED COST 10000 AS $$
BEGIN
    RETURN document;
END
$$
"""
DROP_FUNCTION = "DROP FUNCTION IF EXISTS run_search_document(tsvector)"
# Migration 0003's function, which parsed the two texts on every call.
OLD_FUNCTION = importlib.import_module("runs.migrations.0003_run_search_document")


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0003_run_search_document"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="search_vector",
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        PostgreSQLOnly(migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)),
        PostgreSQLOnly(migrations.RunSQL(CREATE_TRIGGER, DROP_TRIGGER)),
        PostgreSQLOnly(migrations.RemoveIndex(model_name="run", name="run_search_idx")),
        PostgreSQLOnly(migrations.RunSQL(OLD_FUNCTION.DROP_FUNCTION, OLD_FUNCTION.CREATE_FUNCTION)),
        PostgreSQLOnly(migrations.RunSQL(CREATE_FUNCTION, DROP_FUNCTION)),
        PostgreSQLOnly(
            migrations.AddIndex(
                model_name="run",
                index=django.contrib.postgres.indexes.GinIndex(
                    django.db.models.Func(
                        django.db.models.F("search_vector"),
                        function="run_search_document",
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                    name="run_search_idx",
                ),
            )
        ),
        # Statistics for the new index expression (see 0003: the plan depends on them).
        PostgreSQLOnly(migrations.RunSQL("ANALYZE runs_run", migrations.RunSQL.noop)),
    ]
