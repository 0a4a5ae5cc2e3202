"""Registered tools: Python functions whose declarations are sent to Gemini and whose bodies run
in a worker once their call is settled, each with the policy that settles its calls.

A team registers its own tools in its own package, with ``register`` (a function with a body),
``declare`` (a tool with no body in Handoff: a person, or the caller, answers its calls) and
policies returning ``Requirement``; ``HANDOFF_TOOL_MODULES`` (comma-separated import paths) names
the modules that do it, imported at start-up by ``load_modules`` in every process (web, worker,
commands). ``approvals.demo`` is such a module; README, "Your own tools", gives an example.

A declaration is the API's flat function tool (docs/interactions-api.md §2.3):
``{"type": "function", "name": ..., "description": ..., "parameters": <JSON Schema>}``.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import jsonschema
from django.core.exceptions import ImproperlyConfigured

from approvals import policies
from approvals.policies import Requirement

__all__ = ["Requirement", "Tool", "ToolRegistrationError", "declare", "register"]

logger = logging.getLogger(__name__)

# The decisions a reviewer can take on a call: approve as asked, edit the arguments then
# approve, answer with a result typed by hand, reject with a reason.
APPROVE, EDIT, RESPOND, REJECT = "approve", "edit", "respond", "reject"
DECISIONS = frozenset({APPROVE, EDIT, RESPOND, REJECT})
WITH_BODY = frozenset({APPROVE, EDIT, REJECT})
WITHOUT_BODY = frozenset({RESPOND, REJECT})


class ToolRegistrationError(ImproperlyConfigured):
    """A tool module cannot be loaded, or a tool cannot be registered as given (a name taken by
    another tool, an invalid JSON Schema, an unknown decision). The message names the module and
    the tool; start-up stops on it."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    # The body; ``None`` for a tool Handoff declares but cannot run: a person answers its calls.
    function: Callable[..., Any] | None
    policy: Callable[[dict[str, Any]], Requirement] = field(default=policies.run_at_once)
    # Which decisions reviewers may take on its calls (part of the registration).
    decisions: frozenset[str] = WITH_BODY
    # One line a reviewer decides on first (the queue, the approval page): ``summary(arguments)``.
    summary: Callable[[dict[str, Any]], str] | None = None
    # The module that registered it, named in errors.
    module: str = ""

    def declaration(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


registry: dict[str, Tool] = {}


def _add(tool: Tool) -> Tool:
    """Check ``tool`` and put it in the registry. Raises ``ToolRegistrationError``."""
    where = f"{tool.name!r} (module {tool.module or 'unknown'})"
    if not isinstance(tool.name, str) or not tool.name:
        raise ToolRegistrationError(f"A tool of module {tool.module or 'unknown'} has no name.")
    taken = registry.get(tool.name)
    if taken is not None:
        raise ToolRegistrationError(
            f"Tool {where} is already registered by module {taken.module or 'unknown'}: tool names are unique.")
    try:
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
    except jsonschema.exceptions.SchemaError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "parameters"
        raise ToolRegistrationError(
            f"Tool {where}: its parameters are not a valid JSON Schema ({path}: {_shorten(error.message)}).") from None
    unknown = ", ".join(sorted(tool.decisions - DECISIONS))
    if unknown or not tool.decisions:
        raise ToolRegistrationError(
            f"Tool {where}: decisions must be some of {', '.join(sorted(DECISIONS))}"
            + (f" (unknown: {unknown})." if unknown else "."))
    for part, value in (("policy", tool.policy), ("summary", tool.summary)):
        if value is not None and not callable(value):
            raise ToolRegistrationError(f"Tool {where}: its {part} is not callable.")
    registry[tool.name] = tool
    return tool


def register(
    *, description: str, parameters: dict[str, Any], policy=policies.run_at_once, name: str | None = None,
    decisions: frozenset[str] = WITH_BODY, summary: Callable[[dict[str, Any]], str] | None = None,
):
    """Decorator registering a function as a tool under its own name (or ``name``); returns the
    function unchanged.

    ``parameters``: the JSON Schema (draft 2020-12) of its arguments, sent to the model as the
    declaration's ``parameters`` and checked on every call. ``policy(arguments) -> Requirement``
    settles each call (default: it runs at once). ``decisions``: those reviewers may take, some
    of ``approve``, ``edit``, ``respond``, ``reject``. ``summary(arguments) -> str``: the one line
    shown first on the queue and the approval page (``summary_line``).

    Raises ``ToolRegistrationError`` for a name already registered, an invalid schema or an
    unknown decision."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        _add(Tool(name or function.__name__, description, parameters, function, policy or policies.run_at_once,
                  frozenset(decisions),
                  summary, getattr(function, "__module__", "") or ""))
        return function

    return decorator


def declare(
    *, name: str, description: str, parameters: dict[str, Any], policy=None,
    decisions: frozenset[str] = WITHOUT_BODY, summary: Callable[[dict[str, Any]], str] | None = None,
) -> Tool:
    """Register a tool Handoff declares to the model but has no body for: a person answers each
    call with a result typed by hand (or, for a call handed over by the caller, the caller runs
    it). Arguments as for ``register``; the policy defaults to running at once, which for a tool
    with no body still means a person's answer (``evaluate``). Returns the ``Tool``; raises
    ``ToolRegistrationError`` as ``register`` does."""
    module = sys._getframe(1).f_globals.get("__name__", "")  # the caller's module, as logging finds it
    return _add(Tool(name, description, parameters, None, policy or policies.run_at_once, frozenset(decisions),
                     summary, module))


def load_modules(paths: list[str]) -> None:
    """Import each tool module in ``paths`` (``HANDOFF_TOOL_MODULES``), in order; importing one
    registers its tools. A module imported already (by another path or an earlier call) is not
    run again. Raises ``ToolRegistrationError`` naming the module when one cannot be imported or
    registers a tool wrongly."""
    for path in paths:
        try:
            importlib.import_module(path)
        except ToolRegistrationError as error:
            raise ToolRegistrationError(f"HANDOFF_TOOL_MODULES: {path}: {error}") from error
        except Exception as error:
            raise ToolRegistrationError(
                f"HANDOFF_TOOL_MODULES: module {path!r} could not be imported: {type(error).__name__}: {error}"
            ) from error


def get(name: str) -> Tool | None:
    return registry.get(name)


def allowed_decisions(name: str) -> frozenset[str]:
    """The decisions reviewers may take on a call of ``name``; a function Handoff does not know
    can only be answered by hand or rejected."""
    tool = registry.get(name)
    if tool is None or tool.function is None:
        return (tool.decisions if tool else WITHOUT_BODY) - {APPROVE, EDIT}
    return tool.decisions


SUMMARY_LIMIT = 160  # characters


def summary_line(name: str, arguments: Any, *, fits: bool | None = None) -> str:
    """The line a reviewer reads first about a call of ``name``: its tool's ``summary(arguments)``,
    one line of at most ``SUMMARY_LIMIT`` characters (cut with "…"), or ``""`` when the tool has
    no summary, is not registered, or its summary fails on these arguments (the failure is logged;
    the arguments, always shown beside it, stay the record). Arguments that do not fit the
    schema are never summarized: a summary written for valid arguments would mislead. ``fits``:
    whether they fit, when the caller knows already (``Approval.schema_error``); checked here when
    ``None``."""
    tool = registry.get(name)
    if tool is None or tool.summary is None or not isinstance(arguments, dict):
        return ""
    if not (fits if fits is not None else not schema_error(name, arguments)):
        return ""
    try:
        line = tool.summary(arguments)
    except Exception:
        logger.exception("The summary of %s failed on its arguments; the queue shows them instead.", name)
        return ""
    return _shorten(" ".join(str(line).split()), SUMMARY_LIMIT) if line else ""


def schema_error(name: str, arguments: Any) -> str:
    """Why ``arguments`` do not fit the JSON Schema of the tool ``name``: ``"<path>: <message>"``
    for the most relevant problem (``jsonschema.exceptions.best_match``), or ``""`` when they
    fit or the tool is not registered (it has no schema here). A number that JSON cannot carry
    (NaN, an infinity: Python's ``json`` reads them, PostgreSQL's jsonb refuses them) never fits."""
    tool = registry.get(name)
    if tool is None:
        return ""
    bad_number = _non_finite_path(arguments)
    if bad_number is not None:
        return f"{bad_number or 'arguments'}: not a finite number"
    validator = jsonschema.Draft202012Validator(tool.parameters)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "arguments"
    return f"{where}: {_shorten(error.message)}"


def _non_finite_path(value: Any, path: str = "") -> str | None:
    """The path of the first float in ``value`` that is NaN or infinite, else ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite_path(child, f"{path}/{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def edit_error(name: str, arguments: Any) -> str:
    """Why edited ``arguments`` cannot be put in force for a call of ``name``: one sentence for
    the person who typed them, or ``""`` when they fit the tool's JSON Schema. The edit form
    shows it as the field's error; ``Approval.approve`` refuses the edit with it
    (``DecisionRefused``), so the page and the model say the same."""
    if registry.get(name) is None:
        return f"{name} is not a registered tool: its arguments cannot be edited."
    problem = schema_error(name, arguments)
    if problem:
        return f"The edited arguments do not fit {name}'s schema ({problem})."
    return ""


def evaluate(name: str, arguments: dict[str, Any], *, schema_error: str = "") -> Requirement:
    """The policy requirement for a call of ``name`` with ``arguments``: its tool's policy, or a
    person's answer when Handoff has no tool or no body for it.

    ``schema_error``: why the arguments do not fit the tool's schema (``schema_error(name,
    arguments)``), ``""`` when they fit. Such a
    call never runs at once, whatever its policy says of it: it waits for a person, who sees
    the error and decides, with at least what the policy would ask (a policy that fails on the
    arguments asks for one reviewer)."""
    if schema_error:
        try:
            asked = evaluate(name, arguments)
        except Exception:  # a policy written for valid arguments may fail on others
            asked = Requirement(True, "")
        return replace(
            asked, needs_approval=True,
            reason=f"The arguments do not fit {name}'s schema ({schema_error}): a person decides.",
        )
    tool = registry.get(name)
    if tool is None:
        return Requirement(True, f"{name} is not a registered tool: a person answers it by hand.",
                                    manual_result=True)
    if tool.function is None:
        return Requirement(True, f"{name} has no body in Handoff: a person answers it by hand.",
                                    manual_result=True)
    return tool.policy(arguments)


def declarations(names: list[str]) -> list[dict[str, Any]]:
    """The declarations of the named tools, in order. Raises ``KeyError`` naming an unknown tool."""
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise KeyError(f"Unknown tool(s): {', '.join(unknown)}. Registered: {', '.join(sorted(registry))}.")
    return [registry[n].declaration() for n in names]
