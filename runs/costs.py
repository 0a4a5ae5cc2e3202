"""Estimated cost of interactions from their usage and the price table in settings
(``GEMINI_PRICES``: USD per 1M tokens of ``input``, ``output`` and ``cached_input``).

An estimate, never a bill: it reads the usage fields of docs/interactions-api.md §4 and prices them
at the table's single tier.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings

MILLION = Decimal(1_000_000)


def _tokens(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value > 0 else 0


def estimate_usd(model: str, usage: dict[str, Any] | None) -> Decimal | None:
    """The estimated cost in USD of ``usage`` (one interaction's, or a run's summed: the estimate
    is linear) on ``model``, or ``None`` when the model has no price in
    ``settings.GEMINI_PRICES`` (agents included) or there is no usage yet.

    How usage maps to prices:
    * ``total_cached_tokens`` are part of ``total_input_tokens`` (the API reference's deep-research
      example adds input, output and thought tokens up to ``total_tokens`` without the cached
      ones), so they are taken out of the input and priced at ``cached_input``;
    * ``total_tool_use_tokens`` are prompt tokens of built-in tools: priced as input;
    * ``total_thought_tokens`` are billed as output, next to ``total_output_tokens``.
    """
    prices = settings.GEMINI_PRICES.get(model)
    if prices is None or not usage:
        return None
    cached = _tokens(usage, "total_cached_tokens")
    fresh_input = max(_tokens(usage, "total_input_tokens") - cached, 0) + _tokens(usage, "total_tool_use_tokens")
    output = _tokens(usage, "total_output_tokens") + _tokens(usage, "total_thought_tokens")
    total = (
        fresh_input * Decimal(str(prices["input"]))
        + cached * Decimal(str(prices["cached_input"]))
        + output * Decimal(str(prices["output"]))
    )
    return total / MILLION

