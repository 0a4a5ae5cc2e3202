"""Filters for showing runs, interactions and steps: JSON, durations, ages, and which small
template renders each step type.

Everything here returns plain strings, escaped by the template engine like any other value,
except ``markdown``: its HTML comes from ``runs.markdown``, which renders with raw HTML off and
sanitizes what it renders.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from runs import images
from runs import markdown as rendering
from runs.formats import duration
from runs.models import Interaction, Run, Step

register = template.Library()

# Content block types that carry binary data (base64 in ``data``) or a ``uri``: shown as a
# placeholder, never dumped into the page.
MEDIA_BLOCK_TYPES = frozenset({"image", "audio", "video", "document"})


@register.filter
def step_template(step: Step) -> str:
    """The template name for ``step``: ``runs/steps/<type>.html`` for every type of
    ``Step.KNOWN_TYPES`` (each has one: tests/runs/test_step_templates.py), else
    ``runs/steps/generic.html``, which shows the raw JSON of a type Handoff does not know."""
    if step.is_known:
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


# The project's one duration format (``runs.formats.duration``): ``{{ ms|duration }}``.
register.filter("duration", duration)


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
    content: docs/interactions-api.md §6)."""
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
            steps.append(Step.from_api(item))
        else:
            blocks.append(item)
    flush_blocks()
    for index, step in enumerate(steps):
        step.index = index
    return steps


# --- Run detail: media, structured output, Markdown, citations, raw JSON, money, live timing -----

# Strings longer than this are cut in the raw JSON shown on the page (base64 media above all);
# the raw response artifact keeps them whole.
RAW_JSON_STRING_LIMIT = 2_000
# A text block longer than this is never tried as JSON.
MAX_JSON_TEXT_CHARS = 1_000_000


@register.simple_tag(takes_context=True)
def image_url(context: template.Context, block: dict[str, Any]) -> str:
    """The Handoff URL that serves image ``block`` (``runs.images``), ``""`` when it is not to be
    shown (``image_refusal`` says why) or the context does not say where it is.

    ``block`` is part of the context's ``step``: a recorded one (``runs:step_image``, by the
    step's id), or one of ``request_steps`` of the context's ``interaction`` (``runs:sent_image``,
    found again in its request's ``input``). The number in the URL is the block's position among
    the image blocks there (``images.position``). Usage: ``{% image_url block as src %}``.
    """
    run, step = context.get("run"), context.get("step")
    if images.refusal(block) or not isinstance(run, Run) or not isinstance(step, Step):
        return ""
    if step.pk is not None:
        found = images.position(step.data, block)
        return "" if found is None else reverse("runs:step_image", args=[run.pk, step.pk, found])
    interaction = context.get("interaction")
    if not isinstance(interaction, Interaction) or interaction.pk is None:
        return ""
    found = images.position((interaction.request or {}).get("input"), block)
    return "" if found is None else reverse("runs:sent_image", args=[run.pk, interaction.pk, found])


@register.filter
def image_refusal(block: dict[str, Any]) -> str:
    """Why an image block is not shown inline (``""`` when it is): ``runs.images.refusal``."""
    return images.refusal(block)


@register.filter
def image_bytes(block: dict[str, Any]) -> int:
    """The size of an image block's data once decoded, in bytes (from the length of its base64,
    without decoding it); 0 without data."""
    data = block.get("data") if isinstance(block, dict) else None
    if not isinstance(data, str):
        return 0
    return len(data) // 4 * 3 - len(data[-2:]) + len(data[-2:].rstrip("="))


@register.filter
def markdown(block: dict[str, Any]) -> SafeString | str:
    """The text of a text block as sanitized HTML (``runs.markdown.to_html``), with its
    citation marks (``cited_segments``) after the cited words; ``""`` for a text longer than
    ``runs.markdown.MAX_MARKDOWN_CHARS`` characters, which the template shows as plain text."""
    text = block.get("text") if isinstance(block, dict) else None
    if not isinstance(text, str) or len(text) > rendering.MAX_MARKDOWN_CHARS:
        return ""
    return rendering.to_html([(segment["text"], segment["marks"]) for segment in cited_segments(block)])


