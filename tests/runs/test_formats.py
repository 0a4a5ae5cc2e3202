"""The project's one duration format (``runs.formats.duration``), which the run pages and the
approval desk's deadlines both use."""

import pytest
from django.template import Context, Template

from runs.formats import duration


@pytest.mark.parametrize("ms,text", [
    (None, "—"), ("", "—"), (0, "0 ms"), (850, "850 ms"), (999, "999 ms"), (1000, "1.0 s"),
    (12_340, "12.3 s"), (60_000, "1m 00s"), (252_000, "4m 12s"), (3_599_999, "59m 59s"),
    (3_600_000, "1h 00m"), (7_500_000, "2h 05m"), (180_000_000, "50h 00m"), (1500.7, "1.5 s"),
])
def test_it_writes_a_duration_in_the_largest_units_that_fit(ms, text):
    assert duration(ms) == text


def test_the_template_filter_is_the_same_function():
    rendered = Template("{% load steps %}{{ ms|duration }}").render(Context({"ms": 252_000}))
    assert rendered == "4m 12s"
