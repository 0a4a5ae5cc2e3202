"""The audit page's filters."""

from __future__ import annotations

import datetime

from django import forms


class AuditFilterForm(forms.Form):
    """Filters of the audit page and its exports (all optional)."""

    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Until (inclusive)")
    run = forms.IntegerField(required=False, min_value=1, label="Run",
                             widget=forms.NumberInput(attrs={"placeholder": "#"}))
    actor = forms.CharField(required=False, max_length=150,
                            widget=forms.TextInput(attrs={"placeholder": "username", "autocomplete": "off"}))
    # A placeholder rather than help text under the field, so the row's inputs stay in line.
    verb = forms.CharField(required=False, max_length=64, widget=forms.TextInput(attrs={
        "placeholder": "approval.approved, or approval", "autocomplete": "off",
        "title": "A verb (approval.approved), or a family (approval).",
    }))
    tool = forms.CharField(required=False, max_length=200,
                           widget=forms.TextInput(attrs={"placeholder": "any", "autocomplete": "off"}))

    def clean_until(self):
        until = self.cleaned_data.get("until")
        # ``until`` includes its day, so events are kept up to the next midnight: the calendar's
        # last day has none.
        if until == datetime.date.max:
            raise forms.ValidationError(f"Give a date before {datetime.date.max.isoformat()}.")
        return until

    def filters(self) -> dict:
        """Keyword arguments for ``AuditEventQuerySet.filtered`` (dates as UTC midnights;
        ``until`` includes its day)."""
        data = self.cleaned_data
        midnight = lambda day: datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.timezone.utc)  # noqa: E731
        return {
            "since": midnight(data["since"]) if data.get("since") else None,
            "until": midnight(data["until"] + datetime.timedelta(days=1)) if data.get("until") else None,
            "run_id": data.get("run"), "actor": data.get("actor", ""), "verb": data.get("verb", ""),
            "tool": data.get("tool", ""),
        }
