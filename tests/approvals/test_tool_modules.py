"""Tools and policies from a team's own package (HANDOFF_TOOL_MODULES), loaded at start-up by
every process; a module that cannot be loaded stops start-up with a message naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from approvals import tools
from approvals.models import Approval
from tests.factories import requested_call

ROOT = Path(__file__).resolve().parents[2]
LIST_TOOLS = "import django; django.setup(); from approvals import tools; print(','.join(sorted(tools.registry)))"


def start(modules: str | None, code: str = LIST_TOOLS) -> subprocess.CompletedProcess:
    """A fresh process started as the web, worker and commands are (``django.setup()``)."""
    env = {k: v for k, v in os.environ.items() if k != "HANDOFF_TOOL_MODULES"}
    if modules is not None:
        env["HANDOFF_TOOL_MODULES"] = modules
    env.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_production_start_loads_no_demo_tools():
    started = start(None)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == ""


def test_the_named_modules_register_their_tools_in_order():
    started = start("approvals.demo, tests.tool_modules.team_tools")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip().split(",") == [
        "issue_refund", "lookup_order", "restock_item", "send_customer_email", "ship_parcel"]


@pytest.mark.parametrize("modules, named", [
    ("tests.tool_modules.fails_to_import",
     ["tests.tool_modules.fails_to_import", "could not be imported", "handoff_no_such_package"]),
    ("no_such_team.tools", ["'no_such_team.tools' could not be imported", "ModuleNotFoundError"]),
    ("approvals.demo,tests.tool_modules.duplicate_tool",
     ["tests.tool_modules.duplicate_tool", "'issue_refund'", "already registered by module approvals.demo"]),
    ("tests.tool_modules.bad_schema",
     ["tests.tool_modules.bad_schema", "'count_things'", "not a valid JSON Schema", "type"]),
])
def test_a_module_that_cannot_be_loaded_stops_start_up_naming_the_module_and_tool(modules, named):
    started = start(modules, "import django; django.setup(); print('started')")
    assert started.returncode != 0
    assert "started" not in started.stdout
    assert "ToolRegistrationError" in started.stderr
    for words in named:
        assert words in started.stderr


def test_manage_py_refuses_to_start_too():
    env = {**os.environ, "HANDOFF_TOOL_MODULES": "tests.tool_modules.bad_schema"}
    started = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode != 0
    assert "HANDOFF_TOOL_MODULES: tests.tool_modules.bad_schema: Tool 'count_things'" in started.stderr


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(tools, "registry", dict(tools.registry))


def test_a_name_taken_is_refused_in_process_too(fresh_registry):
    with pytest.raises(tools.ToolRegistrationError, match=r"'lookup_order' \(module tests\.approvals"):
        @tools.register(description="again", parameters={"type": "object"})
        def lookup_order(**arguments):
            return {}
    assert tools.registry["lookup_order"].module == "approvals.demo"


def test_an_unknown_decision_is_refused(fresh_registry):
    with pytest.raises(tools.ToolRegistrationError, match="unknown: approve_all"):
        tools.declare(name="page_someone", description="x", parameters={"type": "object"},
                      decisions=frozenset({"approve_all", "reject"}))
    assert "page_someone" not in tools.registry


def test_declare_names_the_module_that_declared(fresh_registry):
    tool = tools.declare(name="page_someone", description="x", parameters={"type": "object"})
    assert tool.module == __name__ and tool.function is None


@pytest.mark.django_db
def test_a_teams_policy_settles_calls_like_the_demos(fresh_registry):
    # Importing the module registers its tools (as load_modules does at start-up).
    import importlib

    import tests.tool_modules.team_tools as team_tools
    tools.registry.pop("restock_item", None)
    tools.registry.pop("ship_parcel", None)
    importlib.reload(team_tools)

    small = requested_call("restock_item", {"sku": "KB-1", "quantity": 5})
    assert small.status != Approval.Status.PENDING
    big = requested_call("restock_item", {"sku": "KB-1", "quantity": 500}, call_id="call_2")
    assert big.is_pending and big.policy == "Orders of more than 100 units need a reviewer."
    assert big.summary == "Reorder 500 × KB-1"
    shipped = requested_call("ship_parcel", {"address": "1 Main St"}, call_id="call_3")
    assert shipped.is_pending and shipped.requires_manual_result
