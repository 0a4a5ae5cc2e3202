"""Evidence bundles: one run's record as a ZIP that verifies on its own, away from Handoff.

The format (its README, ``README.txt`` in every bundle, says how to check one by hand) and the
signature are the audit log's; what a run's bundle holds besides its audit events is gathered by
``approvals.evidence``, the layer that knows both runs and their approvals.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone

from audit.keys import fingerprint, load_public_key, public_key_pem, signing_key
from audit.canonical import canonical_json
from audit.models import AuditEvent

BUNDLE_README = """Handoff evidence bundle for run {run_id}, made {made_at}.

Contents
  run.json              the run: request, status, output, who started it
  interactions/N.json   each interaction of the run with its steps, in chain order
  artifacts/N-KIND.*    the artifacts kept for each interaction
  approvals.json        every function call, how policy settled it, each reviewer's decision
  audit_events.jsonl    the audit events of the run, each with its hash-chain link
  signing-key.pub       the public half of the Ed25519 key that signed this bundle
  SHA256SUMS            a SHA-256 checksum of every file above
  SHA256SUMS.sig        the Ed25519 signature of SHA256SUMS (64 bytes, raw)

Signed by key {fingerprint}
  (the SHA-256 of the raw 32-byte public key). A signature proves who signed only if you know
  the key: anyone can sign a forged bundle with a key of their own and ship that key inside.
  Compare this fingerprint with the one "python manage.py verify_audit" prints where the bundle
  was made, or keep that installation's public key and pin it (below).

Verify it on its own
  1. unzip the bundle and check the signature of SHA256SUMS, with the key you trust:
       openssl pkeyutl -verify -pubin -inkey signing-key.pub -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig
     ("Signature Verified Successfully"; give -inkey the public key you keep to pin it);
  2. sha256sum -c SHA256SUMS
     (every line must say OK, and no file other than SHA256SUMS and SHA256SUMS.sig may be
     present that the list does not name: nothing was changed, added or removed after signing);
  3. each line of audit_events.jsonl holds the event and its link; the link's hash must equal
     SHA-256( link.prev_hash + canonical(event) ), canonical being the event's JSON with keys
     sorted and no spaces (separators "," and ":"), UTF-8.
  python manage.py verify_bundle FILE.zip [--public-key FILE | --fingerprint HEX] does all three
  and names the key that signed.
"""
BUNDLE_SUMS, BUNDLE_SIGNATURE, BUNDLE_KEY = "SHA256SUMS", "SHA256SUMS.sig", "signing-key.pub"
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")


def json_bytes(value: Any) -> bytes:
    """``value`` as a bundle's JSON file: indented, keys sorted, UTF-8, a newline at the end
    (dates and other values JSON lacks as ``str``)."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


def write(*, run_id: int, files: dict[str, bytes], destination) -> dict[str, str]:
    """Write the evidence bundle of run ``run_id`` as a ZIP into ``destination`` (a path or a
    binary file object). ``files`` maps a name inside the bundle to its bytes: the run's own
    content (``run.json``, ``interactions/N.json``, ``artifacts/…``, ``approvals.json``, made by
    ``approvals.evidence``). Added here: ``audit_events.jsonl`` (the run's events, each with its
    link), ``signing-key.pub``, ``README.txt``, ``SHA256SUMS`` over every file and
    ``SHA256SUMS.sig``, the Ed25519 signature of ``SHA256SUMS`` by the audit signing key. Every
    member lies in one folder, ``run-<run_id>/``. Returns the manifest: file name → SHA-256
    (hex). Raises ``SigningKeyError`` when the key cannot be read."""
    key = signing_key()
    files = dict(files)
    lines = []
    for event in AuditEvent.objects.filter(run_id=run_id).select_related("link").order_by("id"):
        link = getattr(event, "link", None)
        lines.append(json.dumps({
            "event": event.as_dict(),
            "link": {"position": link.position, "prev_hash": link.prev_hash, "hash": link.hash} if link else None,
        }, sort_keys=True, ensure_ascii=False))
    files["audit_events.jsonl"] = ("\n".join(lines) + "\n").encode()
    files[BUNDLE_KEY] = public_key_pem(key.public_key())
    files["README.txt"] = BUNDLE_README.format(
        run_id=run_id, made_at=timezone.now().isoformat(), fingerprint=fingerprint(key.public_key())
    ).encode()
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files[BUNDLE_SUMS] = "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items())).encode()
    files[BUNDLE_SIGNATURE] = key.sign(files[BUNDLE_SUMS])
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(f"run-{run_id}/{name}", data)
    return manifest


@dataclass
class BundleVerification:
    """What ``check_bundle`` found: ``problems`` (empty when the bundle verifies), the
    fingerprint of the key whose signature holds ("" when none does), and whether that key is
    one the verifier pinned (else it is only the key the bundle carries)."""
    problems: list[str] = field(default_factory=list)
    fingerprint: str = ""
    pinned: bool = False


