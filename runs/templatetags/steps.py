"""Filters for showing runs, interactions and steps: JSON, durations, ages, and which small
template renders each step type.

Everything here returns plain strings (never ``mark_safe``): what the model or a tool produced is
escaped by the template engine like any other value.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django import template
from django.utils import timezone

from runs.models import Step

register = template.Library()

# Step types with a template of their own in templates/runs/steps/; every other type (known ones
# such as file_search_call, and unknown ones) goes through generic.html, which shows the raw JSON.
STEP_TEMPLATES = frozenset({
    "user_input", "model_output", "thought", "function_call", "function_result",
    "code_execution_call", "code_execution_result", "google_search_call", "google_search_result",
    "url_context_call", "url_context_result", "mcp_server_tool_call", "mcp_server_tool_result",
})

# Content block types that carry binary data (base64 in ``data``) or a ``uri``: shown as a
# placeholder, never dumped into the page.
MEDIA_BLOCK_TYPES = frozenset({"image", "audio", "video", "document"})


@register.filter
def step_template(step: Step) -> str:
    """The template name for ``step``: ``runs/steps/<type>.html`` or the generic one."""
    if step.type in STEP_TEMPLATES:
        return f"runs/steps/{step.type}.html"
    return "runs/steps/generic.html"


@register.filter
def pretty_json(value: Any) -> str:
    """``value`` as indented JSON (non-ASCII kept as is). Strings are shown as they are."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def compact_json(value: Any, limit: int = 120) -> str:
    """``value`` as one-line JSON, cut to ``limit`` characters with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    limit = int(limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def duration(ms: int | None) -> str:
    """A duration in milliseconds as a short human string: ``850 ms``, ``12.3 s``, ``4m 12s``,
    ``2h 05m``; an em dash for ``None``."""
    if ms is None or ms == "":
        return "—"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@register.filter
def ago(value: datetime | None) -> str:
    """How long ago ``value`` was, in the largest unit: ``just now``, ``5 min ago``, ``3 h ago``,
    ``2 d ago``; a date past a week."""
    if value is None:
        return "—"
    seconds = int((timezone.now() - value).total_seconds())
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(round(seconds / 60), 1)} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    if seconds < 7 * 86400:
        return f"{seconds // 86400} d ago"
    return timezone.localtime(value).strftime("%b %d, %Y")


@register.filter
def first_line(text: str | None, limit: int = 120) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters."""
    if not text:
        return ""
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    limit = int(limit)
    return line if len(line) <= limit else line[: limit - 1] + "…"


@register.filter
def tokens(value: int | None) -> str:
    """A token count with thousands separators (``12,345``); an em dash for ``None``."""
    if value is None or value == "":
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def safe_url(url: Any) -> str:
    """``url`` when it is an http(s) URL, else ``""``: escaping alone does not stop a
    ``javascript:`` link the model wrote."""
    if not isinstance(url, str):
        return ""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""
    return url.strip() if scheme in ("http", "https") else ""


@register.filter
def content_blocks(value: Any) -> list[dict[str, Any]]:
    """A ``content`` or ``summary`` value as a list of block dicts: a string becomes one text
    block, a single dict a list of one, anything else one block shown as JSON."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [
            item if isinstance(item, dict)
            else {"type": "text", "text": item} if isinstance(item, str)
            else {"type": "json", "value": item}
            for item in value
        ]
    return [{"type": "json", "value": value}]


CONTENT_BLOCK_TYPES = MEDIA_BLOCK_TYPES | {"text"}


@register.filter
def is_content_list(value: Any) -> bool:
    """Whether ``value`` is a list of content blocks (a result may be a dict, a string, or
    content: gemini-interactions.md §6)."""
    return (
        isinstance(value, list) and bool(value)
        and all(isinstance(item, dict) and item.get("type") in CONTENT_BLOCK_TYPES for item in value)
    )


@register.filter
def is_media(block: dict[str, Any]) -> bool:
    return block.get("type") in MEDIA_BLOCK_TYPES


@register.filter
def request_steps(request: dict[str, Any] | None) -> list[Step]:
    """What an interaction's request sent as ``input``, as unsaved ``Step`` objects so the step
    templates can show them: a string or a run of content blocks becomes a ``user_input`` step;
    items that are steps (``user_input``, ``function_result``, …) are kept as they are."""
    value = (request or {}).get("input")
    if value is None:
        return []
    if isinstance(value, str) or isinstance(value, dict) and value.get("type") not in Step.KNOWN_TYPES:
        return [Step(type="user_input", index=0, data={"type": "user_input", "content": content_blocks(value)})]
    steps: list[Step] = []
    blocks: list[Any] = []

    def flush_blocks() -> None:
        if blocks:
            steps.append(Step(type="user_input", data={"type": "user_input", "content": content_blocks(list(blocks))}))
            blocks.clear()

    for item in value if isinstance(value, list) else [value]:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in Step.KNOWN_TYPES:
            flush_blocks()
            call_id = item.get("id") if kind.endswith("_call") else item.get("call_id")
            steps.append(Step(type=kind, call_id=str(call_id or ""), name=str(item.get("name") or ""), data=item))
        else:
            blocks.append(item)
    flush_blocks()
    for index, step in enumerate(steps):
        step.index = index
    return steps
