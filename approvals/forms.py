"""Forms for the approval desk. They only clean input; ``Approval`` methods take the decisions and
the views apply the queue's filters."""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms

from approvals import tools

# Levels of arrays and objects typed JSON may nest: far more than a tool's arguments or result
# need, and well inside the recursion limit of everything that walks the value afterwards
# (hashing, the schema check, the database driver).
MAX_JSON_DEPTH = 100
TOO_DEEP = f"The JSON is nested too deep: at most {MAX_JSON_DEPTH} levels of arrays and objects."


class _Unstorable(Exception):
    """A typed value jsonb cannot store as given. Raised from inside ``json.loads`` too, so the
    parse stops at the first one."""


def _refuse_constant(name: str) -> None:
    raise _Unstorable(f"{name} is not a JSON number: give a finite number, or text in quotes.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Unstorable(f"{text} is too large a number: a number must fit a double (at most about 1.8e308).")
    return value


def _check_text(text: str) -> None:
    # PostgreSQL's jsonb refuses both ("\u0000 cannot be converted to text"; a surrogate half
    # cannot be encoded as UTF-8), so they are refused here rather than when the row is saved.
    if "\x00" in text:
        raise _Unstorable("Text cannot hold the null character (\\u0000).")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        half = next(c for c in text if "\ud800" <= c <= "\udfff")
        raise _Unstorable(
            f"Text holds a lone surrogate (\\u{ord(half):04x}), half of a character: give the whole character."
        ) from None


def _check_storable(value: Any) -> None:
    # A loop, not recursion: the depth is what is refused, before anything recursive walks it.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _Unstorable(TOO_DEEP)
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def parse_json(text: str) -> Any:
    """The value of JSON a person typed (``text``), only when PostgreSQL's jsonb can store it as
    given: numbers finite (no ``NaN``, ``Infinity``, ``-Infinity``, nor one beyond a double such
    as ``1e400``, which Python's ``json`` would read as infinity), no ``\\u0000`` and no lone
    surrogate (``\\ud800``) in a string or a key, at most ``MAX_JSON_DEPTH`` levels of arrays
    and objects. Every form field and command option that takes typed JSON reads it here, so
    the page and the command refuse the same values with the same words.

    Raises ``django.forms.ValidationError`` with one message for the person."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        _check_storable(value)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"This is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            'Quote strings: "like this".'
        ) from None
    except _Unstorable as exc:
        raise forms.ValidationError(str(exc)) from None
    except RecursionError:
        raise forms.ValidationError(TOO_DEEP) from None
    except ValueError:
        # int() refuses more than sys.get_int_max_str_digits() digits (4,300 by default).
        raise forms.ValidationError("A number in it has too many digits.") from None
    return value


class ApproveForm(forms.Form):
    """``shown_hash``: the ``arguments_hash`` of the arguments the reviewer was shown.
    ``result``: the JSON to send as the function's result, only when answering by hand
    (``requires_result=True``: a call Handoff has no body for, or a *respond* decision); the
    field does not exist otherwise."""

    shown_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    result = forms.CharField(
        label="Result to send",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono",
                                     "placeholder": '{"status": "done"}'}),
        help_text="JSON: an object, a list, a string in quotes, a number…",
    )

    def __init__(self, *args: Any, requires_result: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not requires_result:
            del self.fields["result"]

    def clean_result(self) -> Any:
        value = parse_json(self.cleaned_data["result"])
        if value is None:
            raise forms.ValidationError("Type the result to send: null is not a result.")
        return value


class EditForm(forms.Form):
    """Edit the arguments, then approve them. ``arguments``: a JSON object, checked against the
    tool's JSON Schema when it differs from ``current`` (the arguments in force), so a schema
    error is shown in the form; ``Approval.approve`` checks again."""

    shown_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    arguments = forms.CharField(
        label="Arguments",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}),
        help_text="JSON object; checked against the tool's schema before it is approved.",
        error_messages={"required": "Give the arguments to approve (a JSON object)."},
    )

    def __init__(self, *args: Any, function_name: str, current: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.function_name = function_name
        self.current = current
        if not self.is_bound:
            self.initial.setdefault("arguments", json.dumps(current, indent=2, ensure_ascii=False))

    def clean_arguments(self) -> dict[str, Any]:
        value = parse_json(self.cleaned_data["arguments"])
        if not isinstance(value, dict):
            raise forms.ValidationError("The arguments must be a JSON object: {\"name\": value, …}.")
        if value != self.current:
            problem = tools.edit_error(self.function_name, value)
            if problem:
                raise forms.ValidationError(problem)
        return value


class RejectForm(forms.Form):
    """``shown_hash`` as above; ``reason``: why, required, since the model is told it."""

    shown_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Why this call should not run (the model is told)."}),
        error_messages={"required": "Give a reason: the model is told why its call was rejected."},
    )


class QueueFilterForm(forms.Form):
    """The queue's tab and filters, read from the query string so a view of the queue can be
    bookmarked; the bulk page and "Claim next" take the same fields. Every field is optional; a
    value that does not clean is left out of ``cleaned_data`` and its error shown instead."""

    STATES = {"pending": "Pending", "claimed": "Claimed", "decided": "Decided", "expired": "Expired"}
    AGES = {"1h": "Older than 1 hour", "4h": "Older than 4 hours", "1d": "Older than 1 day"}
    REQUIREMENTS = {"single": "One approval", "four-eyes": "Four-eyes (two or more)"}

    state = forms.ChoiceField(label="State", required=False, choices=list(STATES.items()))
    tool = forms.CharField(label="Tool", required=False, max_length=200)
    run = forms.IntegerField(label="Run", required=False, min_value=1,
                             error_messages={"invalid": "A run is named by its number."})
    age = forms.ChoiceField(label="Age", required=False, choices=[("", "Any age"), *AGES.items()])
    assignee = forms.CharField(label="Claimed by", required=False, max_length=150,
                               help_text='A username, or "me".')
    policy = forms.CharField(label="Policy says", required=False, max_length=200)
    requirement = forms.ChoiceField(label="Requirement", required=False,
                                    choices=[("", "Any requirement"), *REQUIREMENTS.items()])
    group = forms.CharField(label="Approver group", required=False, max_length=150)

    FILTERS = ("tool", "run", "age", "assignee", "policy", "requirement", "group")

    def active_filters(self) -> dict[str, Any]:
        """The filters that cleaned and are set (the state tab apart), as query-string values."""
        data = getattr(self, "cleaned_data", {})
        return {name: data[name] for name in self.FILTERS if data.get(name) not in (None, "")}


class ItemsField(forms.Field):
    """The calls a bulk decision covers, each as ``<approval id>:<arguments hash shown>``."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": "Select at least one call.",
        "invalid": "A selected call is malformed; open the preview again.",
    }

    def to_python(self, value: Any) -> list[tuple[int, str]]:
        items = []
        for entry in value or []:
            pk, _, shown_hash = str(entry).partition(":")
            if not pk.isdigit() or not shown_hash or len(shown_hash) > 64:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            items.append((int(pk), shown_hash))
        return list(dict.fromkeys(items))


class BulkDecisionForm(forms.Form):
    """One verdict for several calls. ``items``: what the preview showed; ``reason``: required to
    reject (the model is told it), ignored to approve."""

    VERDICTS = {"approve": "Approve", "reject": "Reject"}

    items = ItemsField()
    verdict = forms.ChoiceField(choices=list(VERDICTS.items()))
    reason = forms.CharField(
        label="Reason (required to reject)", required=False,
        widget=forms.Textarea(attrs={"rows": 2,
                                     "placeholder": "Why these calls should not run (each model is told)."}),
    )

    def __init__(self, *args: Any, limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit

    def clean_items(self) -> list[tuple[int, str]]:
        items = self.cleaned_data["items"]
        if len(items) > self.limit:
            raise forms.ValidationError(f"At most {self.limit} calls can be decided together.")
        return items

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("verdict") == "reject" and not cleaned.get("reason"):
            self.add_error("reason", "Give a reason: each model is told why its call was rejected.")
        return cleaned
