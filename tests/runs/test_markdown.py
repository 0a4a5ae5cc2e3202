"""Markdown the model, an agent or a tool wrote, rendered (``runs.markdown.to_html``) and shown on
the run page: headings, lists, tables and links come out as HTML, citation marks stay after the
cited words, and hostile Markdown stays inert: no raw HTML, no script URL, no image loaded from
anywhere, no attribute the text chose."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from runs.markdown import MAX_MARKDOWN_CHARS, to_html
from tests.factories import make_interaction, make_run, make_step, text_output

REPORT = """# Research report: History of TPUs

Google announced the **first TPU** in 2016.

## Findings

1. Inference first
2. Training later

| Year | Chip |
|-----:|:-----|
| 2016 | v1 |

See [the paper](https://arxiv.org/abs/1704.04760)."""

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '<a href="javascript:alert(3)">raw link</a>',
    "[click](javascript:alert(4))",
    "[click](JaVaScRiPt:alert(5))",
    "[click](vbscript:msgbox(6))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg3KTwvc2NyaXB0Pg==)",
    "[png](data:image/png;base64,iVBORw0KGgo=)",
    "![tracker](https://evil.example/pixel.png)",
    "![inline](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoOCk+)",
    '[x](https://ok.example "title\\" onmouseover=\\"alert(9)")',
    '[x](<https://ok.example/" onclick="alert(10)>)',
    "<https://ok.example/\"onfocus=alert(11)>",
    "[home](/admin/)",
    "<div style=\"position:fixed\">overlay</div>",
    "<iframe src=https://evil.example></iframe>",
    "[ref]\n\n[ref]: javascript:alert(12)",
    "```html\n<script>alert(13)</script>\n```",
]


def render(text: str, marks=()) -> str:
    return str(to_html([(text, list(marks))]))


