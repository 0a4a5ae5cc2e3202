"""The audit signing key: the Ed25519 key, kept in a file outside the database
(``HANDOFF_AUDIT_SIGNING_KEY_FILE``), that signs checkpoints of the chain (``audit.chain``) and
evidence bundles (``audit.bundles``), and how its public half is written and named."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings


class SigningKeyError(Exception):
    """The audit signing key file cannot be read or created, or holds something else than an
    unencrypted Ed25519 private key."""


def signing_key_path() -> Path:
    """``settings.HANDOFF_AUDIT_SIGNING_KEY_FILE``."""
    return Path(settings.HANDOFF_AUDIT_SIGNING_KEY_FILE)


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
