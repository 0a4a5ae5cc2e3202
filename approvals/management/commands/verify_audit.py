"""``python manage.py verify_audit``: exit 0 when the audit hash chain holds; otherwise exit 1
and name the first event that does not verify (product.md, "Contracts")."""

from django.core.management.base import BaseCommand

from approvals import audit


class Command(BaseCommand):
    help = "Verify the audit log's hash chain."

    def handle(self, *args, **options):
        audit.seal()  # events committed but not sealed yet are sealed first
        verification = audit.verify_and_record()
        if verification.ok:
            self.stdout.write(verification.message)
            return
        self.stderr.write(f"AUDIT CHAIN BROKEN: {verification.message}")
        raise SystemExit(1)
