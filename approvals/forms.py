"""Forms for deciding a function call. They only clean input; ``Approval.approve`` and
``Approval.reject`` take the decision."""

from __future__ import annotations

import json
from typing import Any

from django import forms


class ApproveForm(forms.Form):
    """``shown_hash``: the ``arguments_hash`` of the arguments the reviewer was shown.
    ``result``: the JSON to send as the function's result, only for calls Handoff has no body for
    (``requires_result=True``); the field does not exist otherwise."""

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
        text = self.cleaned_data["result"]
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
                'Quote strings: "like this".'
            ) from None
        if value is None:
            raise forms.ValidationError("Type the result to send: null is not a result.")
        return value


class RejectForm(forms.Form):
    """``shown_hash`` as above; ``reason``: why, required, since the model is told it."""

    shown_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Why this call should not run (the model is told)."}),
        error_messages={"required": "Give a reason: the model is told why its call was rejected."},
    )
