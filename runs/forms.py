from datetime import date
from typing import Any

from django import forms

from runs import execution
from runs.models import Run


class ContinueForm(forms.Form):
    text = forms.CharField(
        label="New message", widget=forms.Textarea(attrs={"rows": 3}), max_length=20_000, strip=True,
    )


class TrackForm(forms.Form):
    # The API's id format (runs.execution.INTERACTION_ID): the SDK puts the id into the request
    # path unquoted, so "/", "." and "%" never pass.
    interaction_id = forms.RegexField(
        label="Interaction id", max_length=200, regex=execution.INTERACTION_ID, strip=True,
        error_messages={"invalid": execution.INTERACTION_ID_RULE, "required": execution.INTERACTION_ID_RULE},
        help_text="The id of an interaction started elsewhere, e.g. v1_ChdPU0F4…",
    )


class RunFilterForm(forms.Form):
    """The run list's filters and sort order, read from the query string so a view of the list
    can be bookmarked. Bound to ``request.GET``; every field is optional. A value that does not
    clean is left out of ``cleaned_data`` and the list shows its error instead of applying it."""

    SORTS = {
        "started": "Started (newest first)",
        "duration": "Duration (longest first)",
        "tokens": "Tokens (most first)",
    }

    q = forms.CharField(label="Search", required=False, max_length=500)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Run.Status.choices])
    model = forms.CharField(label="Model", required=False, max_length=200)
    agent = forms.CharField(label="Agent", required=False, max_length=200)
    # Run.tool_names is ",name,name,": a comma in the name would match across two names.
    tool = forms.RegexField(
        label="Tool", required=False, max_length=200, regex=r"^[^,]*$",
        error_messages={"invalid": "A tool name has no commas."},
    )
    by = forms.CharField(label="Started by", required=False, max_length=150)
    pending = forms.BooleanField(label="Has pending approvals", required=False)
    sort = forms.ChoiceField(label="Sort", required=False, choices=list(SORTS.items()))

    def filters(self) -> dict[str, Any]:
        """The filters that cleaned, as the keyword arguments of ``RunQuerySet.filtered`` (every
        one of them: an empty value for a filter left out)."""
        data = self.cleaned_data
        return {
            "status": data.get("status") or "", "model": data.get("model") or "",
            "agent": data.get("agent") or "", "tool": data.get("tool") or "", "by": data.get("by") or "",
            "pending": bool(data.get("pending")), "since": data.get("from"), "until": data.get("to"),
            "text": data.get("q") or "",
        }

    def clean_to(self):
        end = self.cleaned_data.get("to")
        # The list keeps runs started before the midnight after ``to``: the calendar's last day
        # has none.
        if end == date.max:
            raise forms.ValidationError(f"Give a date before {date.max.isoformat()}.")
        return end

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and end < start:
            self.add_error("to", "The end date is before the start date.")
        return cleaned


# ``from`` is a Python keyword, so the date range is added by name: ISO dates (what
# <input type="date"> sends), both ends inclusive.
RunFilterForm.base_fields["from"] = forms.DateField(label="From", required=False, input_formats=["%Y-%m-%d"])
RunFilterForm.base_fields["to"] = forms.DateField(label="To", required=False, input_formats=["%Y-%m-%d"])