def check_bundle(
    source, *, public_key: Ed25519PublicKey | None = None, expected_fingerprint: str = "",
) -> BundleVerification:
    """Check an evidence bundle (a path or binary file object): SHA256SUMS.sig is a valid
    signature of SHA256SUMS by the key the bundle carries, or by ``public_key`` / the key with
    ``expected_fingerprint`` when given (pinned); every line of SHA256SUMS is well formed;
    every listed file is present and matches; no unlisted file is present; every audit event
    hashes to its link. Never raises on a bad bundle: a file that is not a ZIP, a bad line, a
    missing part is a problem in the result."""
    result = BundleVerification()
    problems = result.problems
    name = str(source) if isinstance(source, (str, os.PathLike)) else "The bundle"
    try:
        bundle = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        return BundleVerification([f"{name} is not a ZIP file."])
    except OSError as exc:
        return BundleVerification([f"Cannot read {name}: {exc.strerror or exc}."])
    with bundle:
        names = [n for n in bundle.namelist() if not n.endswith("/")]
        if not names:
            return BundleVerification([f"{name} is an empty ZIP file."])
        root = names[0].split("/", 1)[0] + "/"
        outside = [n for n in names if not n.startswith(root)]
        problems.extend(f"{n} lies outside the bundle's folder {root}." for n in outside)
        present = {n[len(root):]: n for n in names if n.startswith(root)}

        def read(short: str) -> bytes | None:
            try:
                return bundle.read(present[short]) if short in present else None
            except (zipfile.BadZipFile, OSError, ValueError) as exc:  # a damaged member
                problems.append(f"{short} cannot be read: {exc}.")
                return None

        sums, signature, carried = read(BUNDLE_SUMS), read(BUNDLE_SIGNATURE), read(BUNDLE_KEY)
        if sums is None:
            problems.append(f"{BUNDLE_SUMS} is missing.")
            return result
        if signature is None:
            problems.append(f"{BUNDLE_SIGNATURE} is missing: the bundle is not signed.")
        bundle_key = None
        if carried is not None:
            try:
                bundle_key = load_public_key(carried)
            except ValueError as exc:
                problems.append(f"{BUNDLE_KEY} is {exc}.")
        carried_fingerprint = fingerprint(bundle_key) if bundle_key is not None else ""
        if public_key is not None or expected_fingerprint:
            result.pinned = True
            wanted = fingerprint(public_key) if public_key is not None else expected_fingerprint.strip().lower()
            # A pinned fingerprint alone checks with the carried key, once it is the pinned one.
            pinned = public_key if public_key is not None else (bundle_key if carried_fingerprint == wanted else None)
            if carried_fingerprint != wanted:
                problems.append(f"The bundle carries key {carried_fingerprint or '(none)'}, "
                                f"not the pinned key {wanted}.")
        else:
            pinned = bundle_key
            if carried is None:
                problems.append(f"{BUNDLE_KEY} is missing: pin the key that should have signed (--public-key).")
        if signature is not None and pinned is not None:
            try:
                pinned.verify(signature, sums)
                result.fingerprint = fingerprint(pinned)
            except InvalidSignature:
                problems.append(f"{BUNDLE_SUMS} does not match its signature by key {fingerprint(pinned)}: the "
                                f"bundle was changed after it was signed, or signed by another key.")
        listed: dict[str, str] = {}
        for number, line in enumerate(sums.decode("utf-8", "replace").splitlines(), 1):
            match = _SUMS_LINE.fullmatch(line)
            if match is None:
                problems.append(f"{BUNDLE_SUMS} line {number} is not \"<sha256 hex>  <file name>\": {line[:80]!r}.")
            elif match[2] in listed:
                problems.append(f"{BUNDLE_SUMS} line {number} lists {match[2]} a second time.")
            else:
                listed[match[2]] = match[1]
        for short in present:
            if short in (BUNDLE_SUMS, BUNDLE_SIGNATURE):
                continue
            if short not in listed:
                problems.append(f"{short} is not listed in {BUNDLE_SUMS}.")
                continue
            data = read(short)
            if data is not None and hashlib.sha256(data).hexdigest() != listed[short]:
                problems.append(f"{short} does not match its checksum.")
        problems.extend(f"{short} is listed but missing." for short in listed if short not in present)
        events = read("audit_events.jsonl") if "audit_events.jsonl" in present else b""
        for number, line in enumerate((events or b"").decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                event, link = item["event"], item["link"]
                event_id = event["id"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"audit_events.jsonl line {number} is not an event with its link (JSON).")
                continue
            if link is None:
                problems.append(f"Audit event {event_id} has no chain link (not sealed yet).")
                continue
            try:
                matches = hashlib.sha256(link["prev_hash"].encode() + canonical_json(event)).hexdigest() == link["hash"]
            except (KeyError, TypeError, AttributeError):
                problems.append(f"audit_events.jsonl line {number}: the link of event {event_id} "
                                f"lacks prev_hash or hash.")
                continue
            if not matches:
                problems.append(f"Audit event {event_id} does not match its chain link.")
    return result


def verify_bundle(source, **pins) -> list[str]:
    """``check_bundle(source, **pins).problems``: the problems found, empty when it verifies."""
    return check_bundle(source, **pins).problems


