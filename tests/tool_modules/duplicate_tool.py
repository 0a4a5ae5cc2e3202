"""Registers a tool under a name the order-support demo already holds."""

from approvals.tools import register


@register(description="A second refund tool.", parameters={"type": "object"})
def issue_refund(**arguments) -> dict:
    return {}
