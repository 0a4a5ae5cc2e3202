"""The house's shape: the import contracts in pyproject.toml (``[tool.importlinter]``: the layers
dashboard → approvals → runs → audit, no import circle inside an app) hold, and every task that
code queues by name (to keep that graph free of circles) is a registered task."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from celery import current_app

ROOT = Path(__file__).resolve().parent.parent
# The modules that queue tasks by name, and the app whose tasks they name.
QUEUERS = {"runs.execution": "runs.tasks", "approvals.models": "approvals.tasks", "approvals.notifications": "approvals.tasks"}


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module,tasks_module", sorted(QUEUERS.items()))
def test_every_task_queued_by_name_is_registered_where_its_name_says(module, tasks_module):
    names = {value for key, value in vars(importlib.import_module(module)).items()
             if key.endswith("_TASK") and isinstance(value, str)}
    assert names, f"{module} names no task"
    for name in names:
        task = current_app.tasks[name]  # registered at start-up (the app's ready()), KeyError if not
        assert name.rsplit(".", 1)[0] == tasks_module
        assert task.__module__ == tasks_module
