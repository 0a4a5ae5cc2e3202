"""The audit log's models, moved from approvals (whose migrations 0001–0010 made their tables):
the tables keep their names and their rows (``Meta.db_table``), so this migration only tells
Django's state that the models are audit's now (``SeparateDatabaseAndState``; approvals 0011
removes them from approvals' state), and points their content types here.

The database triggers that guard the log move with the models: approvals 0004, 0007 and 0010
first made them, when the tables were approvals'; from here on they are defined here (the same
SQL, made again: idempotent, so a database that has them keeps them, unchanged), and any later
change to them belongs to audit's migrations.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# PostgreSQL: the row triggers refuse UPDATE and DELETE on events, links and checkpoints;
# TRUNCATE fires no row trigger, so each table also has a statement-level BEFORE TRUNCATE one.
# A new event is queued for sealing (approvals_unsealedevent) by a trigger in its own statement.
POSTGRESQL = """
CREATE OR REPLACE FUNCTION handoff_refuse_audit_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'The audit log is append-only: %% on %% refused.', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION handoff_queue_unsealed_event() RETURNS trigger AS $$
BEGIN
    INSERT INTO approvals_unsealedevent (event_id) VALUES (NEW.id);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_event_append_only ON approvals_auditevent;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON approvals_auditevent
    FOR EACH ROW EXECUTE FUNCTION handoff_refuse_audit_change();
DROP TRIGGER IF EXISTS chain_link_append_only ON approvals_chainlink;
CREATE TRIGGER chain_link_append_only BEFORE UPDATE OR DELETE ON approvals_chainlink
    FOR EACH ROW EXECUTE FUNCTION handoff_refuse_audit_change();
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON approvals_auditcheckpoint;
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON approvals_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION handoff_refuse_audit_change();
DROP TRIGGER IF EXISTS audit_event_no_truncate ON approvals_auditevent;
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON approvals_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION handoff_refuse_audit_change();
DROP TRIGGER IF EXISTS chain_link_no_truncate ON approvals_chainlink;
CREATE TRIGGER chain_link_no_truncate BEFORE TRUNCATE ON approvals_chainlink
    FOR EACH STATEMENT EXECUTE FUNCTION handoff_refuse_audit_change();
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON approvals_auditcheckpoint;
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON approvals_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION handoff_refuse_audit_change();
DROP TRIGGER IF EXISTS audit_event_unsealed ON approvals_auditevent;
CREATE TRIGGER audit_event_unsealed AFTER INSERT ON approvals_auditevent
    FOR EACH ROW EXECUTE FUNCTION handoff_queue_unsealed_event();
"""
# SQLite (the embedded first run): only the queue; the models refuse updates and deletes.
SQLITE = [
    "DROP TRIGGER IF EXISTS audit_event_unsealed",
    """
    CREATE TRIGGER audit_event_unsealed AFTER INSERT ON approvals_auditevent
    BEGIN INSERT INTO approvals_unsealedevent (event_id) VALUES (NEW.id); END
    """,
]


def install_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=())
    else:
        for sql in SQLITE:
            schema_editor.execute(sql)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("approvals", "0010_queue_unsealed_events"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='AuditCheckpoint',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('number', models.PositiveBigIntegerField(unique=True)),
                    ('position', models.PositiveBigIntegerField()),
                    ('hash', models.CharField(max_length=64)),
                    ('event_id', models.BigIntegerField(blank=True, null=True)),
                    ('prev_signature', models.CharField(blank=True, max_length=128)),
                    ('key_fingerprint', models.CharField(help_text='SHA-256 (hex) of the raw Ed25519 public key.', max_length=64)),
                    ('signature', models.CharField(max_length=128)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ],
                options={
                    'db_table': 'approvals_auditcheckpoint',
                    'ordering': ['number'],
                },
            ),
            migrations.CreateModel(
                name='AuditEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('actor', models.CharField(help_text='A username, or system:<component>.', max_length=150)),
                    ('verb', models.CharField(max_length=64)),
                    ('object_type', models.CharField(max_length=64)),
                    ('object_id', models.CharField(max_length=64)),
                    ('run_id', models.BigIntegerField(blank=True, null=True)),
                    ('tool', models.CharField(blank=True, max_length=200)),
                    ('before', models.JSONField(blank=True, null=True)),
                    ('after', models.JSONField(blank=True, null=True)),
                    ('request_id', models.CharField(blank=True, max_length=64)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('actor_user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'approvals_auditevent',
                    'ordering': ['id'],
                },
            ),
            migrations.CreateModel(
                name='ChainVerification',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('verified_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('ok', models.BooleanField(null=True)),
                    ('links_checked', models.PositiveBigIntegerField(default=0)),
                    ('links_total', models.PositiveBigIntegerField(default=0)),
                    ('first_bad_event_id', models.BigIntegerField(blank=True, null=True)),
                    ('message', models.TextField()),
                    ('duration_ms', models.PositiveIntegerField(default=0)),
                    ('requested_by', models.CharField(blank=True, max_length=150)),
                ],
                options={
                    'db_table': 'approvals_chainverification',
                    'ordering': ['-verified_at', '-id'],
                    'get_latest_by': 'verified_at',
                },
            ),
            migrations.CreateModel(
                name='UnsealedEvent',
                fields=[
                    ('event', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='audit.auditevent')),
                ],
                options={
                    'db_table': 'approvals_unsealedevent',
                },
            ),
            migrations.CreateModel(
                name='AuditExport',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('format', models.CharField(max_length=8)),
                    ('filters', models.JSONField(default=dict)),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=16)),
                    ('rows_total', models.PositiveBigIntegerField(default=0)),
                    ('rows_done', models.PositiveBigIntegerField(default=0)),
                    ('file_name', models.CharField(blank=True, max_length=200)),
                    ('sha256', models.CharField(blank=True, max_length=64)),
                    ('error', models.TextField(blank=True)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('requested_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'approvals_auditexport',
                    'ordering': ['-created_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='ChainLink',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('position', models.PositiveBigIntegerField(unique=True)),
                    ('prev_hash', models.CharField(max_length=64)),
                    ('hash', models.CharField(max_length=64)),
                    ('sealed_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('event', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='link', to='audit.auditevent')),
                ],
                options={
                    'db_table': 'approvals_chainlink',
                    'ordering': ['position'],
                },
            ),
            migrations.AddIndex(
                model_name='auditevent',
                index=models.Index(fields=['created_at'], name='audit_created_idx'),
            ),
            migrations.AddIndex(
                model_name='auditevent',
                index=models.Index(fields=['run_id', 'id'], name='audit_run_idx'),
            ),
            migrations.AddIndex(
                model_name='auditevent',
                index=models.Index(fields=['verb', 'id'], name='audit_verb_idx'),
            ),
            migrations.AddIndex(
                model_name='auditevent',
                index=models.Index(fields=['actor', 'id'], name='audit_actor_idx'),
            ),
            migrations.AddIndex(
                model_name='auditevent',
                index=models.Index(fields=['tool', 'id'], name='audit_tool_idx'),
            ),
            ],
            # Unapplied, the triggers stay: approvals' migrations made them first.
            database_operations=[migrations.RunPython(install_triggers, migrations.RunPython.noop)],
        ),
    ]
