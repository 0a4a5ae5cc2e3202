"""``python manage.py verify_audit``: exit 0 when the audit hash chain holds, checked against
every signed checkpoint; otherwise exit 1 and name the first event that does not verify
(docs/contracts.md, "Contracts"). Prints the fingerprint of the signing key it checked with."""

from django.core.management.base import BaseCommand

from audit import chain, keys, log


class Command(BaseCommand):
    help = "Verify the audit log's hash chain against its signed checkpoints, then sign a new checkpoint."

    def handle(self, *args, **options):
        log.seal()  # events committed but not sealed yet are sealed first
        verification = chain.verify_and_record()
        try:
            key = f"Signing key {keys.fingerprint(keys.signing_key().public_key())} ({keys.signing_key_path()})."
        except keys.SigningKeyError as exc:
            key = str(exc)
        if verification.ok:
            self.stdout.write(verification.message)
            self.stdout.write(key)
            return
        self.stderr.write(f"AUDIT CHAIN BROKEN: {verification.message}")
        self.stderr.write(key)
        raise SystemExit(1)
