"""Where the emulator keeps its interactions: in memory only, or in a SQLite file.

The real API keeps stored interactions, so a client can chain onto one with
``previous_interaction_id`` long after it was created (docs/interactions-api.md
§2.1, ``store``); an emulator that forgot them on a restart would answer a
follow-up with 404. With a path, every change is written in one SQLite
transaction before the request is answered, so a client is never told about
an interaction the file does not hold, and a process killed at any moment
leaves the file as of its last answered request.

Standard library only (``sqlite3``), like the rest of the emulator.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fault_counts (request TEXT PRIMARY KEY, seen INTEGER NOT NULL);
"""


class StoreInUse(Exception):
    """Another emulator (in this process or another) is serving the same state file."""


class Store:
    """The emulator's state: interaction records, id counters and counted faults.

    ``path=None`` keeps nothing: every method but ``load`` is a no-op and
    ``load`` finds nothing. With a path, the file (and its folder) is created
    when missing. One emulator owns a file at a time: the connection holds an
    exclusive lock from opening to ``close()`` (released by the OS when the
    process dies), so a second one raises ``StoreInUse`` instead of working
    from a copy that goes stale.

    A record is the server's dict for one interaction (JSON-safe except
    ``answered_call_ids``, a set, stored as a sorted list). Not thread-safe:
    the server calls it with its own lock held.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._db: sqlite3.Connection | None = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=1.0, check_same_thread=False)
        try:
            # Exclusive locking before WAL: SQLite then keeps the WAL index in
            # the process, and the first write below takes a lock the
            # connection keeps until it closes.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses no committed transaction when the
            # process is killed (the log is already in the OS's hands); only an
            # OS crash can drop the last commits.
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO counters VALUES ('interaction', 0), ('tool', 0)")
        except sqlite3.OperationalError as error:
            db.close()
            if "locked" in str(error):
                raise StoreInUse(f"{self.path} is in use by another emulator.") from error
            raise
        self._db = db

    @property
    def is_open(self) -> bool:
        """Whether a file is open (always False without a path)."""
        return self._db is not None

    def load(self) -> tuple[dict[str, dict], dict[str, int], dict[str, int]]:
        """``(records by id in creation order, counters by name, fault counts by request key)``."""
        if self._db is None:
            return {}, {}, {}
        records = {}
        for interaction_id, text in self._db.execute(
                "SELECT id, record FROM interactions ORDER BY position"):
            record = json.loads(text)
            record["answered_call_ids"] = set(record.get("answered_call_ids") or [])
            records[interaction_id] = record
        counters = dict(self._db.execute("SELECT name, value FROM counters"))
        faults = dict(self._db.execute("SELECT request, seen FROM fault_counts"))
        return records, counters, faults

    def save(self, records: Iterable[dict] = (), counters: dict[str, int] | None = None,
             fault_counts: dict[str, int] | None = None) -> None:
        """Write these records (new or changed), counters and fault counts in one transaction.

        Raises ``sqlite3.Error`` (e.g. a full disk, or after ``close()``); nothing is written then.
        """
        if self.path is None:
            return
        db = self._connection()
        with db:
            db.executemany(
                "INSERT INTO interactions (id, record) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                [(record["id"], _dumps(record)) for record in records],
            )
            db.executemany("UPDATE counters SET value = ? WHERE name = ?",
                           [(value, name) for name, value in (counters or {}).items()])
            db.executemany(
                "INSERT INTO fault_counts VALUES (?, ?) "
                "ON CONFLICT (request) DO UPDATE SET seen = excluded.seen",
                list((fault_counts or {}).items()),
            )

    def delete(self, interaction_id: str) -> None:
        if self.path is None:
            return
        db = self._connection()
        with db:
            db.execute("DELETE FROM interactions WHERE id = ?", (interaction_id,))

    def clear(self) -> None:
        """Forget every interaction and fault count; the id counters stay, so no id repeats."""
        if self.path is None:
            return
        db = self._connection()
        with db:
            db.execute("DELETE FROM interactions")
            db.execute("DELETE FROM fault_counts")

    def close(self) -> None:
        """Close the file and release its lock. Safe to call twice."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError(f"The emulator's state file {self.path} is closed.")
        return self._db


def _dumps(record: dict) -> str:
    return json.dumps({**record, "answered_call_ids": sorted(record["answered_call_ids"])},
                      ensure_ascii=False, separators=(",", ":"))
