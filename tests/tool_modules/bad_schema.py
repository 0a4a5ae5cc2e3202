"""Registers a tool whose parameters are not a JSON Schema."""

from approvals.tools import register


@register(description="Broken.", parameters={"type": "objekt", "properties": {"n": {"type": "integer"}}})
def count_things(n: int) -> dict:
    return {}
