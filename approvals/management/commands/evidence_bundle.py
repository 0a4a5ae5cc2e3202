"""``python manage.py evidence_bundle RUN_ID [--output FILE]``: write a run's evidence bundle
(a ZIP with a SHA256SUMS manifest signed by the audit signing key; see
``approvals.audit.evidence_bundle``)."""

from django.core.management.base import BaseCommand, CommandError

from approvals import audit
from runs.models import Run


class Command(BaseCommand):
    help = "Write the signed evidence bundle of one run."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument("--output", help="Path of the ZIP (default run-ID-evidence.zip).")

    def handle(self, *args, **options):
        try:
            run = Run.objects.get(pk=options["run_id"])
        except Run.DoesNotExist:
            raise CommandError(f"No run {options['run_id']}.")
        audit.seal()
        path = options["output"] or f"run-{run.pk}-evidence.zip"
        try:
            manifest = audit.evidence_bundle(run, path)
            key = audit.fingerprint(audit.signing_key().public_key())
        except audit.SigningKeyError as exc:
            raise CommandError(str(exc))
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror}.")
        audit.record_export(actor="system:evidence_bundle", fmt="zip", filters={"run_id": run.pk}, obj=run)
        self.stdout.write(f"{path}: {len(manifest)} files, signed by key {key}")
