"""Queue every new audit event for sealing with a trigger, in the event's own statement: one
round trip less per event than an INSERT from the application, and no insert path (bulk, SQL)
that bypasses the queue. Disabling the trigger (an owner's right) leaves new events without a
link, which ``verify`` reports."""

from django.db import migrations

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION handoff_queue_unsealed_event() RETURNS trigger AS $$
    BEGIN
        INSERT INTO approvals_unsealedevent (event_id) VALUES (NEW.id);
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER audit_event_unsealed AFTER INSERT ON approvals_auditevent
    FOR EACH ROW EXECUTE FUNCTION handoff_queue_unsealed_event()
    """,
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS audit_event_unsealed ON approvals_auditevent",
    "DROP FUNCTION IF EXISTS handoff_queue_unsealed_event()",
]
SQLITE = [
    """
    CREATE TRIGGER audit_event_unsealed AFTER INSERT ON approvals_auditevent
    BEGIN INSERT INTO approvals_unsealedevent (event_id) VALUES (NEW.id); END
    """,
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS audit_event_unsealed"]


def create(apps, schema_editor):
    for sql in POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    for sql in POSTGRESQL_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0009_pending_approvals_count")]

    operations = [migrations.RunPython(create, drop)]
