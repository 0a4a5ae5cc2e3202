"""The start-time index of the run list carries the other sort keys (duration, tokens): a date
range sorted by either reads its runs from the index alone and sorts them there, and fetches the
rows of one page only (see ``RunQuerySet.page`` in runs/models.py, ``dated``)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0009_run_pending_approvals"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="run", name="run_created_idx"),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["-created_at", "-id"], include=("duration_ms", "total_tokens"),
                               name="run_created_idx"),
        ),
    ]
