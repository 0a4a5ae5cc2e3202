from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # The "api" cache's table (settings.CACHES): createcachetable skips a table that exists.
    call_command("createcachetable", "handoff_api_cache", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):

    dependencies = [("dashboard", "0002_idempotent_requests")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
