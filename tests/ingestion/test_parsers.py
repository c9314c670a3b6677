import pytest

from apps.documents.uploads import DOCX, HTML, MARKDOWN, PDF, TEXT
from apps.ingestion import parsers
from apps.ingestion.parsers import BadContent, parse
from tests.ingestion import samples


def section_texts(parsed):
    return [(s.heading, parsed.text[s.start : s.end].strip(), s.page) for s in parsed.sections]


def test_pdf_pages_become_sections_with_page_numbers():
    parsed = parse(samples.pdf(["Flights are economy.", "Hotels at city rate."], title="Travel"), PDF)
    assert [(h, p) for h, _, p in section_texts(parsed)] == [("Page 1", 1), ("Page 2", 2)]
    assert "Hotels at city rate." in section_texts(parsed)[1][1]
    assert parsed.metadata["title"] == "Travel" and parsed.metadata["author"] == "Olivia Owner"


@pytest.mark.parametrize(
    "data, reason",
    [
        (samples.encrypted_pdf(), "encrypted"),
        (samples.pdf(["cut short"])[:120], "not a readable PDF"),
        (samples.pdf([""]), "No text could be extracted"),
    ],
)
def test_bad_pdfs_fail_with_a_reason(data, reason):
    with pytest.raises(BadContent, match=reason):
        parse(data, PDF)


def test_docx_headings_and_metadata():
    parsed = parse(samples.docx(paragraphs=("Twenty weeks of paid leave.", "Up to three blocks.")), DOCX)
    assert section_texts(parsed)[-1][0] == "Parental leave"
    assert "Up to three blocks." in parsed.text
    assert parsed.metadata == {
        "title": "Leave",
        "author": "People Operations",
        **{k: v for k, v in parsed.metadata.items() if k in ("created", "modified")},
    }


def test_a_zip_bomb_docx_is_not_opened(monkeypatch):
    monkeypatch.setattr(parsers, "DOCX_MAX_UNCOMPRESSED", 4 * 1024 * 1024)
    with pytest.raises(BadContent, match="zip bomb"):
        parse(samples.zip_bomb(8 * 1024 * 1024), DOCX)


def test_html_sections_follow_headings_and_skip_scripts():
    html = b"""<html><head><title>Rate limits</title><script>var x = "hidden";</script></head><body>
      <nav>menu</nav><h1>Acme API</h1><p>Every key is <b>limited</b>.</p>
      <h2>Plans</h2><table><tr><td>Free</td><td>60</td></tr></table></body></html>"""
    parsed = parse(html, HTML)
    assert [h for h, _, _ in section_texts(parsed)] == ["Acme API", "Plans"]
    assert "Every key is limited ." in parsed.text or "Every key is limited." in parsed.text
    assert "hidden" not in parsed.text and "menu" not in parsed.text
    assert parsed.metadata["title"] == "Rate limits"


def test_deeply_nested_html_does_not_crash():
    html = b"<html><body>" + b"<div>" * 5000 + b"deep text" + b"</div>" * 5000 + b"</body></html>"
    assert "deep text" in parse(html, HTML).text


def test_markdown_sections_point_into_the_source():
    source = "Intro line.\n\n# Travel\n\nEconomy class.\n\n## Hotels\n\nCity rate.\n"
    parsed = parse(source.encode(), MARKDOWN)
    assert parsed.text == source
    assert [(h, t) for h, t, _ in section_texts(parsed)] == [
        ("", "Intro line."),
        ("Travel", "# Travel\n\nEconomy class."),
        ("Hotels", "## Hotels\n\nCity rate."),
    ]
    assert parsed.metadata["title"] == "Travel"


def test_legacy_encodings_are_decoded():
    text = "Grüße aus Köln: die Straße ist schön, à bientôt, façade, naïve café.\n" * 3
    assert "Grüße aus Köln" in parse(text.encode("cp1252"), TEXT).text


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\x00" * 50, bytes(range(1, 32)) * 40])
def test_binary_posing_as_text_fails(data):
    with pytest.raises(BadContent, match="binary"):
        parse(data, TEXT)


def test_nothing_left_after_extraction():
    with pytest.raises(BadContent, match="No text"):
        parse(b"<html><body><script>only()</script></body></html>", HTML)


def test_long_sections_are_split_at_paragraph_breaks():
    text = ("A paragraph of some length that keeps going. " * 20 + "\n\n") * 10
    parsed = parse(text.encode(), TEXT)
    assert len(parsed.sections) > 1
    assert all(s.end - s.start <= parsers.MAX_SECTION_CHARS for s in parsed.sections)
    assert "".join(parsed.text[s.start : s.end] for s in parsed.sections).strip() == text.strip()
