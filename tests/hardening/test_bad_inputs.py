"""Hardening, item 5: a corpus of bad inputs never gives a 500 and never leaks.

Two halves:

* **Uploads.** A corpus of malformed, hostile, huge and odd files of every supported type is
  generated in code (nothing downloaded) and uploaded through the REST API by a tenant API key,
  as a new version of a document whose first version is already published. Ingestion runs in
  the test (eager tasks). Each case names what a user must see: the upload refused with a 4xx
  and a message, or the version failed with a reason a person understands, or, where the content
  is legitimately usable, the version ready, published and findable. Whatever happens, the
  previously published version keeps being served and nothing of a failed version is searchable.
  The parsers' own unit tests (tests/ingestion/test_parsers.py, tests/documents/test_uploads.py)
  check single behaviours at function level; this corpus checks the whole path a user takes.

* **Queries.** Strings full of Lucene / Elasticsearch query-string syntax, SQLite FTS5 syntax,
  SQL, control characters and Unicode oddities go through /api/v1/search and /api/v1/ask in
  every mode. Never a 500, and access control still holds: a reader with no grants gets
  nothing, and users restricted to one collection never see another collection's chunks. These
  tests carry no profile mark on purpose: they run on the embedded engine (SQLite FTS5) and on
  the full profile (Elasticsearch), where query-string injection would matter most.
"""

from __future__ import annotations

import io
import json
import random
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.corpus.models import Chunk
from apps.documents.models import Document, DocumentVersion
from apps.search.backends import get_search_backend
from tests.answers.conftest import library  # noqa: F401  (the ingested library fixture, shared)
from tests.conftest import key_client
from tests.ingestion import samples

MARKER = "zebracorn"  # a word in the bad versions only, so a search for it finds nothing else
ORIGINAL = "quokka"  # a word in the published first version only

# --------------------------------------------------------------------------- corpus builders


def _pdf(objects: list[bytes], *, xref_offsets: Callable[[list[int]], list[int]] = lambda o: o) -> bytes:
    """A PDF from raw object bodies (object 1 is the catalog), with a cross-reference table whose
    offsets can be falsified to test pypdf's recovery."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in xref_offsets(offsets):
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _page_pdf(content: bytes, *, compress: bool = False, xref_offsets=lambda offsets: offsets) -> bytes:
    """One page whose content stream is `content` (Flate-compressed if asked)."""
    stream = zlib.compress(content, 1) if compress else content
    flate = b" /Filter /FlateDecode" if compress else b""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
            b"/Contents 4 0 R >>",
            b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(stream), flate, stream),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ],
        xref_offsets=xref_offsets,
    )


def _text_op(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode()


def _noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _pdf_garbled_middle() -> bytes:
    """Two pages; the first page's objects are overwritten with noise, the second survives."""
    good = samples.pdf([f"{MARKER} first", "ocelot second"])
    start = good.index(b"4 0 obj")
    return good[:start] + _noise(120, 1) + good[start + 120 :]


