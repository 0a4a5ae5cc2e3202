"""A tool's summary line: registered with the tool, read first on the queue and the approval page."""

import logging

import pytest

from approvals import tools

SCHEMA = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
    "required": ["sku", "quantity"],
}


@pytest.fixture
def restock(monkeypatch):
    """A tool registered the public way, removed again after the test."""
    monkeypatch.setattr(tools, "registry", dict(tools.registry))

    def summary(arguments):
        return f"Order {arguments['quantity']} × {arguments['sku']}"

    @tools.register(description="Reorder stock.", parameters=SCHEMA, summary=summary)
    def restock(sku: str, quantity: int) -> dict:
        return {"ordered": quantity}

    return tools.registry["restock"]


def test_the_registered_summary_reads_the_arguments(restock):
    assert tools.summary_line("restock", {"sku": "KB-1", "quantity": 3}) == "Order 3 × KB-1"


def test_a_declared_tool_without_body_may_have_one(monkeypatch):
    monkeypatch.setattr(tools, "registry", dict(tools.registry))
    tools.declare(name="page_oncall", description="Page the on-call engineer.",
                  parameters={"type": "object", "properties": {"team": {"type": "string"}}},
                  summary=lambda arguments: f"Page {arguments.get('team', 'someone')}")
    assert tools.summary_line("page_oncall", {"team": "payments"}) == "Page payments"


def test_arguments_that_do_not_fit_the_schema_are_not_summarized(restock):
    # The summary was written for valid arguments; on others it would mislead (or fail).
    assert tools.summary_line("restock", {"sku": "KB-1", "quantity": "lots"}) == ""
    assert tools.summary_line("restock", ["not", "an", "object"]) == ""


def test_no_summary_for_an_unknown_tool_or_one_registered_without(restock, monkeypatch):
    assert tools.summary_line("no_such_tool", {"sku": "KB-1"}) == ""
    monkeypatch.setitem(tools.registry, "restock", tools.Tool(
        "restock", "Reorder stock.", SCHEMA, restock.function))
    assert tools.summary_line("restock", {"sku": "KB-1", "quantity": 3}) == ""


def test_a_failing_summary_shows_nothing_and_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(tools, "registry", dict(tools.registry))

    @tools.register(description="x", parameters=SCHEMA, summary=lambda arguments: 1 / 0)
    def broken(sku: str, quantity: int) -> dict:
        return {}

    with caplog.at_level(logging.ERROR, logger="approvals.tools"):
        assert tools.summary_line("broken", {"sku": "KB-1", "quantity": 3}) == ""
    assert "The summary of broken failed" in caplog.text


def test_it_is_one_line_cut_at_the_limit(monkeypatch):
    monkeypatch.setattr(tools, "registry", dict(tools.registry))

    @tools.register(description="x", parameters=SCHEMA, summary=lambda arguments: "line one\n\tline two " + "y" * 500)
    def long_one(sku: str, quantity: int) -> dict:
        return {}

    line = tools.summary_line("long_one", {"sku": "KB-1", "quantity": 3})
    assert line.startswith("line one line two yyy")
    assert len(line) == tools.SUMMARY_LIMIT and line.endswith("…")


def test_the_demo_tools_summaries():
    assert tools.summary_line("issue_refund", {"order_id": "A-1001", "amount": 249, "reason": "Broken"}) == (
        "Refund $249.00 on order A-1001: Broken")
    assert tools.summary_line("lookup_order", {"order_id": "A-1002"}) == "Look up order A-1002"
    assert tools.summary_line("send_customer_email", {"to": "ana@example.com", "subject": "Your refund",
                                                       "body": "…"}) == "Email ana@example.com: Your refund"
