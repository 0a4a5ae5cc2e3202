"""Writing the audit log and sealing it: ``record`` appends an event in the transaction of the
change it records; after that transaction commits, ``seal`` links it into the hash chain.

Every app writes its events here directly (``runs`` and ``approvals`` import ``audit``, never the
other way round). Verifying the chain and signing checkpoints of it: ``audit.chain``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from audit.context import request_id, via
from audit.canonical import canonical_json
from audit.models import AuditEvent, ChainLink, UnsealedEvent


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
        via=via.get(),
    )
    connection = transaction.get_connection()
    if not any(func is _seal_after_commit for _, func, _ in connection.run_on_commit):
        transaction.on_commit(_seal_after_commit, robust=True)
    return event



# --- Sealing: the hash chain ----------------------------------------------------------------

GENESIS = "0" * 64
# Key of the PostgreSQL advisory lock that lets one sealer at a time extend the chain.
SEAL_LOCK = 0x48414E44  # "HAND"


def canonical(event: AuditEvent) -> bytes:
    """The bytes an event's hash covers: ``canonical_json`` of its export fields (``as_dict``)."""
    return canonical_json(event.as_dict())


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


