"""``python manage.py prune_payloads --older-than DAYS [--dry-run]``: delete raw request and
response payloads older than DAYS; steps, decisions and the audit chain stay. Audited."""

from django.core.management.base import BaseCommand, CommandError

from runs import retention


class Command(BaseCommand):
    help = "Prune raw payload artifacts past a retention period."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="Count only.")

    def handle(self, *args, **options):
        if options["older_than"] < 0:
            raise CommandError("--older-than takes a number of days, 0 or more.")
        count = retention.prune_raw_payloads(older_than_days=options["older_than"], dry_run=options["dry_run"])
        self.stdout.write(f"{'Would delete' if options['dry_run'] else 'Deleted'} {count} raw payload artifacts.")
