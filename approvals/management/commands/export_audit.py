"""``python manage.py export_audit --format csv|jsonl [--since ISO8601] [--until ISO8601]``

Streams the audit log to standard output, oldest first.
"""

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils import timezone

from approvals.audit import export_lines
from approvals.models import AuditEvent


def _moment(value: str, option: str):
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 date and time.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, datetime.timezone.utc)


class Command(BaseCommand):
    help = "Stream the audit log as CSV or JSONL."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
        parser.add_argument("--since", help="Only events at or after this time (ISO 8601).")
        parser.add_argument("--until", help="Only events before this time (ISO 8601).")

    def handle(self, *args, **options):
        events = AuditEvent.objects.all()
        if options["since"]:
            events = events.filter(created_at__gte=_moment(options["since"], "--since"))
        if options["until"]:
            events = events.filter(created_at__lt=_moment(options["until"], "--until"))
        for line in export_lines(events, options["format"]):
            self.stdout.write(line, ending="")