@register.filter
def json_text(text: Any) -> str:
    """``text`` pretty-printed when it is a JSON object or array (structured output), else ``""``."""
    if not isinstance(text, str) or len(text) > MAX_JSON_TEXT_CHARS:
        return ""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return ""
    try:
        value = json.loads(stripped)
    except ValueError:
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False)


@register.filter
def citations(block: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``url_citation`` annotations of a text block, numbered from 1 (``number``) with
    ``href``: the URL when it is http(s), else ``""`` (shown as text, never as a link)."""
    annotations = block.get("annotations") if isinstance(block, dict) else None
    if not isinstance(annotations, list):
        return []
    found = []
    for annotation in annotations:
        if isinstance(annotation, dict) and annotation.get("type") == "url_citation":
            found.append({**annotation, "number": len(found) + 1, "href": safe_url(annotation.get("url"))})
    return found


@register.filter
def cited_segments(block: dict[str, Any]) -> list[dict[str, Any]]:
    """The text of a block cut where citations end: ``[{"text", "marks": [numbers]}]``, so the
    template can put ``[n]`` after the cited words and escape every piece as usual.

    ``end_index`` counts bytes of the UTF-8 text (google-genai's ``URLCitation`` docstring); an
    offset inside a multi-byte character moves back to its start, one out of range is ignored.
    """
    text = block.get("text") if isinstance(block, dict) else None
    if not isinstance(text, str):
        return [{"text": "" if text is None else str(text), "marks": []}]
    encoded = text.encode("utf-8")
    marks: dict[int, list[int]] = {}
    for citation in citations(block):
        end = citation.get("end_index")
        if isinstance(end, int) and not isinstance(end, bool) and 0 < end <= len(encoded):
            while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
                end -= 1
            marks.setdefault(end, []).append(citation["number"])
    segments, start = [], 0
    for end in sorted(marks):
        segments.append({"text": encoded[start:end].decode("utf-8"), "marks": marks[end]})
        start = end
    if start < len(encoded) or not segments:
        segments.append({"text": encoded[start:].decode("utf-8"), "marks": []})
    return segments


def _shorten_strings(value: Any) -> Any:
    if isinstance(value, str) and len(value) > RAW_JSON_STRING_LIMIT:
        return value[:RAW_JSON_STRING_LIMIT] + f"… [{len(value) - RAW_JSON_STRING_LIMIT:,} more characters]"
    if isinstance(value, dict):
        return {key: _shorten_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten_strings(item) for item in value]
    return value


@register.filter
def raw_json(value: Any) -> str:
    """``value`` as indented JSON for the page, with strings over 2,000 characters cut short (the
    raw response artifact has them whole)."""
    return json.dumps(_shorten_strings(value), indent=2, ensure_ascii=False, default=str)


@register.filter
def usd(value: Decimal | None) -> str:
    """An estimated amount in US dollars: ``$1.23``, ``$0.0042`` below a cent, ``<$0.0001`` for
    less; an em dash for ``None``."""
    if value is None or value == "":
        return "—"
    value = Decimal(value)
    if value == 0:
        return "$0.00"
    if value < Decimal("0.0001"):
        return "<$0.0001"
    if value < Decimal("0.01"):
        return f"${value:.4f}"
    return f"${value:,.2f}"


@register.filter
def since_ms(value: datetime | None) -> int | None:
    """Milliseconds from ``value`` until now (for "running for"), ``None`` without a time."""
    if value is None:
        return None
    return max(int((timezone.now() - value).total_seconds() * 1000), 0)


@register.filter
def until(value: datetime | None) -> str:
    """How long until ``value``: ``in 4 s``, ``in 2 min``; ``due now`` once it has passed."""
    if value is None:
        return "—"
    seconds = (value - timezone.now()).total_seconds()
    if seconds <= 0.5:
        return "due now"
    if seconds < 90:
        return f"in {round(seconds)} s"
    return f"in {round(seconds / 60)} min"


@register.filter
def lower_str(value: Any) -> str:
    """``value`` as a lower-case string (the API's enums appear in both cases: ``SUCCESS`` in the
    2026-04 reference, ``success`` in the SDK)."""
    return str(value).lower() if value is not None else ""
