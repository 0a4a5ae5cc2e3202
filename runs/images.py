"""Images in content blocks (``{"type": "image", "mime_type", "data"}``, ``data`` in base64:
docs/interactions-api.md §6): which a page may show, and their bytes.

The run page never puts an image's data in the page: it links ``<img>`` to a Handoff URL
(``runs:step_image`` for a recorded step, ``runs:sent_image`` for what an interaction's request
sent) that serves the decoded bytes, found again by their position among the image blocks of
the step's data (``blocks``). Nothing is ever loaded from a URL the model or a tool gave.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from runs import gemini

# Image types shown, each with the bytes its data must start with. SVG is never shown (it can
# carry script); any other type, or data that does not start with its type's signature, is not.
SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
# Images larger than this (decoded) are not shown: the placeholder says so. 5 MiB.
MAX_BYTES = 5 * 1024 * 1024
BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def blocks(value: Any) -> list[dict[str, Any]]:
    """Every image block in ``value`` (a step's ``data``, a request's ``input``, any JSON), at
    any depth, in document order: the numbering ``runs:step_image`` and ``runs:sent_image``
    use. ``[]`` when there is none."""
    return gemini.find_blocks(value, lambda node: node.get("type") == "image")


def position(value: Any, block: dict[str, Any]) -> int | None:
    """Where ``block`` is among ``blocks(value)`` (from 0): the block itself, else the first
    equal one (which serves the same bytes); ``None`` when it is not there."""
    found = blocks(value)
    for index, item in enumerate(found):
        if item is block:
            return index
    for index, item in enumerate(found):
        if item == block:
            return index
    return None


def refusal(block: Any) -> str:
    """Why image ``block`` is not shown (``""`` when it is): not an image block, no inline data,
    SVG, a type other than PNG, JPEG, GIF and WebP, more than ``MAX_BYTES`` of data, data that
    is not base64, or data that does not start with its declared type's signature (so the
    declared type is the real one). Decodes 12 bytes at most."""
    if not isinstance(block, dict) or block.get("type") != "image":
        return "not an image"
    mime = str(block.get("mime_type") or "").lower()
    data = block.get("data")
    signatures = SIGNATURES.get(mime)
    if not isinstance(data, str) or not data:
        return "no inline data"
    if "svg" in mime:
        return "SVG is never shown inline"
    if not signatures:
        return f"{mime or 'an unknown type'} is not shown inline"
    if len(data) // 4 * 3 > MAX_BYTES:
        return "too large to show inline"
    if len(data) < 16 or len(data) % 4 or not BASE64.match(data):
        return "the data is not base64"
    head = base64.b64decode(data[:16])
    if not head.startswith(signatures) or mime == "image/webp" and head[8:12] != b"WEBP":
        return f"the data is not a {mime.removeprefix('image/').upper()} image"
    return ""


def decode(block: Any) -> tuple[str, bytes] | None:
    """``(media type, bytes)`` of image ``block`` when ``refusal`` finds nothing wrong with it
    (the type one of ``SIGNATURES``, lower case; at most ``MAX_BYTES`` bytes), else ``None``."""
    if refusal(block):
        return None
    try:
        return str(block["mime_type"]).lower(), base64.b64decode(block["data"], validate=True)
    except (binascii.Error, ValueError):
        return None
