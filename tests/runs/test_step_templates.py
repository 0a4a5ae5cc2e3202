"""Every step type Handoff knows (``Step.KNOWN_TYPES``) has its own template, and the step
templates are those types' and no others: ``step_template`` derives the name from the type."""

from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import get_template

from runs.models import Step
from runs.templatetags.steps import step_template

STEPS_DIR = Path(settings.BASE_DIR) / "templates" / "runs" / "steps"


@pytest.mark.parametrize("kind", sorted(Step.KNOWN_TYPES))
def test_every_known_type_has_a_template_of_its_own(kind):
    name = step_template(Step(type=kind))
    assert name == f"runs/steps/{kind}.html"
    get_template(name)  # TemplateDoesNotExist otherwise


def test_every_step_template_is_for_a_known_type():
    # Partials (_raw.html, _content.html, ...) and generic.html are not a type's.
    named = {path.stem for path in STEPS_DIR.glob("*.html") if not path.name.startswith("_")}
    assert named - {"generic"} == Step.KNOWN_TYPES


def test_an_unknown_type_gets_the_generic_template():
    assert step_template(Step(type="hologram_projection")) == "runs/steps/generic.html"
    assert step_template(Step(type="")) == "runs/steps/generic.html"
