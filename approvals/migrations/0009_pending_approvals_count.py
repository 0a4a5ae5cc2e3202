"""Keep ``Run.pending_approvals`` with a trigger on the approvals' table: every insert, delete
or change of status (or of run) of an approval adds or takes one from its run's count, whatever
path wrote it (a decision, an expiry, a cancel, the admin, SQL). Every path that changes an
approval's status holds its run's lock already (the lock order of runs.execution), so the
trigger's update of the run waits on no one. Then the counts of existing runs are filled."""

from django.db import migrations

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION handoff_count_pending_approvals() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.status = NEW.status AND OLD.run_id = NEW.run_id THEN
            RETURN NULL;
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'pending' THEN
            UPDATE runs_run SET pending_approvals = pending_approvals - 1 WHERE id = OLD.run_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'pending' THEN
            UPDATE runs_run SET pending_approvals = pending_approvals + 1 WHERE id = NEW.run_id;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER approval_pending_count
    AFTER INSERT OR DELETE OR UPDATE OF status, run_id ON approvals_approval
    FOR EACH ROW EXECUTE FUNCTION handoff_count_pending_approvals()
    """,
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS approval_pending_count ON approvals_approval",
    "DROP FUNCTION IF EXISTS handoff_count_pending_approvals()",
]
SQLITE = [
    """
    CREATE TRIGGER approval_pending_insert AFTER INSERT ON approvals_approval
    WHEN NEW.status = 'pending'
    BEGIN UPDATE runs_run SET pending_approvals = pending_approvals + 1 WHERE id = NEW.run_id; END
    """,
    """
    CREATE TRIGGER approval_pending_delete AFTER DELETE ON approvals_approval
    WHEN OLD.status = 'pending'
    BEGIN UPDATE runs_run SET pending_approvals = pending_approvals - 1 WHERE id = OLD.run_id; END
    """,
    """
    CREATE TRIGGER approval_pending_update AFTER UPDATE OF status, run_id ON approvals_approval
    WHEN OLD.status IS NOT NEW.status OR OLD.run_id IS NOT NEW.run_id
    BEGIN
        UPDATE runs_run SET pending_approvals = pending_approvals - 1
        WHERE id = OLD.run_id AND OLD.status = 'pending';
        UPDATE runs_run SET pending_approvals = pending_approvals + 1
        WHERE id = NEW.run_id AND NEW.status = 'pending';
    END
    """,
]
SQLITE_REVERSE = [f"DROP TRIGGER IF EXISTS approval_pending_{op}" for op in ("insert", "delete", "update")]
FILL = """
UPDATE runs_run SET pending_approvals = (
    SELECT count(*) FROM approvals_approval a WHERE a.run_id = runs_run.id AND a.status = 'pending'
)
WHERE id IN (SELECT run_id FROM approvals_approval WHERE status = 'pending')
"""


def create(apps, schema_editor):
    statements = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    for sql in statements + [FILL]:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    statements = POSTGRESQL_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0008_unsealed_events"),
        ("runs", "0009_run_pending_approvals"),
    ]

    operations = [migrations.RunPython(create, drop)]
