"""The run list's search on SQLite, the embedded default: the syntax PostgreSQL's search box
takes (words ANDed, "a phrase", -word, or) gives the same runs there. The suite runs on
PostgreSQL, so the SQLite side runs in a process of its own against a SQLite file."""

import json

from runs.models import Run
from tests.conftest import on_sqlite

TEXTS = {
    "cracked": ("Refund order A-1001: the headband arrived cracked.", ""),
    "monitor": ("Refund the 4K monitor, the screen is shattered.", "Refund issued for the monitor."),
    "late": ("Where is my order? It has not arrived.", "It ships tomorrow."),
}
QUERIES = {
    "refund order": {"cracked"},
    "REFUND": {"cracked", "monitor"},
    '"headband arrived"': {"cracked"},
    "refund -monitor": {"cracked"},
    "-order": {"monitor"},
    "monitor or tomorrow": {"monitor", "late"},
    '"ships tomorrow" or headband': {"cracked", "late"},
    "refund -monitor or tomorrow": {"cracked", "late"},
    "nothing-like-this": set(),
}

SCRIPT = """
import json, sys
from runs.models import Run
texts, queries = json.loads(sys.stdin.read())
names = {}
for name, (input_text, output_text) in texts.items():
    run = Run.objects.create(model="m", input=input_text, input_text=input_text, output_text=output_text)
    names[run.pk] = name
print(json.dumps({q: sorted(names[pk] for pk in Run.objects.search(q).values_list("pk", flat=True)) for q in queries}))
"""


def sqlite_results(tmp_path) -> dict[str, list[str]]:
    return on_sqlite(tmp_path, SCRIPT, stdin=json.dumps([TEXTS, list(QUERIES)]))


def test_search_on_sqlite_understands_the_postgresql_syntax_and_finds_the_same_runs(db, tmp_path):
    names = {}
    for name, (input_text, output_text) in TEXTS.items():
        run = Run.objects.create(model="m", input=input_text, input_text=input_text, output_text=output_text)
        names[run.pk] = name
    on_postgresql = {q: sorted(names[pk] for pk in Run.objects.search(q).values_list("pk", flat=True)) for q in QUERIES}

    on_sqlite = sqlite_results(tmp_path)

    expected = {q: sorted(found) for q, found in QUERIES.items()}
    assert on_postgresql == expected
    assert on_sqlite == expected
