from django import forms

from approvals import tools


class StartRunForm(forms.Form):
    """A new run: a model or a managed agent, an input, registered tools and options. Cleans
    input only; ``runs.execution.create_run`` starts it."""

    TARGETS = [("model", "Model"), ("agent", "Managed agent")]

    target = forms.ChoiceField(choices=TARGETS, initial="model", widget=forms.RadioSelect)
    name = forms.CharField(
        label="Model or agent name", max_length=200, initial="gemini-3-flash-preview",
        help_text="e.g. gemini-3-flash-preview, or deep-research-pro-preview-12-2025 for an agent.",
    )
    input = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=100_000)
    tools = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    background = forms.BooleanField(required=False, help_text="Run in the background and poll until it ends.")
    system_instruction = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=20_000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tools"].choices = [
            (tool.name, f"{tool.name}: {tool.description}") for tool in sorted(tools.registry.values(), key=lambda t: t.name)
        ]

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if any(c.isspace() for c in name):
            raise forms.ValidationError("A model or agent name has no spaces.")
        return name

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("target") == "agent" and cleaned.get("tools"):
            # Handoff's tools are client-side function tools; a managed agent brings its own.
            self.add_error("tools", "Function tools are for models; a managed agent uses its own tools.")
        return cleaned

    def run_options(self) -> dict:
        """Keyword arguments for ``runs.execution.create_run``."""
        data = self.cleaned_data
        return {
            data["target"]: data["name"],
            "input": data["input"],
            "tools": tools.declarations(data["tools"]),
            "background": data["background"],
            "system_instruction": data["system_instruction"],
        }


class ApiTokenForm(forms.Form):
    """A new API token of one's own (``dashboard.models.ApiToken.issue`` checks it again)."""

    from audit.roles import SCOPES as _SCOPES

    name = forms.CharField(max_length=100, help_text="What it is for, e.g. refund-bot. Shown in the audit log.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in _SCOPES], widget=forms.CheckboxSelectMultiple, initial=["read"],
        help_text="read: runs and approvals; run: start, cancel, continue, track; decide: function calls; "
                  "audit: the audit log. Never more than your roles allow.",
    )
    expires_days = forms.IntegerField(label="Expires after (days)", min_value=1, max_value=366, initial=90)
