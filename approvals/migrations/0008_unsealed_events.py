import django.db.models.deletion
from django.db import migrations, models

# The backlog at the time of migrating: every event that has no link yet.
QUEUE_BACKLOG = """
INSERT INTO approvals_unsealedevent (event_id)
SELECT e.id FROM approvals_auditevent e
WHERE NOT EXISTS (SELECT 1 FROM approvals_chainlink l WHERE l.event_id = e.id)
"""


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0007_audit_checkpoints'),
    ]

    operations = [
        migrations.CreateModel(
            name='UnsealedEvent',
            fields=[
                ('event', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='approvals.auditevent')),
            ],
        ),
        migrations.AddField(
            model_name='chainverification',
            name='links_total',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunSQL(QUEUE_BACKLOG, migrations.RunSQL.noop),
    ]
