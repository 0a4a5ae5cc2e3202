"""Verifying the audit log's hash chain, and signing checkpoints of its head.

``verify`` walks the whole chain; ``checkpoint`` signs its head with the audit signing key
(``audit.keys``) once what is new since the last checkpoint verifies; ``verify_and_record`` does
both for the audit page and ``verify_audit``. Writing and sealing events: ``audit.log``.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.keys import SigningKeyError, fingerprint, signing_key, signing_key_path
from audit.log import GENESIS, SEAL_LOCK, event_hash, record, seal
from audit.models import AuditCheckpoint, AuditEvent, ChainLink, ChainVerification

# --- Checkpoints -----------------------------------------------------------------------------
#
# What they catch. A checkpoint signs the chain's head (position, hash, event, the app host's
# time) with a key the database does not hold, and each checkpoint signs its predecessor's
# signature too; every checkpoint is also appended to a log file next to the key. So someone who
# owns the database but not the key file (a DBA, anyone with a superuser's or the tables' owner's
# password) cannot: TRUNCATE or shorten the chain below a checkpointed position (the checkpoint
# names the missing links); alter an event and re-hash every later link (the checkpointed hash no
# longer matches); delete, alter or forge checkpoints (a gap in their numbers, a broken
# signature, or the log's newest checkpoint missing from the database).
#
# What they do not catch. Events after the newest checkpoint are protected by the hash chain
# only: they can be cut, or rewritten consistently, for up to one checkpoint interval
# (HANDOFF_AUDIT_CHECKPOINT_SECONDS). Whoever can read the key file can sign anything, and
# whoever can also rewrite the log can hide deleted checkpoints: keep both where the database's
# owner cannot reach (the log is only as append-only as its filesystem; `chattr +a` helps).
# Each host appends the checkpoints it signs to its own log, so deleting the newest checkpoints
# shows on a host whose log holds one of them; elsewhere only a gap in the numbers would. A
# replaced or lost key makes every earlier checkpoint fail to verify (there is no rotation), and
# so does restoring a database backup older than the newest checkpoint: both are reported.

def checkpoint_log_path() -> Path:
    """``settings.HANDOFF_AUDIT_CHECKPOINT_LOG``, or ``audit-checkpoints.jsonl`` next to the key."""
    configured = getattr(settings, "HANDOFF_AUDIT_CHECKPOINT_LOG", "")
    return Path(configured) if configured else signing_key_path().with_name("audit-checkpoints.jsonl")



LOG_TAIL = 64 * 1024  # bytes read from the end of the checkpoint log to find its newest entry


class ChainBroken(Exception):
    """No checkpoint was signed: the chain or the checkpoints do not verify since the newest
    checkpoint. The message says what; ``verify()`` names the event."""


def _logged_line(checkpoint: AuditCheckpoint) -> bytes:
    return (json.dumps({**checkpoint.fields(), "signature": checkpoint.signature}, sort_keys=True) + "\n").encode()


def _append_to_log(checkpoint: AuditCheckpoint) -> None:
    path = checkpoint_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write() of one short line on an O_APPEND descriptor: lines of concurrent writers never
    # interleave on a local filesystem.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, _logged_line(checkpoint))
    finally:
        os.close(fd)


def newest_logged_checkpoint() -> AuditCheckpoint | None:
    """The checkpoint with the highest number among the last ``LOG_TAIL`` bytes of the checkpoint
    log (an unsaved ``AuditCheckpoint``), or ``None`` when there is no log. Appends come after
    the database commit, so two writers may append out of order: the highest number wins, not
    the last line. A line that does not parse is skipped (a crash mid-append leaves one). Raises
    ``OSError`` when the log exists but cannot be read."""
    path = checkpoint_log_path()
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - LOG_TAIL))
            lines = file.read().split(b"\n")
    except FileNotFoundError:
        return None
    if size > LOG_TAIL:
        lines = lines[1:]  # the first line read is a fragment
    newest = None
    for line in lines:
        try:
            data = json.loads(line)
            checkpoint = AuditCheckpoint(
                number=int(data["number"]), position=int(data["position"]), hash=str(data["hash"]),
                event_id=data["event_id"], prev_signature=str(data["prev_signature"]),
                key_fingerprint=str(data["key_fingerprint"]), signature=str(data["signature"]),
                created_at=datetime.fromisoformat(data["created_at"]),
            )
        except (ValueError, KeyError, TypeError):
            continue
        if newest is None or checkpoint.number > newest.number:
            newest = checkpoint
    return newest


def _describe(checkpoint: AuditCheckpoint, *, capital: bool = False) -> str:
    event = f", event {checkpoint.event_id}" if checkpoint.event_id is not None else ""
    signed = checkpoint.created_at.isoformat(timespec="seconds")
    return (f"{'C' if capital else 'c'}heckpoint {checkpoint.number} (signed {signed}, "
            f"link #{checkpoint.position}{event})")


def _check_checkpoint(checkpoint: AuditCheckpoint, public_key: Ed25519PublicKey, key_fingerprint: str) -> str:
    """The problem with one checkpoint on its own ("" when its signature holds)."""
    if checkpoint.key_fingerprint != key_fingerprint:
        return (f"Checkpoint {checkpoint.number} was signed by key {checkpoint.key_fingerprint}, not by this "
                f"installation's key {key_fingerprint}: the key file was replaced or lost, or the checkpoint "
                f"was forged.")
    if not _signed_by(public_key, checkpoint):
        return f"Checkpoint {checkpoint.number} does not match its signature: it was altered or forged."
    return ""


def _check_log_against(
    stored: AuditCheckpoint | None, logged: AuditCheckpoint | None, public_key: Ed25519PublicKey, key_fingerprint: str,
) -> str:
    """The problem between the database's checkpoint numbered like the log's newest (``stored``)
    and that logged checkpoint ("" when they agree or there is no log)."""
    if logged is None:
        return ""
    problem = _check_checkpoint(logged, public_key, key_fingerprint)
    if problem:
        return f"The checkpoint log {checkpoint_log_path()}: {problem}"
    if stored is None:
        return (f"{_describe(logged, capital=True)}, kept in the checkpoint log {checkpoint_log_path()}, is "
                f"missing from the database: the newest checkpoints were deleted.")
    if stored.signature != logged.signature:
        return (f"Checkpoint {logged.number} in the database is not the one the checkpoint log "
                f"{checkpoint_log_path()} holds: checkpoints were replaced.")
    return ""


def _signed_by(public_key: Ed25519PublicKey, checkpoint: AuditCheckpoint) -> bool:
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Verification:
    ok: bool
    links_checked: int
    message: str
    first_bad_event_id: int | None = None
    key_fingerprint: str = ""


@dataclass
class _Anchor:
    """A signed checkpoint, reduced to what the chain walk compares."""
    number: int
    position: int
    hash: str
    event_id: int | None
    description: str

    @classmethod
    def of(cls, checkpoint: AuditCheckpoint) -> _Anchor:
        return cls(checkpoint.number, checkpoint.position, checkpoint.hash, checkpoint.event_id, _describe(checkpoint))


@dataclass
class _Walked:
    problem: Verification | None
    checked: int
    position: int  # of the last link that verified (the start's when none did)
    hash: str
    event_id: int | None


def _walk(
    *, start_position: int, start_hash: str, anchors: list[_Anchor], chunk: int,
    progress: Callable[[int], None] | None = None,
) -> _Walked:
    """Check every link after ``start_position`` (whose hash is ``start_hash``): positions follow
    one another, each link starts from the previous hash, its event still exists and hashes to
    it, and every anchor (sorted by position) names a link that still has the anchor's hash.
    Reads ``chunk`` links at a time and calls ``progress`` with the links checked so far after
    each chunk. Stops at the first problem."""
    prev, expected, checked = start_hash, start_position + 1, 0
    last_position, last_event = start_position, None
    pending = deque(anchor for anchor in anchors if anchor.position > start_position)
    # The first event since the last position a checkpoint confirmed: a checkpoint that no longer
    # matches proves a rewrite somewhere from there on, not at which event.
    unconfirmed_from = None

    def broken(message: str, event_id: int | None) -> _Walked:
        return _Walked(Verification(False, checked, message, event_id), checked, last_position, prev, last_event)

    while True:
        links = list(ChainLink.objects.filter(position__gt=last_position).order_by("position")
                     .values_list("position", "event_id", "prev_hash", "hash")[:chunk])
        if not links:
            break
        events = AuditEvent.objects.in_bulk([event_id for _, event_id, _, _ in links])
        for position, event_id, prev_hash, digest in links:
            if position != expected:
                return broken(f"Link #{expected} is missing: the chain jumps to #{position} (event {event_id}).",
                              event_id)
            if prev_hash != prev:
                return broken(f"Event {event_id} (link #{position}) does not follow link #{position - 1}: links "
                              f"were reordered or replaced.", event_id)
            event = events.get(event_id)
            if event is None:
                return broken(f"Event {event_id} (link #{position}) is missing: it was deleted.", event_id)
            if event_hash(prev, event) != digest:
                return broken(f"Event {event_id} (link #{position}) was altered, or events were reordered: its "
                              f"content no longer matches its hash.", event_id)
            if unconfirmed_from is None:
                unconfirmed_from = event_id
            while pending and pending[0].position == position:
                anchor = pending.popleft()
                if anchor.hash != digest:
                    first = unconfirmed_from if unconfirmed_from is not None else event_id
                    return broken(f"Event {event_id} (link #{position}) no longer has the hash {anchor.description} "
                                  f"signed: the chain was rewritten (an event altered and every later link "
                                  f"re-hashed) somewhere from event {first} on; no event from {first} to "
                                  f"{event_id} can be trusted.", first)
                unconfirmed_from = None
            prev, expected, checked = digest, expected + 1, checked + 1
            last_position, last_event = position, event_id
        if progress is not None:
            progress(checked)
    if pending:
        anchor = max(pending, key=lambda a: a.position)
        end = f"ends at link #{last_position} (event {last_event})" if last_position else "is empty"
        return broken(f"The chain {end}, but {anchor.description} covers links up to #{anchor.position}: links "
                      f"#{last_position + 1} to #{anchor.position} and their events were deleted (the log was "
                      f"truncated).", anchor.event_id)
    return _Walked(None, checked, last_position, prev, last_event)


def verify(
    *, chunk: int = 5000, grace: timedelta = timedelta(minutes=5), progress: Callable[[int], None] | None = None,
) -> Verification:
    """Walk the chain from its first link and check each (see ``_walk``) against every signed
    checkpoint; then the checkpoints themselves: numbers without gaps, each signed by this
    installation's key (``HANDOFF_AUDIT_SIGNING_KEY_FILE``) over its predecessor's signature,
    none covering fewer links than the one before, and the newest checkpoint of the checkpoint
    log present in the database. Events older than ``grace`` with no link mean a link was
    removed. Reads in chunks (memory grows with the number of checkpoints only), calling
    ``progress`` with the links checked so far after each. Returns the
    first problem found, naming the event; a problem with the chain comes before one with the
    checkpoints. What this catches and what it cannot: the comment above ``LOG_TAIL``."""
    try:
        public_key = signing_key().public_key()
    except SigningKeyError as exc:
        return Verification(False, 0, f"{exc} Without the key, the checkpoints cannot be checked.")
    key_fingerprint = fingerprint(public_key)
    try:
        # Read before the database: an entry reaches the log only after its row committed, so
        # every entry read here is in the database when it is queried next.
        logged = newest_logged_checkpoint()
    except OSError as exc:
        return Verification(False, 0, f"Cannot read the checkpoint log {checkpoint_log_path()}: {exc.strerror}.",
                            key_fingerprint=key_fingerprint)
    anchors: list[_Anchor] = []
    checkpoint_problem = ""
    expected, prev_signature, prev_position, newest, stored_logged = 1, "", 0, None, None
    for stored in AuditCheckpoint.objects.order_by("number").iterator(chunk_size=chunk):
        problem = _check_checkpoint(stored, public_key, key_fingerprint)
        if not problem:
            anchors.append(_Anchor.of(stored))
            if stored.position == 0 and stored.hash != GENESIS:
                problem = f"{_describe(stored, capital=True)} signs an empty chain with another hash than genesis."
        if not problem and stored.number != expected:
            problem = (f"Checkpoint {expected} is missing: the checkpoints jump to {stored.number} "
                       f"(checkpoints were deleted).")
        if not problem and stored.prev_signature != prev_signature:
            problem = (f"Checkpoint {stored.number} does not follow checkpoint {stored.number - 1}: "
                       f"checkpoints were replaced.")
        if not problem and stored.position < prev_position:
            problem = (f"Checkpoint {stored.number} covers fewer links (#{stored.position}) than checkpoint "
                       f"{stored.number - 1} (#{prev_position}): the chain was cut between them.")
        checkpoint_problem = checkpoint_problem or problem
        if logged is not None and stored.number == logged.number:
            stored_logged = stored
        expected, prev_signature, prev_position, newest = stored.number + 1, stored.signature, stored.position, stored
    log_problem = _check_log_against(stored_logged, logged, public_key, key_fingerprint)
    if logged is not None and stored_logged is None and not _check_checkpoint(logged, public_key, key_fingerprint):
        # Deleted from the database, still signed in the log: the chain must still reach it.
        anchors.append(_Anchor.of(logged))
    anchors.sort(key=lambda a: (a.position, a.number))
    walked = _walk(start_position=0, start_hash=GENESIS, anchors=anchors, chunk=chunk, progress=progress)
    if walked.problem is not None:
        walked.problem.key_fingerprint = key_fingerprint
        return walked.problem
    if checkpoint_problem or log_problem:
        return Verification(False, walked.checked, checkpoint_problem or log_problem, key_fingerprint=key_fingerprint)
    orphan = (AuditEvent.objects.filter(link__isnull=True, created_at__lt=timezone.now() - grace)
              .order_by("id").values_list("id", flat=True).first())
    if orphan is not None:
        return Verification(False, walked.checked, f"Event {orphan} has no link: the chain around it was cut.", orphan,
                            key_fingerprint)
    signed = (f"it matches every signed checkpoint ({len(anchors)}), the newest {_describe(newest)}"
              if newest is not None else "no signed checkpoint yet")
    return Verification(True, walked.checked, f"{ChainVerification.HOLDS}{walked.checked} events verified; {signed}.",
                        key_fingerprint=key_fingerprint)


def checkpoint(*, only_if_moved: bool = False) -> AuditCheckpoint | None:
    """Seal, then sign the chain's head as a new ``AuditCheckpoint`` and append it to the
    checkpoint log; but first check what is new since the newest checkpoint (its signature, that
    the log's newest checkpoint is in the database, that its link still has its hash, every
    link after it as ``verify`` does): a chain that fails is never signed over. The check runs
    without the lock, so sealing never waits on it; under the lock (the sealer's advisory lock
    on PostgreSQL) the head checked is signed if it is still there and no other checkpoint came
    first. With ``only_if_moved`` (the periodic job) nothing is written when the head has not
    moved since the newest checkpoint. Returns the checkpoint, or ``None`` when none was written.
    Raises ``ChainBroken`` (nothing signed; the message says why), ``SigningKeyError``, or
    ``OSError`` when the log cannot be read or written (then the checkpoint is in the database
    only)."""
    seal()
    key = signing_key()
    public_key = key.public_key()
    key_fingerprint = fingerprint(public_key)
    logged = newest_logged_checkpoint()
    last = AuditCheckpoint.objects.order_by("-number").first()
    problem = _check_checkpoint(last, public_key, key_fingerprint) if last is not None else ""
    if not problem and logged is not None:
        stored = last if last is not None and last.number == logged.number else (
            AuditCheckpoint.objects.filter(number=logged.number).first())
        problem = _check_log_against(stored, logged, public_key, key_fingerprint)
    if problem:
        raise ChainBroken(problem)
    start_position, start_hash = (last.position, last.hash) if last is not None else (0, GENESIS)
    if start_position and not ChainLink.objects.filter(position=start_position, hash=start_hash).exists():
        raise ChainBroken(f"Link #{start_position} is gone or no longer has the hash {_describe(last)} signed.")
    walked = _walk(start_position=start_position, start_hash=start_hash, anchors=[], chunk=5000)
    if walked.problem is not None:
        raise ChainBroken(walked.problem.message)
    if only_if_moved and last is not None and walked.position == last.position:
        return None
    with transaction.atomic():
        if transaction.get_connection().vendor == "postgresql":
            with transaction.get_connection().cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK])
        newest = AuditCheckpoint.objects.order_by("-number").values_list("number", flat=True).first()
        if newest != (last.number if last is not None else None):
            return None  # another process signed a checkpoint meanwhile
        if walked.position and not ChainLink.objects.filter(position=walked.position, hash=walked.hash).exists():
            raise ChainBroken(f"Link #{walked.position} changed while it was being checked.")
        signed = AuditCheckpoint(
            number=last.number + 1 if last is not None else 1,
            position=walked.position, hash=walked.hash,
            event_id=walked.event_id if walked.position != start_position else (last.event_id if last else None),
            prev_signature=last.signature if last is not None else "",
            key_fingerprint=key_fingerprint, created_at=timezone.now(),
        )
        signed.signature = key.sign(signed.signed_bytes()).hex()
        signed.save()
    _append_to_log(signed)
    return signed


def verify_and_record(*, requested_by: str = "", verification: ChainVerification | None = None) -> ChainVerification:
    """``verify()`` and keep the result for the audit page (in ``verification`` when the page
    created it beforehand); an audited event too. While the walk runs, the verification shows
    its progress (``links_checked`` of ``links_total``, the chain's length when it started).
    When the chain holds, a checkpoint is signed over it, covering that event; when none can
    be, the message says why."""
    started = time.monotonic()
    if verification is None:
        verification = ChainVerification.objects.create(ok=None, message="Verifying…", requested_by=requested_by)
    total = ChainLink.objects.order_by("-position").values_list("position", flat=True).first() or 0
    ChainVerification.objects.filter(pk=verification.pk).update(links_total=total, links_checked=0)

    def progress(checked: int) -> None:
        ChainVerification.objects.filter(pk=verification.pk).update(links_checked=checked)

    result = verify(progress=progress)
    with transaction.atomic():
        verification.ok, verification.links_checked = result.ok, result.links_checked
        verification.links_total = max(total, result.links_checked)
        verification.first_bad_event_id, verification.message = result.first_bad_event_id, result.message
        verification.duration_ms = int((time.monotonic() - started) * 1000)
        verification.verified_at = timezone.now()
        verification.save()
        record(actor=verification.requested_by or "system:verify_audit", verb="audit.verified", obj=verification,
               after={"ok": result.ok, "links_checked": result.links_checked, "message": result.message,
                      "key_fingerprint": result.key_fingerprint})
    if result.ok:
        try:
            signed = checkpoint()
        except (ChainBroken, SigningKeyError) as exc:
            verification.message = f"{result.message} No checkpoint was signed: {exc}"
        except OSError as exc:
            verification.message = (f"{result.message} The checkpoint log {checkpoint_log_path()} could not be "
                                    f"written: {exc.strerror}.")
        else:
            if signed is not None:
                verification.message = f"{result.message} Signed checkpoint {signed.number} (link #{signed.position})."
        verification.save(update_fields=["message"])
    return verification


