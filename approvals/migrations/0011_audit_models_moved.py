"""The audit log's models moved to the audit app (its migration 0001): approvals forgets them
here, and their tables and rows stay as they are (``SeparateDatabaseAndState`` with no database
operation). Their content types follow them, so permissions and admin history stay attached."""

from django.db import migrations

MOVED = ["auditcheckpoint", "auditevent", "auditexport", "chainlink", "chainverification", "unsealedevent"]


def content_types_to_audit(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    # A content type the audit app already has (made by an earlier post-migrate) wins; the stale
    # approvals one is then removed with what pointed at it, as Django's remove_stale_contenttypes does.
    taken = set(ContentType.objects.filter(app_label="audit", model__in=MOVED).values_list("model", flat=True))
    ContentType.objects.filter(app_label="approvals", model__in=taken).delete()
    ContentType.objects.filter(app_label="approvals", model__in=MOVED).update(app_label="audit")


def content_types_to_approvals(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="audit", model__in=MOVED).update(app_label="approvals")


class Migration(migrations.Migration):

    dependencies = [
        ("approvals", "0010_queue_unsealed_events"),
        ("audit", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="auditevent", name="actor_user"),
                migrations.RemoveField(model_name="chainlink", name="event"),
                migrations.RemoveField(model_name="unsealedevent", name="event"),
                migrations.RemoveField(model_name="auditexport", name="requested_by"),
                migrations.DeleteModel(name="AuditCheckpoint"),
                migrations.DeleteModel(name="ChainVerification"),
                migrations.DeleteModel(name="ChainLink"),
                migrations.DeleteModel(name="AuditEvent"),
                migrations.DeleteModel(name="UnsealedEvent"),
                migrations.DeleteModel(name="AuditExport"),
            ],
        ),
        migrations.RunPython(content_types_to_audit, content_types_to_approvals),
    ]
