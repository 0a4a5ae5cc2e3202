"""Writing the audit log. Events are written in the transaction of the change they record."""

from __future__ import annotations

import contextvars
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import time
import uuid
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.functions import Cast
from django.utils import timezone

from approvals.models import AuditCheckpoint, AuditEvent, ChainLink, ChainVerification, UnsealedEvent

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def record(
    *,
    actor,
    verb: str,
    obj: models.Model | None,
    run=None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    object_type: str = "",
    object_id: str = "",
) -> AuditEvent:
    """Append one event. ``actor`` is a user or a ``system:<component>`` string; ``obj`` the
    model instance the event is about (or ``None`` with ``object_type``/``object_id``, e.g. a
    failed sign-in for a username); ``run`` the run it belongs to, if any: a ``Run`` or its id
    (``approval.run_id`` saves loading a run only for its id). Raises
    ``RuntimeError`` outside a transaction (see ``AuditEvent.save``)."""
    user = None if isinstance(actor, str) else actor
    event = AuditEvent.objects.create(
        actor=actor if isinstance(actor, str) else actor.get_username(),
        actor_user=user,
        verb=verb,
        object_type=obj._meta.model_name if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else object_id,
        run_id=run.pk if isinstance(run, models.Model) else run,
        tool=getattr(obj, "function_name", ""),
        before=before,
        after=after,
        request_id=request_id.get(),
    )
    connection = transaction.get_connection()
    if not any(func is _seal_after_commit for _, func, _ in connection.run_on_commit):
        transaction.on_commit(_seal_after_commit, robust=True)
    return event


# --- The hash chain --------------------------------------------------------------------------

GENESIS = "0" * 64
# Key of the PostgreSQL advisory lock that lets one sealer at a time extend the chain.
SEAL_LOCK = 0x48414E44  # "HAND"


