"""``python manage.py verify_bundle FILE.zip``: check an evidence bundle on its own (checksums
and each audit event against its chain link); exit 1 naming every problem."""

from django.core.management.base import BaseCommand

from approvals import audit


class Command(BaseCommand):
    help = "Verify an evidence bundle."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, **options):
        problems = audit.verify_bundle(options["path"])
        if not problems:
            self.stdout.write(f"{options['path']}: verified (every checksum and chain link matches).")
            return
        for problem in problems:
            self.stderr.write(problem)
        raise SystemExit(1)
