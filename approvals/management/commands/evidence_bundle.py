"""``python manage.py evidence_bundle RUN_ID [--output FILE]``: write a run's evidence bundle
(a ZIP with a SHA256SUMS manifest signed by the audit signing key; see
``approvals.evidence.write_bundle``)."""

from django.core.management.base import BaseCommand, CommandError

from approvals import evidence
from audit import exports, keys
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
        path = options["output"] or f"run-{run.pk}-evidence.zip"
        try:
            manifest = evidence.write_bundle(run, path)
            key = keys.fingerprint(keys.signing_key().public_key())
        except keys.SigningKeyError as exc:
            raise CommandError(str(exc))
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror}.")
        exports.record_export(actor="system:evidence_bundle", fmt="zip", filters={"run_id": run.pk}, obj=run)
        self.stdout.write(f"{path}: {len(manifest)} files, signed by key {key}")