def _docx_with(**parts: bytes | None) -> bytes:
    """A real DOCX (python-docx) with some of its parts replaced (bytes) or removed (None). Its
    second paragraph is the placeholder ENTITY, for the entity cases to swap in."""
    source = zipfile.ZipFile(io.BytesIO(samples.docx(paragraphs=(f"{MARKER} paragraph.", "ENTITY"))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            data = parts.get(name, source.read(name))
            if data is not None:
                archive.writestr(name, data)
    return out.getvalue()


def _document_xml(doctype: bytes = b"", entity: bytes = b"ENTITY") -> bytes:
    """word/document.xml of _docx_with's document, with a DOCTYPE and the placeholder replaced."""
    body = zipfile.ZipFile(io.BytesIO(_docx_with())).read("word/document.xml")
    head, rest = body.split(b"?>", 1)
    return head + b"?>" + doctype + rest.replace(b"ENTITY", entity)


def _docx_xxe() -> bytes:
    """An external entity naming a server file: it must never be resolved into the text."""
    doctype = b'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return _docx_with(**{"word/document.xml": _document_xml(doctype, b"&xxe;")})


def _docx_billion_laughs() -> bytes:
    """Nested entities expanding to 10^9 'lol's: libxml2's amplification limit must stop it."""
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    return _docx_with(**{"word/document.xml": _document_xml(f"<!DOCTYPE w:document [{entities}]>".encode(), b"&a9;")})


def _zip(**members: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _html(body: bytes) -> bytes:
    return b"<!DOCTYPE html><html><head><title>t</title></head><body>" + body + b"</body></html>"


def _markdown_table(*, columns: int, rows: int) -> bytes:
    """A table thousands of columns wide. Its cells repeat, so most chunks have the same text and
    are embedded once (ingestion reuses vectors by text hash): the parser and chunker get a huge
    table, the test does not pay for a thousand model calls."""
    header = "|" + "h|" * columns + "\n|" + "-|" * columns + "\n"
    return (
        f"# Wide table\n\n{MARKER} before the table.\n\n{header}".encode()
        + ("|" + "x|" * columns + "\n").encode() * rows
    )


def _over_text_limit() -> bytes:
    line = f"{MARKER} is a word repeated far too often in this dump.\n".encode()
    return line * (5_000_000 // len(line) + 10)


# --------------------------------------------------------------------------- the corpus
READY, FAILED, REFUSED = "ready", "failed", "refused"
UPLOAD_LIMIT = 8 * 1024 * 1024  # lowered from 50 MiB in the test: above every other case, cheap to exceed


@dataclass(frozen=True)
class Case:
    id: str
    filename: str
    content: Callable[[], bytes]  # built when the test runs, so collecting tests stays cheap
    outcome: str  # READY: published and findable; FAILED: a reason; REFUSED: a 4xx at upload
    says: str = ""  # a fragment of the reason or message the user is shown
    findable: str = MARKER  # READY: a word the new version must be found by
    status: int = 0  # REFUSED: the HTTP status


CORPUS = [
    # PDF
    Case("pdf-truncated", "report.pdf", lambda: samples.pdf([f"{MARKER} report"])[:300], FAILED, "not a readable PDF"),
    Case("pdf-header-only", "report.pdf", lambda: b"%PDF-1.7\n", FAILED, "not a readable PDF"),
    Case("pdf-noise-body", "report.pdf", lambda: b"%PDF-1.4\n" + _noise(5000, 2), FAILED, "not a readable PDF"),
    Case(
        "pdf-no-xref",
        "report.pdf",
        lambda: samples.pdf([MARKER]).split(b"xref")[0] + b"xref\nGARBAGE\n%%EOF\n",
        FAILED,
        "not a readable PDF",
    ),
    # Every cross-reference offset wrong: pypdf rebuilds the table by scanning, the text is usable.
    Case(
        "pdf-wrong-xref",
        "report.pdf",
        lambda: _page_pdf(_text_op(MARKER), xref_offsets=lambda o: [x + 7 for x in o]),
        READY,
    ),
    Case("pdf-garbled-middle", "report.pdf", _pdf_garbled_middle, READY, findable="ocelot"),
    Case(
        "pdf-nul-in-text",
        "report.pdf",
        lambda: _page_pdf(b"BT /F1 12 Tf 72 720 Td (%s \\000 nul) Tj ET" % MARKER.encode()),
        READY,
    ),
    Case("pdf-encrypted", "report.pdf", samples.encrypted_pdf, FAILED, "encrypted with a password"),
    Case(
        "pdf-cyclic-page-tree",
        "report.pdf",
        lambda: _pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            ]
        ),
        FAILED,
        "cyclic page references",
    ),
    Case(
        "pdf-dangling-root",
        "report.pdf",
        lambda: _pdf([b"<< /Type /Catalog /Pages 9 0 R >>"]),
        FAILED,
        "not a readable PDF",
    ),
    Case(
        "pdf-flate-bomb",
        "report.pdf",
        lambda: _page_pdf(_text_op(MARKER) + b"\n" + b" " * (100 << 20), compress=True),
        FAILED,
        "not a readable PDF",
    ),
    # DOCX
    Case("docx-zip-bomb", "letter.docx", lambda: samples.zip_bomb(8 << 20), FAILED, "zip bomb"),
    Case(
        "docx-not-a-zip", "letter.docx", lambda: b"PK\x03\x04" + _noise(3000, 3), REFUSED, "not supported", status=415
    ),
    Case(
        "docx-no-document-xml",
        "letter.docx",
        lambda: _zip(**{"[Content_Types].xml": b"<Types/>", "word/other.xml": b"<x/>"}),
        REFUSED,
        "no word/document.xml",
        status=415,
    ),
    Case(
        "docx-truncated-archive",
        "letter.docx",
        lambda: samples.docx()[:2000],
        REFUSED,
        "damaged, truncated",
        status=415,
    ),
    Case(
        "docx-truncated-xml",
        "letter.docx",
        lambda: _docx_with(**{"word/document.xml": _document_xml()[:900]}),
        FAILED,
        "not a readable DOCX",
    ),
    Case(
        "docx-empty-document-xml",
        "letter.docx",
        lambda: _docx_with(**{"word/document.xml": b""}),
        FAILED,
        "not a readable DOCX",
    ),
    Case(
        "docx-wrong-root-element",
        "letter.docx",
        lambda: _docx_with(**{"word/document.xml": b"<foo/>"}),
        FAILED,
        "not a readable DOCX",
    ),
    Case(
        "docx-broken-styles",
        "letter.docx",
        lambda: _docx_with(**{"word/styles.xml": b"<w:styles"}),
        FAILED,
        "not a readable DOCX",
    ),
    Case(
        "docx-broken-core-properties",
        "letter.docx",
        lambda: _docx_with(**{"docProps/core.xml": b"<cp:core"}),
        FAILED,
        "not a readable DOCX",
    ),
    Case(
        "docx-no-content-types",
        "letter.docx",
        lambda: _docx_with(**{"[Content_Types].xml": None}),
        FAILED,
        "not a readable DOCX",
    ),
    Case("docx-billion-laughs", "letter.docx", _docx_billion_laughs, FAILED, "not a readable DOCX"),
    Case("docx-external-entity", "letter.docx", _docx_xxe, READY),  # the entity is dropped, /etc/passwd never read
    Case("text-named-docx", "letter.docx", lambda: f"{MARKER} is plain text under a .docx name.\n".encode(), READY),
    # HTML
    Case(
        "html-nested-10k", "page.html", lambda: _html(b"<div>" * 10_000 + MARKER.encode() + b"</div>" * 10_000), READY
    ),
    Case(
        "html-nested-100k",
        "page.html",
        lambda: _html(b"<div>" * 100_000 + MARKER.encode() + b"</div>" * 100_000),
        READY,
    ),
    Case("html-unclosed-50k", "page.html", lambda: _html(b"<span><b>" * 25_000 + MARKER.encode()), READY),
    Case(
        "html-deep-heading",
        "page.html",
        lambda: _html(b"<h1>" + b"<span>" * 30_000 + MARKER.encode() + b"</h1><p>body</p>"),
        READY,
    ),
    Case(
        "html-only-scripts",
        "page.html",
        lambda: _html(
            f"<script>var {MARKER} = 1;</script><style>p {{}}</style><noscript>{MARKER}</noscript>"
            f"<template>{MARKER}</template><!-- {MARKER} -->".encode()
        ),
        FAILED,
        "No text could be extracted",
    ),
    Case(
        "html-escaped-markup",
        "page.html",
        lambda: _html(
            f"<p>{MARKER} &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;</p>".encode()
        ),
        READY,
    ),
    Case(
        "html-utf16",
        "page.html",
        lambda: f"<html><body><p>{MARKER} in UTF-16</p></body></html>".encode("utf-16"),
        READY,
    ),
    Case(
        "html-huge-attribute",
        "page.html",
        lambda: _html(b"<p title='" + b"x" * 3_000_000 + b"'>" + MARKER.encode() + b"</p>"),
        READY,
    ),
    # Markdown
    Case("markdown-big-table", "notes.md", lambda: _markdown_table(columns=5000, rows=20), READY),
    Case(
        "markdown-nested-quotes",
        "notes.md",
        lambda: f"# Quotes\n\n{MARKER}\n\n".encode() + b">" * 20_000 + b" deep",
        READY,
    ),
    Case(
        "markdown-nested-lists",
        "notes.md",
        lambda: f"# Lists\n\n{MARKER}\n\n".encode() + b"".join(b"  " * i + b"- item\n" for i in range(300)),
        READY,
    ),
    Case("markdown-emphasis-flood", "notes.md", lambda: f"# Stars\n\n{MARKER}\n\n".encode() + b"*_" * 10_000, READY),
    Case(
        "markdown-unclosed-links",
        "notes.md",
        lambda: f"# Links\n\n{MARKER}\n\n".encode() + b"[" * 20_000 + b"](x)" * 100,
        READY,
    ),
    Case("markdown-over-text-limit", "notes.md", _over_text_limit, FAILED, "more than 5,000,000 characters"),
    # Plain text and encodings
    Case("text-utf16-bom", "notes.txt", lambda: f"{MARKER} written by Notepad as Unicode.\n".encode("utf-16"), READY),
    Case("text-utf32-bom", "notes.txt", lambda: f"{MARKER} in UTF-32.\n".encode("utf-32"), READY),
    Case(
        "text-utf16-no-bom",
        "notes.txt",
        lambda: f"{MARKER} without a byte-order mark.\n".encode("utf-16-le") * 5,
        REFUSED,
        "not supported",
        status=415,
    ),
    Case(
        "text-latin-1",
        "notes.txt",
        lambda: f"{MARKER}: Grüße aus Köln, façade, naïve café.\n".encode("latin-1") * 3,
        READY,
    ),
    Case(
        "text-nul-bytes",
        "notes.txt",
        lambda: f"{MARKER}\x00 with NUL\x00 bytes\n".encode() * 50,
        REFUSED,
        "not supported",
        status=415,
    ),
    # One stray NUL after the 8 KiB that content sniffing looks at: PostgreSQL text cannot hold it.
    Case("text-late-nul", "notes.txt", lambda: f"{MARKER} words\n".encode() * 700 + b"\x00" + b"tail words\n", READY),
    Case(
        "text-control-characters", "notes.txt", lambda: bytes(range(1, 32)) * 40, REFUSED, "not supported", status=415
    ),
    Case(
        "text-encoded-surrogates",
        "notes.txt",
        lambda: f"{MARKER} ".encode() + b"\xed\xa0\x80 lone surrogate\n" * 10,
        READY,
    ),
    Case(
        "text-bidi-and-zero-width",
        "notes.txt",
        lambda: f"{MARKER} \u202eevil\u202c text \u200b\u200c\u200d\ufeff zero\u2066width\u2069\n".encode() * 5,
        READY,
    ),
    Case("text-combining-flood", "notes.txt", lambda: f"{MARKER} e{chr(0x301) * 20_000}\n".encode(), READY),
    Case("text-emoji", "notes.txt", lambda: f"{MARKER} 👨‍👩‍👧‍👦🏳️‍🌈 🇺🇳 ".encode() * 200, READY),
    Case("text-one-huge-token", "notes.txt", lambda: f"{MARKER} ".encode() + b"a" * 200_000, READY),
    Case("text-over-text-limit", "notes.txt", _over_text_limit, FAILED, "more than 5,000,000 characters"),
    Case("text-whitespace-only", "notes.txt", lambda: b" \n\n\t \r\n" * 100, FAILED, "No text could be extracted"),
    Case("text-bom-only", "notes.txt", lambda: b"\xef\xbb\xbf", FAILED, "No text could be extracted"),
    # Refused before anything is stored
    Case("empty-file", "notes.txt", lambda: b"", REFUSED, "file is empty", status=400),
    Case(
        "png-image", "photo.png", lambda: b"\x89PNG\r\n\x1a\n" + _noise(2000, 4), REFUSED, "not supported", status=415
    ),
    Case("over-the-size-limit", "notes.txt", lambda: b"x" * (UPLOAD_LIMIT + 1), REFUSED, "the limit is", status=413),
]


# --------------------------------------------------------------------------- uploads
def _assert_readable(text: str) -> None:
    """A message for a person: present, short, and with nothing of the server's insides."""
    assert text.strip(), "no reason given"
    assert len(text) < 500, text
    for insider in ("Traceback", 'File "', str(settings.MEDIA_ROOT), str(settings.BASE_DIR)):
        assert insider not in text, text


def _post_json(client, url: str, body: dict):
    """JSON with \\u escapes (what any client library sends): DRF's test renderer would have to
    encode a lone surrogate as UTF-8 itself, and cannot."""
    return client.post(url, json.dumps(body), content_type="application/json")


def _search(client, query: str) -> list[dict]:
    get_search_backend().refresh()
    response = client.post("/api/v1/search", {"query": query, "mode": "bm25", "k": 20}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _upload(client, capture, url: str, name: str, content: bytes, **fields):
    """Post a file; ingestion runs (eagerly) when the upload's transaction commits. An exception
    escaping ingestion would be a 500 for the uploader on the embedded profile (eager tasks run
    inside the request), so it is left to fail the test."""
    with capture(execute=True):
        return client.post(
            url, {"file": SimpleUploadedFile(name, content), "publish_when_ready": True, **fields}, format="multipart"
        )


@pytest.mark.django_db
@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_a_bad_upload_is_refused_or_fails_with_a_reason_and_the_published_version_keeps_serving(
    acme, case, settings, django_capture_on_commit_callbacks
):
    settings.DOCUMENT_MAX_UPLOAD_BYTES = UPLOAD_LIMIT
    client = key_client(acme.key())  # a tenant app's key: documents:write, and it reads everything
    client.raise_request_exception = False  # a crash in a view must show as the 500 a caller would see
    collection = client.post("/api/v1/collections", {"name": "Handbook"}, format="json").json()
    created = _upload(
        client,
        django_capture_on_commit_callbacks,
        "/api/v1/documents",
        "v1.md",
        f"# Handbook\n\nThe {ORIGINAL} is our mascot.\n".encode(),
        collection=collection["id"],
        title="Handbook",
    )
    assert created.status_code == 201, created.content
    document = Document.objects.across_tenants().get(pk=created.json()["id"])
    first = document.published_version
    assert first is not None and first.number == 1

    response = _upload(
        client,
        django_capture_on_commit_callbacks,
        f"/api/v1/documents/{document.pk}/versions",
        case.filename,
        case.content(),
    )

    assert response.status_code < 500, response.content
    document.refresh_from_db()
    if case.outcome == REFUSED:
        assert response.status_code == case.status, response.content
        body = response.json()
        assert case.says in json.dumps(body, ensure_ascii=False), body  # the message, or the field's error
        _assert_readable(body["message"])
        assert not document.versions.filter(number=2).exists()  # nothing stored
    else:
        assert response.status_code == 201, response.content
        version = DocumentVersion.objects.across_tenants().get(document=document, number=2)
        shown = client.get(f"/api/v1/documents/{document.pk}/versions/2").json()
        assert shown["status"] == case.outcome, shown
        if case.outcome == FAILED:
            assert case.says in shown["status_reason"], shown
            _assert_readable(shown["status_reason"])
            assert not Chunk.objects.across_tenants().filter(version=version).exists()
            assert version.pk not in {r["version_id"] for r in _search(client, MARKER)}
        else:
            assert document.published_version_id == version.pk  # published when ready, as asked
            found = _search(client, case.findable)
            assert version.pk in {r["version_id"] for r in found}, found
            for result in found:  # highlights are escaped HTML: only our <mark> tags are markup
                for fragment in result["highlights"]:
                    assert "<" not in fragment.replace("<mark>", "").replace("</mark>", ""), fragment
            assert (
                not Chunk.objects.across_tenants().filter(version=version, text__contains="root:").exists()
            )  # no /etc/passwd

    if document.published_version_id == first.pk:
        # The first version is still the one served: the document says so, and search finds it.
        assert client.get(f"/api/v1/documents/{document.pk}").json()["published_version"]["number"] == 1
        assert first.pk in {r["version_id"] for r in _search(client, ORIGINAL)}
    else:
        assert case.outcome == READY, "only a usable version may replace the published one"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202etxt.exe",  # a right-to-left override would show it as "invoiceexe.txt"
        "zero\u200bwidth\u2060joiner.txt",
        "emoji 📄🏳️‍🌈.md",
        "e\u0301" * 120 + ".txt",  # normalised to NFC: 120 characters, within the 255 limit
        "日本語の文書.txt",
        "o'brien; name=evil.txt",
    ],
)
def test_odd_file_names_are_kept_as_data_and_download_safely(acme, name, django_capture_on_commit_callbacks):
    client = key_client(acme.key())
    collection = client.post("/api/v1/collections", {"name": "Files"}, format="json").json()
    content = f"{MARKER} in a file with an odd name.\n".encode()
    response = _upload(
        client,
        django_capture_on_commit_callbacks,
        "/api/v1/documents",
        name,
        content,
        collection=collection["id"],
        title=name,
    )
    assert response.status_code == 201, response.content
    version = client.get(f"/api/v1/documents/{response.json()['id']}").json()["published_version"]
    # Django's multipart parser drops non-printable characters (bidi overrides, zero-width ones), so
    # a name cannot be made to display as something else; the rest is kept as typed (NFC).
    expected = unicodedata.normalize("NFC", "".join(c for c in name if c.isprintable()))
    assert version["original_filename"] == expected
    download = client.get(f"/api/v1/documents/{response.json()['id']}/versions/1/content")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == content
    disposition = download["Content-Disposition"]
    disposition.encode("ascii")  # non-ASCII names travel RFC 6266-encoded (filename*=utf-8''…), never raw
    header = Message()
    header["Content-Disposition"] = disposition
    assert header.get_params(header="content-disposition")[0] == ("attachment", "")
    assert header.get_filename() == expected  # exactly one file name, the stored one


@pytest.mark.django_db
@pytest.mark.parametrize(
    "title, refusal",
    [
        ("\u202eevil\u202c \u200b zero width", None),
        ("e" + "\u0301" * 400, None),
        ("👨‍👩‍👧‍👦" * 50, None),
        ("NUL\x00inside", "title"),  # the field's own error
        ("x" * 501, "title"),
        ("lone \ud800 surrogate", "parse_error"),  # not Unicode text: refused with the body (apps/core/parsers.py)
    ],
)
def test_unicode_edge_cases_in_json_fields_are_stored_or_refused_never_a_500(acme, title, refusal):
    client = key_client(acme.key())
    client.raise_request_exception = False
    collection = client.post("/api/v1/collections", {"name": "Notes"}, format="json").json()
    response = _post_json(
        client, "/api/v1/documents", {"collection": collection["id"], "title": title, "tags": [title[:100]]}
    )
    if refusal is None:
        assert response.status_code == 201, response.content
        assert Document.objects.across_tenants().get(pk=response.json()["id"]).title == title  # stored exactly as sent
    else:
        assert response.status_code == 400, response.content
        body = response.json()
        assert refusal in body["extra"].get("fields", {}) or body["code"] == refusal, body


# --------------------------------------------------------------------------- queries
NASTY_QUERIES = [
    # Lucene / Elasticsearch query-string syntax: must be words, never syntax.
    "title:* OR _id:1",
    "*",
    "?",
    "\\",
    '"unterminated',
    "{!lucene}salary",
    "AND OR NOT",
    "((((((",
    "~2^5",
    "/regex.*/",
    "*:* OR salary",
    "collection_id:* OR tenant_id:* OR principals:* OR bands",
    '{"match_all": {}}',
    "salary~ bands^100 [a TO z] {1 TO 9}",
    "_exists_:title && !travel || salary",
    # SQLite FTS5 syntax.
    "NEAR(salary bands)",
    "col:foo",
    '"a" * "b"',
    "-",
    "body:salary OR title:salary",
    "{title body}: salary",
    "^salary NOT travel",
    # SQL, markup.
    "' OR 1=1 --",
    '"; DROP TABLE chunks; --',
    "<script>alert(1)</script> salary",
    # Sizes, control characters, Unicode.
    "a" * 1000,
    ("salary" * 170)[:1000],
    "\x01\x02\x1b[31mred\x7f salary",
    "\u202esalary\u202c \u200b\u200c\u200d\ufeff",
    "e" + "\u0301" * 999,
    "👨‍👩‍👧‍👦🏳️‍🌈 salary",
    "給与 бонус الراتب",
]
# Text that is not text: refused with a 400 that says why (the query field's error, or a parse error).
REFUSED_QUERIES = [
    "\x00salary",  # NUL: no database stores it in text
    "\ud800 salary \udfff",  # lone surrogates: valid JSON escapes, but not Unicode text
]


MODES = ["bm25", "dense", "hybrid"]
# Asked by both callers in every test: alice must find her Handbook with it, so a test whose
# nasty queries all came back empty still proves the engine answered.
CONTROL_QUERY = "travel policy"


def _callers_for(index: int, endpoint: str, mode: str, callers: list) -> list:
    """Who asks the index-th nasty query. The engine's keyword query is where syntax could slip
    past the tenant and principal filters, so /search in bm25 and hybrid mode asks every query as
    both callers. In dense mode the text only becomes a vector, and /ask runs the same retrieval
    steps plus generation, so there the two callers take turns (each query still meets both
    callers across the modes); this keeps the model calls, the slow part, to two thirds."""
    if endpoint.endswith("search") and mode != "dense":
        return callers
    return [callers[(index + MODES.index(mode)) % 2]]


@pytest.mark.django_db
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", ["/api/v1/search", "/api/v1/ask"])
def test_nasty_queries_are_words_never_a_500_and_never_widen_access(library, endpoint, mode):
    """Two callers bound the access check: a reader with no grants must get nothing at all, and
    alice, who reads the Handbook collection only, must never get a Finance chunk (bob's side is
    the mirror image; tests/answers/test_access.py checks every user on a plain query)."""
    handbook = library.travel.collection_id
    callers = [
        ("reader without grants", library.world.reader, set()),
        ("alice (Handbook only)", library.alice, {handbook}),
    ]
    clients = {who: library.client(membership) for who, membership, _ in callers}
    for client in clients.values():
        client.raise_request_exception = False  # collect every 500 rather than stop at the first
    asked = [
        (query, caller)
        for i, query in enumerate(NASTY_QUERIES + REFUSED_QUERIES)
        for caller in _callers_for(i, endpoint, mode, callers)
    ]
    asked += [(CONTROL_QUERY, caller) for caller in callers]
    problems, found_something = [], set()
    for query, (who, _, allowed) in asked:
        response = _post_json(
            clients[who], endpoint, {"query": query, "mode": mode, "k": 2 if endpoint.endswith("ask") else 3}
        )
        case = f"{who} {query[:40]!r}"
        if query in REFUSED_QUERIES:
            body = response.json() if response.status_code < 500 else {}
            if response.status_code != 400 or not (
                "query" in body["extra"].get("fields", {}) or body["code"] == "parse_error"
            ):
                problems.append(
                    f"{case}: expected a 400 saying why, got {response.status_code} {response.content[:200]!r}"
                )
            continue
        if response.status_code != 200:
            problems.append(f"{case}: {response.status_code} {response.content[:300]!r}")
            continue
        body = response.json()
        hits = body["results"] if endpoint.endswith("search") else body["sources"]
        seen = {hit["collection_id"] for hit in hits}
        if not seen <= allowed:
            problems.append(f"{case}: saw collections {seen - allowed} it may not read")
        if endpoint.endswith("ask"):
            cited = {c["document_id"] for c in body["citations"]}
            if not cited <= {hit["document_id"] for hit in hits}:
                problems.append(f"{case}: cites documents outside its sources: {cited}")
            if not allowed and (body["grounded"] or body["citations"]):
                problems.append(f"{case}: a caller with no grants got an answer: {body['answer'][:100]!r}")
        if hits and query == CONTROL_QUERY:
            found_something.add(who)
    assert not problems, "\n".join(problems)
    assert found_something == {"alice (Handbook only)"}, found_something


MALFORMED_JSON = {
    "nested 100,000 arrays deep": "[" * 100_000 + "]" * 100_000,
    "nested 50,000 objects deep": '{"query": "x", "filters": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}",
    "a lone surrogate in a key": '{"query": "travel", "\\ud800": 1}',
    "a lone surrogate in a nested key": '{"query": "travel", "filters": {"\\udfff": ["x"]}}',
    "a lone surrogate in a list": '{"collection": 1, "title": "t", "tags": ["\\ud800"]}',
    "a 5,000-digit number": '{"query": "x", "k": ' + "9" * 5000 + "}",
    "NaN": '{"query": "x", "k": NaN}',
    "truncated": '{"query": "x"',
    "not UTF-8": b'{"query": "\xff\xfe"}',
    "a list, not an object": '["query"]',
}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/search", "/api/v1/ask", "/api/v1/documents", "/api/v1/collections"])
def test_malformed_json_bodies_are_a_400_never_a_500(acme, url):
    client = key_client(acme.key())
    client.raise_request_exception = False
    problems = []
    for name, body in MALFORMED_JSON.items():
        response = client.post(url, body, content_type="application/json")
        if response.status_code != 400 or not response.json().get("message"):
            problems.append(f"{name}: {response.status_code} {response.content[:200]!r}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- JSON types
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/groups", {"name": 89261467562}, "name"),  # schemathesis's find: a group named "89261467562"
        ("/api/v1/collections", {"name": 7}, "name"),
        ("/api/v1/search", {"query": 12.5}, "query"),
        ("/api/v1/ask", {"query": 3}, "query"),
        ("/api/v1/users", {"username": 42, "role": "reader"}, "username"),
    ],
)
def test_a_number_where_the_schema_promises_text_is_refused_naming_the_field(acme, path, body, field):
    response = key_client(acme.key()).post(path, body, format="json")
    assert response.status_code == 400, (path, response.content)
    assert field in json.dumps(response.json()) and "string" in json.dumps(response.json())
