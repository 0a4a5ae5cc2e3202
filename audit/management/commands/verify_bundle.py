"""``python manage.py verify_bundle FILE.zip [--public-key FILE | --fingerprint HEX]``: check an
evidence bundle on its own (its signature, every checksum, each audit event against its chain
link); exit 1 naming every problem. Names the key that signed it: without a pin that is only the
key the bundle carries, which anyone could have put there."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import bundles, keys


class Command(BaseCommand):
    help = "Verify an evidence bundle: signature, checksums, audit chain links."

    def add_arguments(self, parser):
        parser.add_argument("path")
        pin = parser.add_mutually_exclusive_group()
        pin.add_argument("--public-key", metavar="FILE",
                         help="PEM public key (or the signing key file) the bundle must be signed with.")
        pin.add_argument("--fingerprint", metavar="HEX",
                         help="SHA-256 fingerprint (64 hex digits) of the key the bundle must be signed with.")

    def handle(self, *args, **options):
        pins = {}
        if options["public_key"]:
            try:
                pins["public_key"] = keys.load_public_key(Path(options["public_key"]).read_bytes())
            except OSError as exc:
                raise CommandError(f"Cannot read --public-key {options['public_key']}: {exc.strerror}.")
            except ValueError as exc:
                raise CommandError(f"--public-key {options['public_key']} is {exc}.")
        if options["fingerprint"]:
            value = options["fingerprint"].strip().lower()
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise CommandError("--fingerprint takes the 64 hex digits verify_audit prints.")
            pins["expected_fingerprint"] = value
        result = bundles.check_bundle(options["path"], **pins)
        if result.problems:
            for problem in result.problems:
                self.stderr.write(problem)
            raise SystemExit(1)
        self.stdout.write(f"{options['path']}: verified (signature, every checksum and chain link match; no file "
                          f"missing or unlisted).")
        if result.pinned:
            self.stdout.write(f"Signed by key {result.fingerprint}, the pinned key.")
        else:
            self.stdout.write(f"Signed by key {result.fingerprint}, the key the bundle carries. Anyone can sign with a "
                              f"key of their own: compare this fingerprint with the one verify_audit prints where the "
                              f"bundle was made, or pin it with --public-key FILE or --fingerprint HEX.")
