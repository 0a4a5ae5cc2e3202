"""Canonical JSON: the one serialization every hash of Handoff covers. Imports nothing of
Handoff's, so any layer may use it."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON: keys sorted, no spaces (separators ``,`` and ``:``), UTF-8
    (non-ASCII characters as themselves, not ``\\u`` escapes). The bytes every hash and
    signature covers: an audit event's link, a checkpoint's signature, a bundle's check of both,
    and the hash of a call's arguments a decision is bound to (``approvals.models.arguments_hash``)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
