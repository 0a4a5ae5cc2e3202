from django.db import migrations

# The groups that give the roles of runs.roles.ROLE_GROUPS which earlier migrations did not
# create (approvals' 0002 made reviewers and auditors). Named here, not imported: a migration
# keeps the names it was written with.
NEW_GROUPS = ("engineers", "finance-leads", "admins")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in NEW_GROUPS:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0005_interaction_requested_by"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