def canonical(event: AuditEvent) -> bytes:
    """The bytes an event's hash covers: its export fields as JSON, keys sorted, no spaces."""
    return json.dumps(event_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 (hex) of the previous link's hash followed by the event's canonical bytes."""
    return hashlib.sha256(prev_hash.encode() + canonical(event)).hexdigest()


def _seal_after_commit() -> None:
    seal(wait=False)


# How many backlog reads a commit's own seal makes at most before it leaves the rest to others.
SEAL_ROUNDS = 10


def seal(batch: int = 5000, *, wait: bool = True) -> int:
    """Append chain links for every event not sealed yet (``UnsealedEvent``), in event id order,
    and take them off that backlog in the same transaction; then read the backlog again, until it
    is empty. One sealer at a time (advisory lock on PostgreSQL; SQLite serializes writers
    itself). Reads the chain's last link and the backlog only, so its cost follows the backlog,
    not the log's size. Returns how many events it sealed.

    With ``wait=False`` (what runs after each commit that wrote events) a seal that finds another
    sealer at work leaves its events to that one: the sealer looks at the backlog again after it
    releases the lock, when those events are committed, and goes on while any wait. So writers
    never queue behind each other on the chain. Such a seal stops after ``SEAL_ROUNDS`` rounds,
    so a request never works off a stream of others' events; what it leaves goes to the next
    commit's seal or to the periodic one (Celery beat every minute, ``wait=True``, which also
    catches events whose process died before it could seal). An event may wait for its link,
    never lose it (``verify`` allows unsealed events a grace period)."""
    sealed, rounds = 0, 0
    while wait or rounds < SEAL_ROUNDS:
        rounds += 1
        with transaction.atomic():
            if transaction.get_connection().vendor == "postgresql":
                with transaction.get_connection().cursor() as cursor:
                    lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
                    cursor.execute(f"SELECT {lock}(%s)", [SEAL_LOCK])
                    if not wait and not cursor.fetchone()[0]:
                        return sealed
            sealed += _seal_batch(batch)
        # Read once more after the lock is released: an event whose seal found this one at work
        # committed before that, so it is seen here, and sealed by the next round.
        if not UnsealedEvent.objects.exists():
            return sealed
    return sealed


def _seal_batch(batch: int) -> int:
    """Under the sealer's lock: link up to ``batch`` events of the backlog and take them off it.
    Returns how many were linked."""
    events, last = _take_backlog(batch)
    prev, position = (last.hash, last.position) if last else (GENESIS, 0)
    links = []
    for event in events:
        digest = event_hash(prev, event)
        position += 1
        links.append(ChainLink(position=position, event=event, prev_hash=prev, hash=digest))
        prev = digest
    ChainLink.objects.bulk_create(links)
    return len(links)


def _take_backlog(batch: int) -> tuple[list[AuditEvent], ChainLink | None]:
    """Under the sealer's lock: take up to ``batch`` events off the backlog (a rollback puts them
    back) and return them in id order, with the chain's last link (``None`` for an empty chain).
    A backlog row for an event that already has its link (put there by hand) or whose event is
    gone is dropped and not returned: neither may stop the chain from growing.

    On PostgreSQL one statement does it all (``DELETE … RETURNING`` in a ``WITH``): a commit's
    seal costs its round trips, not its rows, so every one saved counts. Elsewhere, three."""
    backlog = connection.ops.quote_name(UnsealedEvent._meta.db_table)
    take = f"DELETE FROM {backlog} WHERE event_id IN (SELECT event_id FROM {backlog} ORDER BY event_id LIMIT %s)"
    unlinked = ~models.Exists(ChainLink.objects.filter(event_id=models.OuterRef("id")))
    if transaction.get_connection().vendor != "postgresql":
        with transaction.get_connection().cursor() as cursor:
            cursor.execute(f"{take} RETURNING event_id", [batch])
            queued = [event_id for (event_id,) in cursor.fetchall()]
        if not queued:
            return [], None
        last = ChainLink.objects.order_by("-position").only("position", "hash").first()
        return list(AuditEvent.objects.filter(id__in=queued).filter(unlinked).order_by("id")), last
    events_table = connection.ops.quote_name(AuditEvent._meta.db_table)
    links_table = connection.ops.quote_name(ChainLink._meta.db_table)
    # The events are read by id from the rows taken (``IN``), never by walking the log; every
    # part of one statement sees the same snapshot, taken after the sealer's lock.
    events = list(AuditEvent.objects.raw(
        f"WITH taken AS ({take} RETURNING event_id), "
        f"last AS (SELECT position, hash FROM {links_table} ORDER BY position DESC LIMIT 1) "
        f"SELECT e.*, (SELECT position FROM last) AS last_position, (SELECT hash FROM last) AS last_hash "
        f"FROM {events_table} e WHERE e.id IN (SELECT event_id FROM taken) "
        f"AND NOT EXISTS (SELECT 1 FROM {links_table} l WHERE l.event_id = e.id) ORDER BY e.id",
        [batch],
    ))
    if not events or events[0].last_position is None:
        return events, None
    return events, ChainLink(position=events[0].last_position, hash=events[0].last_hash)


def seal_lag() -> tuple[int, float]:
    """The chain's backlog: how many events wait to be sealed, and the age in seconds of the
    oldest of them (0.0 when none waits). Reads the backlog only."""
    count = UnsealedEvent.objects.count()
    if not count:
        return 0, 0.0
    oldest = (AuditEvent.objects.filter(id__in=UnsealedEvent.objects.values("event_id"))
              .aggregate(oldest=models.Min("created_at"))["oldest"])
    return count, max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0


# --- Signing key -----------------------------------------------------------------------------


class SigningKeyError(Exception):
    """The audit signing key file cannot be read or created, or holds something else than an
    unencrypted Ed25519 private key."""


def signing_key_path() -> Path:
    """``settings.HANDOFF_AUDIT_SIGNING_KEY_FILE``."""
    return Path(settings.HANDOFF_AUDIT_SIGNING_KEY_FILE)


def checkpoint_log_path() -> Path:
    """``settings.HANDOFF_AUDIT_CHECKPOINT_LOG``, or ``audit-checkpoints.jsonl`` next to the key."""
    configured = getattr(settings, "HANDOFF_AUDIT_CHECKPOINT_LOG", "")
    return Path(configured) if configured else signing_key_path().with_name("audit-checkpoints.jsonl")


def signing_key() -> Ed25519PrivateKey:
    """The Ed25519 private key in ``HANDOFF_AUDIT_SIGNING_KEY_FILE`` (PEM, PKCS#8, unencrypted).
    A missing file is created (mode 0600) with a new key, so a first local run works. Raises
    ``SigningKeyError`` when the file cannot be read or created, or holds another kind of key."""
    path = signing_key_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = _create_key_file(path)
    except OSError as exc:
        raise SigningKeyError(f"Cannot read the audit signing key {path}: {exc.strerror}.") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path} does not hold an unencrypted PEM private key.") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds another kind of key than Ed25519.")
    return key


def _create_key_file(path: Path) -> bytes:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp makes the file with mode 0600; linking it into place fails when another process
        # got there first, so no process ever reads a half-written key, and all use the same one.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-signing-key-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            try:
                os.link(temporary, path)
            except FileExistsError:
                return path.read_bytes()
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise SigningKeyError(f"Cannot create the audit signing key {path}: {exc.strerror}.") from exc
    return pem


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex, 64 characters) of the raw 32-byte Ed25519 public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), the form ``openssl pkey -pubout`` prints."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_by(public_key: Ed25519PublicKey, checkpoint: AuditCheckpoint) -> bool:
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


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
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - LOG_TAIL))
            lines = log.read().split(b"\n")
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
    return Verification(True, walked.checked, f"The chain holds: {walked.checked} events verified; {signed}.",
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


# What an incoming X-Request-ID may look like (a UUID, a proxy's or tracer's id): 1 to 64 ASCII
# letters, digits and ``. _ : -``. Anything else (a newline, markup, kilobytes) is replaced, so a
# client cannot write into the audit log or the response headers through it.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    """Tags audit events written while serving a request with its id (``X-Request-ID`` when a
    proxy set one that matches ``REQUEST_ID``, else a new UUID as 32 hex digits), and returns it
    in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = request.headers.get("X-Request-ID", "")
        if not REQUEST_ID.fullmatch(value):
            value = uuid.uuid4().hex
        token = request_id.set(value)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = value
        return response


# --- Export ----------------------------------------------------------------------------------

EXPORT_FIELDS = (
    "id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "tool", "before",
    "after", "request_id",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); such
# cells are prefixed with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """One event as a JSON-ready dict with the keys of ``EXPORT_FIELDS``."""
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor,
        "verb": event.verb,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "run_id": event.run_id,
        "tool": event.tool,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
    }