class Elements(HTMLParser):
    """The elements of an HTML fragment as a browser's tokenizer reads them: ``(tag, {attr: value})``."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def assert_inert(html: str) -> None:
    """Only the allow-list's tags; on links only href (http, https or mailto), title, target
    and rel; no element that loads anything."""
    for tag, attributes in Elements(html).found:
        assert tag in {"p", "a", "code", "pre", "br", "h1", "h2", "strong", "em", "sup", "ol", "ul", "li"}, (tag, html)
        assert set(attributes) <= {"href", "title", "target", "rel", "class"}, (tag, attributes)
        if "href" in attributes:
            assert urlsplit(attributes["href"]).scheme in ("http", "https", "mailto"), attributes
        if tag == "a":
            assert attributes["rel"] == "noopener nofollow noreferrer"


def test_a_report_renders_its_headings_lists_tables_and_links():
    html = render(REPORT)
    assert "<h1>Research report: History of TPUs</h1>" in html
    assert "<h2>Findings</h2>" in html
    assert "<strong>first TPU</strong>" in html
    assert "<ol>\n<li>Inference first</li>" in html
    assert '<th class="align-right">Year</th>' in html and '<td class="align-left">v1</td>' in html
    assert ('<a href="https://arxiv.org/abs/1704.04760" target="_blank" rel="noopener nofollow noreferrer">'
            "the paper</a>") in html
    assert "#" not in html and "**" not in html


def test_a_line_break_is_kept():
    assert render("one\ntwo") == "<p>one<br>\ntwo</p>\n"


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_stays_inert(text):
    html = render(text)
    assert_inert(html)
    for raw in ("<script", "<img", "<iframe", "<div", "<svg"):
        assert raw not in html.lower(), (raw, html)


def test_the_inertness_check_can_fail():
    with pytest.raises(AssertionError):
        assert_inert('<p><a href="javascript:alert(1)" rel="noopener nofollow noreferrer">x</a></p>')
    with pytest.raises(AssertionError):
        assert_inert('<p title="x" onmouseover="alert(1)">x</p>')
    with pytest.raises(AssertionError):
        assert_inert('<img src="https://evil.example/pixel.png">')


def test_script_urls_and_raw_html_are_left_as_text():
    html = render("[click](javascript:alert(4)) <b onclick=alert(1)>x</b>")
    assert html == "<p>[click](javascript:alert(4)) &lt;b onclick=alert(1)&gt;x&lt;/b&gt;</p>\n"


def test_an_image_becomes_a_link_to_its_url_and_loads_nothing():
    html = render("![a chart](https://example.com/chart.png)")
    assert html == ('<p><a class="md-image" href="https://example.com/chart.png" target="_blank" '
                    'rel="noopener nofollow noreferrer">image: a chart</a></p>\n')


def test_raw_html_is_shown_as_text():
    assert render("<b>bold</b> & <script>alert(1)</script>") == (
        "<p>&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    )


def test_citation_marks_follow_the_cited_words_even_after_bold():
    html = str(to_html([("**Spain won.**", [1]), (" Café culture.\n", [2, 3]), ("# Next", [])]))
    assert html == ('<p><strong>Spain won.</strong><sup class="cite">[1]</sup> Café culture.'
                    '<sup class="cite">[2]</sup><sup class="cite">[3]</sup></p>\n<h1>Next</h1>\n')


def test_a_mark_inside_a_url_or_code_is_shown_after_the_text():
    html = str(to_html([("[a](https://a.example/pa", [1]), ("th) and `co", [2]), ("de`", [])]))
    assert 'href="https://a.example/path"' in html and "<code>code</code>" in html
    assert html.endswith('<p class="cites-elsewhere"><sup class="cite">[1]</sup><sup class="cite">[2]</sup></p>')


def test_the_text_cannot_forge_a_citation_mark():
    html = render("⟦0:0⟧ and <sup class=\"cite\">[9]</sup>", marks=[1])
    assert html.count("<sup") == 1 and "⟦0:0⟧" in html


# --- On the run page ---------------------------------------------------------------------------


def page(client, run) -> str:
    response = client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_run_page_renders_a_report_as_html(client, alice):
    run = make_run(output_text=REPORT)
    make_step(make_interaction(run), text_output(REPORT))
    client.force_login(alice)
    body = page(client, run)
    # In the timeline and in the header's output.
    assert body.count('<div class="markdown"><h1>Research report: History of TPUs</h1>') == 2
    shown = re.sub(r'<details class="raw-json">.*?</details>', "", body, flags=re.S)
    assert "Research report" in shown and "# Research report" not in shown


def test_the_run_page_keeps_hostile_markdown_inert(client, alice):
    run = make_run()
    make_step(make_interaction(run), text_output("\n\n".join(HOSTILE)))
    client.force_login(alice)
    body = page(client, run)
    start = body.rindex('<div class="markdown">') + len('<div class="markdown">')  # the model's, after the input
    shown = body[start:body.index("</div>", start)]
    assert_inert(shown)
    assert "<script" not in shown and "<img" not in shown and "<iframe" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown


def test_a_text_too_long_to_render_is_shown_as_plain_text(client, alice):
    text = "# Not a heading\n" + "x" * MAX_MARKDOWN_CHARS
    run = make_run()
    make_step(make_interaction(run), text_output(text))
    client.force_login(alice)
    body = page(client, run)
    assert '<div class="text"># Not a heading\n' in body and "<h1>Not a heading" not in body


def test_the_output_of_two_text_steps_is_shown_as_two_blocks(client, alice):
    steps = [text_output("I checked the new data."), text_output("Spain won Euro 2024.")]
    run = make_run(output_text="I checked the new data.Spain won Euro 2024.")  # as the SDK joins them
    interaction = make_interaction(run)
    for step in steps:
        make_step(interaction, step)
    client.force_login(alice)
    body = page(client, run)
    output = body[body.index('<div class="run-output">'):body.index("</section>")]
    assert re.findall(r'<div class="markdown"><p>(.*?)</p>', output) == ["I checked the new data.", "Spain won Euro 2024."]
    assert "data.Spain" not in body


def test_an_output_the_steps_do_not_give_back_is_shown_as_recorded(client, alice):
    run = make_run(output_text="Your refund is on its way.")  # no steps recorded
    client.force_login(alice)
    body = page(client, run)
    assert '<h2 class="label">Output</h2>' in body and "<p>Your refund is on its way.</p>" in body