def _csv_cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


# Columns read for an export: the JSON fields come back as their JSON text (cast in the
# database), so nothing is parsed only to be serialized again.
_EXPORT_COLUMNS = ("id", "created_at", "actor", "verb", "object_type", "object_id", "run_id", "tool",
                   "before_json", "after_json", "request_id")
EXPORT_CHUNK = 2000  # rows fetched and written per step


def _export_rows(events: models.QuerySet):
    return (
        events.order_by("id")
        .annotate(before_json=Cast("before", models.TextField()), after_json=Cast("after", models.TextField()))
        .values_list(*_EXPORT_COLUMNS)
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_chunks(events: models.QuerySet, fmt: str) -> Iterator[tuple[str, int]]:
    """The events of ``events`` as CSV (header first) or JSON lines, in pieces of up to
    ``EXPORT_CHUNK`` rows: ``(text, rows in it)``. Streamed from the database with a
    server-side cursor (``QuerySet.iterator``), so memory stays flat whatever the log's size.
    CSV cells starting with ``= + - @`` (or a tab or carriage return) get a leading quote so a
    spreadsheet never runs them as formulas. Raises ``ValueError`` for another ``fmt``."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"Unknown export format {fmt!r}: use csv or jsonl.")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(EXPORT_FIELDS)
        yield buffer.getvalue(), 0
    dumps = json.dumps
    batch: list = []

    def flush() -> str:
        buffer.seek(0)
        buffer.truncate()
        if fmt == "csv":
            writer.writerows(
                (pk, created.isoformat(), _csv_cell(actor), _csv_cell(verb), _csv_cell(object_type),
                 _csv_cell(object_id), run_id, _csv_cell(tool), _csv_cell(before), _csv_cell(after),
                 _csv_cell(request))
                for pk, created, actor, verb, object_type, object_id, run_id, tool, before, after, request in batch
            )
        else:
            buffer.writelines(
                f'{{"id": {pk}, "created_at": "{created.isoformat()}", "actor": {dumps(actor, ensure_ascii=False)}, '
                f'"verb": {dumps(verb)}, "object_type": {dumps(object_type)}, "object_id": {dumps(object_id)}, '
                f'"run_id": {"null" if run_id is None else run_id}, "tool": {dumps(tool, ensure_ascii=False)}, '
                f'"before": {before or "null"}, "after": {after or "null"}, "request_id": {dumps(request)}}}\n'
                for pk, created, actor, verb, object_type, object_id, run_id, tool, before, after, request in batch
            )
        return buffer.getvalue()

    for row in _export_rows(events):
        batch.append(row)
        if len(batch) == EXPORT_CHUNK:
            yield flush(), len(batch)
            batch.clear()
    if batch:
        yield flush(), len(batch)


def export_lines(events: models.QuerySet, fmt: str) -> Iterator[str]:
    """``export_chunks`` without the counts: text to write or stream, in order."""
    for text, _ in export_chunks(events, fmt):
        yield text


def filtered_events(
    *, since=None, until=None, run_id: int | None = None, actor: str = "", verb: str = "", tool: str = "",
) -> models.QuerySet:
    """Events within ``[since, until)``, of a run, by an actor, with a verb (exact, or every verb
    of a family: ``approval.`` or ``approval``, since every verb has a dot) and about a tool;
    oldest first."""
    events = AuditEvent.objects.all()
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    if run_id:
        events = events.filter(run_id=run_id)
    if actor:
        events = events.filter(actor=actor)
    if verb and "." not in verb:
        verb += "."
    if verb:
        events = events.filter(verb__startswith=verb) if verb.endswith(".") else events.filter(verb=verb)
    if tool:
        events = events.filter(tool=tool)
    return events.order_by("id")


def record_export(*, actor, fmt: str, filters: dict[str, Any], obj: models.Model | None = None) -> None:
    """The audited event of an export (who took which part of the log away)."""
    with transaction.atomic():
        record(actor=actor, verb="audit.exported", obj=obj, object_type="auditlog", object_id="export",
               after={"format": fmt, "filters": {k: str(v) for k, v in filters.items() if v}})


# --- Evidence bundles ------------------------------------------------------------------------

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


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


def evidence_bundle(run, destination) -> dict[str, str]:
    """Write the evidence bundle of ``run`` as a ZIP into ``destination`` (a path or a binary
    file object): its files, ``SHA256SUMS`` over them, and ``SHA256SUMS.sig``, the Ed25519
    signature of ``SHA256SUMS`` by the audit signing key (whose public key the bundle carries
    as ``signing-key.pub``). Returns the manifest: file name → SHA-256 (hex). Raises
    ``SigningKeyError`` when the key cannot be read."""
    from approvals.models import Approval

    key = signing_key()
    run_data = {
        "id": run.pk, "model": run.model, "agent": run.agent, "input": run.input, "tools": run.tools,
        "background": run.background, "system_instruction": run.system_instruction,
        "generation_config": run.generation_config, "status": run.status, "error": run.error,
        "output_text": run.output_text, "total_tokens": run.total_tokens,
        "created_by": run.created_by.get_username() if run.created_by else None,
        "created_at": run.created_at, "finished_at": run.finished_at,
    }
    files: dict[str, bytes] = {"run.json": _json_bytes(run_data)}
    for interaction in run.interactions.order_by("sequence").prefetch_related("steps", "artifacts"):
        files[f"interactions/{interaction.sequence}.json"] = _json_bytes({
            "sequence": interaction.sequence, "interaction_id": interaction.interaction_id,
            "previous_interaction_id": interaction.previous_interaction_id, "request": interaction.request,
            "status": interaction.status, "dispatch": interaction.dispatch, "usage": interaction.usage,
            "errors": interaction.errors, "error": interaction.error, "output_text": interaction.output_text,
            "poll_count": interaction.poll_count, "sdk_version": interaction.sdk_version,
            "sent_at": interaction.sent_at, "finished_at": interaction.finished_at,
            "steps": [step.data for step in interaction.steps.all()],
        })
        for artifact in interaction.artifacts.all():
            extension = "json" if artifact.media_type == "application/json" else "txt"
            files[f"artifacts/{interaction.sequence}-{artifact.kind}.{extension}"] = artifact.content.encode()
    approvals = [{
        "call_id": a.call_id, "function_name": a.function_name, "arguments": a.arguments,
        "edited_arguments": a.edited_arguments, "status": a.status, "policy": a.policy,
        "approvals_required": a.approvals_required, "approver_group": a.approver_group,
        "decided_by": a.decided_by.get_username() if a.decided_by else None, "decided_at": a.decided_at,
        "reason": a.reason, "result": a.result, "result_is_error": a.result_is_error,
        "decisions": [{"user": d.user.get_username(), "verdict": d.verdict, "reason": d.reason,
                       "arguments": d.arguments, "at": d.created_at} for d in a.decisions.all()],
    } for a in Approval.objects.filter(run=run).select_related("decided_by").prefetch_related("decisions__user")]
    files["approvals.json"] = _json_bytes(approvals)
    lines = []
    for event in AuditEvent.objects.filter(run_id=run.pk).select_related("link").order_by("id"):
        link = getattr(event, "link", None)
        lines.append(json.dumps({
            "event": event_dict(event),
            "link": {"position": link.position, "prev_hash": link.prev_hash, "hash": link.hash} if link else None,
        }, sort_keys=True, ensure_ascii=False))
    files["audit_events.jsonl"] = ("\n".join(lines) + "\n").encode()
    files[BUNDLE_KEY] = public_key_pem(key.public_key())
    files["README.txt"] = BUNDLE_README.format(
        run_id=run.pk, made_at=timezone.now().isoformat(), fingerprint=fingerprint(key.public_key())
    ).encode()
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files[BUNDLE_SUMS] = "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items())).encode()
    files[BUNDLE_SIGNATURE] = key.sign(files[BUNDLE_SUMS])
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(f"run-{run.pk}/{name}", data)
    return manifest


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM: a public key, or a private key (its public half, so the
    key file itself pins). Raises ``ValueError`` naming what it is instead."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError("not a PEM public or unencrypted private key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("a key, but not an Ed25519 key")
    return key


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
                canonical_bytes = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                matches = hashlib.sha256(link["prev_hash"].encode() + canonical_bytes).hexdigest() == link["hash"]
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


# --- Retention -------------------------------------------------------------------------------


def prune_raw_payloads(*, older_than_days: int, actor: str = "system:retention", dry_run: bool = False) -> int:
    """Delete the raw request and response artifacts older than ``older_than_days`` days; steps,
    decisions, the other artifacts and the audit chain stay. Audited. Returns how many."""
    from runs.models import Artifact

    cutoff = timezone.now() - timedelta(days=older_than_days)
    raw = Artifact.objects.filter(kind__in=[Artifact.Kind.RAW_REQUEST, Artifact.Kind.RAW_RESPONSE], created_at__lt=cutoff)
    count = raw.count()
    if dry_run or not count:
        return count
    with transaction.atomic():
        deleted, _ = raw.delete()
        record(actor=actor, verb="artifacts.pruned", obj=None, object_type="artifact", object_id="raw",
               after={"deleted": deleted, "older_than_days": older_than_days, "cutoff": cutoff.isoformat()})
    return deleted


# --- Exports written by a job ----------------------------------------------------------------

PROGRESS_EVERY = 10_000  # rows between progress updates


def export_path(export) -> Path:
    from django.conf import settings

    folder = Path(settings.DATA_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / export.file_name


def write_export(export_pk: int) -> None:
    """Write ``AuditExport`` ``export_pk`` to its file: stream the filtered events (flat
    memory), count progress, then record the file's SHA-256 and an audited event."""
    from approvals.models import AuditExport

    claimed = AuditExport.objects.filter(pk=export_pk, status=AuditExport.Status.QUEUED).update(
        status=AuditExport.Status.RUNNING
    )
    if not claimed:
        return
    export = AuditExport.objects.select_related("requested_by").get(pk=export_pk)
    filters = {k: v for k, v in export.filters.items() if v not in (None, "")}
    for key in ("since", "until"):
        if key in filters:
            filters[key] = datetime.fromisoformat(filters[key])
    events = filtered_events(**filters)
    export.rows_total = events.count()
    export.file_name = f"handoff-audit-{export.pk}.{export.format}"
    export.save(update_fields=["rows_total", "file_name"])
    digest = hashlib.sha256()
    try:
        with open(export_path(export), "w", encoding="utf-8", newline="") as out:
            rows = reported = 0
            for text, count in export_chunks(events, export.format):
                out.write(text)
                digest.update(text.encode())
                rows += count
                if rows - reported >= PROGRESS_EVERY:
                    AuditExport.objects.filter(pk=export.pk).update(rows_done=rows)
                    reported = rows
    except OSError as exc:
        AuditExport.objects.filter(pk=export.pk).update(status=AuditExport.Status.FAILED, error=str(exc))
        return
    AuditExport.objects.filter(pk=export.pk).update(
        status=AuditExport.Status.DONE, rows_done=rows, sha256=digest.hexdigest(), finished_at=timezone.now()
    )
    record_export(actor=export.requested_by, fmt=export.format, filters=export.filters, obj=export)


# --- Access ----------------------------------------------------------------------------------


def on_signed_in(sender, request, user, **kwargs) -> None:
    with transaction.atomic():
        record(actor=user, verb="user.signed_in", obj=user)


def on_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    with transaction.atomic():
        record(actor=username or "anonymous", verb="user.sign_in_failed", obj=None, object_type="user",
               object_id=username, after={"path": request.path if request else ""})


class AccessDeniedMiddleware:
    """Records every 403 answered to a signed-in user as a ``user.denied`` event (who, which
    path and method)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 403 and request.user.is_authenticated:
            with transaction.atomic():
                record(actor=request.user, verb="user.denied", obj=request.user,
                       after={"path": request.path, "method": request.method})
        return response
