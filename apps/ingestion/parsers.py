"""Text with structure out of PDF, DOCX, HTML, Markdown and plain text.

Each parser returns the extracted text, its sections (heading, character range, page where the
format has pages) and metadata (title, author, dates where present). Libraries, and why:

- PDF: pypdf — pure Python (no native build), BSD, maintained; page-level text, encryption and
  metadata. (PyMuPDF extracts better but is AGPL; pdfplumber is pypdf-class text, several times slower.)
- DOCX: python-docx — the standard reader; paragraphs with their styles give the headings.
- HTML: BeautifulSoup on lxml — tolerant of broken markup; lxml caps nesting depth instead of recursing.
- Markdown: markdown-it-py — CommonMark, and its tokens carry source line ranges, so sections map
  onto the original text exactly (the extracted text *is* the Markdown source).
- Plain text: charset-normalizer — detects legacy encodings (cp1252, latin-1, …) instead of guessing.

A file the platform cannot use raises `BadContent` with a reason a user understands; it is never
retried (transient faults are something else).
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass, field, replace

from apps.documents.uploads import DOCX, HTML, MARKDOWN, PDF, TEXT

MAX_TEXT_CHARS = 5_000_000  # about 2,500 pages: beyond that a file is not a document but a dump
MAX_SECTION_CHARS = 4_000  # longer sections are split at paragraph breaks: parents must fit a context
DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_RATIO = 100  # a zip expanding more than 100× is treated as a bomb


class BadContent(Exception):
    """The file cannot give usable text; the message is shown to the user as the failure reason."""


@dataclass(frozen=True)
class ParsedSection:
    heading: str
    start: int
    end: int
    page: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    text: str
    sections: list[ParsedSection]
    metadata: dict = field(default_factory=dict)


class _Builder:
    """Appends blocks of text and records where each section starts and ends."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.sections: list[ParsedSection] = []
        self._heading = ""
        self._start = 0
        self._page: int | None = None

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)
        if self.length > MAX_TEXT_CHARS:
            raise BadContent(
                f"The file holds more than {MAX_TEXT_CHARS:,} characters of text; split it into smaller documents."
            )

    def section(self, heading: str, *, page: int | None = None, in_text: bool = True) -> None:
        """Start a section. Its heading goes into the text too, unless it is made up (PDF pages)."""
        self._close()
        self._heading, self._start, self._page = heading.strip(), self.length, page
        if heading.strip() and in_text:
            self._append(heading.strip() + "\n\n")

    def block(self, text: str) -> None:
        text = text.strip()
        if text:
            self._append(text + "\n\n")

    def _close(self) -> None:
        if self.length > self._start:
            self.sections.append(ParsedSection(self._heading, self._start, self.length, self._page))

    def finish(self, metadata: dict) -> ParsedDocument:
        self._close()
        return finished("".join(self.parts), self.sections, metadata)


def finished(text: str, sections: list[ParsedSection], metadata: dict) -> ParsedDocument:
    if "\x00" in text:
        # A stray NUL (past the bytes sniffed at upload, or out of a PDF's text layer): PostgreSQL
        # text cannot hold it. U+FFFD has the same length, so every section offset stays right.
        text = text.replace("\x00", "\ufffd")
        sections = [replace(s, heading=s.heading.replace("\x00", "\ufffd")) for s in sections]
    if len(text) > MAX_TEXT_CHARS:  # Markdown and plain text do not pass through _Builder's check
        raise BadContent(
            f"The file holds more than {MAX_TEXT_CHARS:,} characters of text; split it into smaller documents."
        )
    if not text.strip():
        raise BadContent(
            "No text could be extracted from this file (a scanned PDF or an image-only document needs OCR first)."
        )
    return ParsedDocument(
        text=text, sections=_split_long(text, sections), metadata={k: v for k, v in metadata.items() if v}
    )


def _split_long(text: str, sections: list[ParsedSection]) -> list[ParsedSection]:
    """Sections longer than MAX_SECTION_CHARS become several, cut at paragraph breaks."""
    result: list[ParsedSection] = []
    for section in sections:
        start = section.start
        while section.end - start > MAX_SECTION_CHARS:
            window = text[start : start + MAX_SECTION_CHARS]
            cut = window.rfind("\n\n")
            if cut < MAX_SECTION_CHARS // 4:
                cut = window.rfind(" ")
            cut = start + (cut if cut > 0 else MAX_SECTION_CHARS)
            result.append(ParsedSection(section.heading, start, cut, section.page))
            start = cut
        if section.end > start:
            result.append(ParsedSection(section.heading, start, section.end, section.page))
    return [s for s in result if text[s.start : s.end].strip()]


# --------------------------------------------------------------------------- PDF
def parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadContent("The PDF is encrypted with a password; upload an unprotected copy.")
        builder = _Builder()
        for number, page in enumerate(reader.pages, start=1):
            builder.section(f"Page {number}", page=number, in_text=False)
            builder.block(page.extract_text() or "")
        info: object = reader.metadata or {}  # read with getattr: any field may be missing
        metadata = {
            "title": getattr(info, "title", None),
            "author": getattr(info, "author", None),
            "created": _date(getattr(info, "creation_date", None)),
            "modified": _date(getattr(info, "modification_date", None)),
        }
    except BadContent:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise BadContent(f"This is not a readable PDF ({type(exc).__name__}: {exc}).") from exc
    return builder.finish(metadata)


def _date(value) -> str | None:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else None


# --------------------------------------------------------------------------- DOCX
def _check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise BadContent(f"This is not a readable DOCX ({exc}).") from exc
    if total > DOCX_MAX_UNCOMPRESSED or total > DOCX_MAX_RATIO * max(len(data), 1):
        raise BadContent("The DOCX expands to far more than its size (a zip bomb?); it was not opened.")


def parse_docx(data: bytes) -> ParsedDocument:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from lxml.etree import LxmlError

    _check_zip(data)
    # python-docx parses its parts lazily (styles, core properties), so a malformed part can fail
    # anywhere below: broken XML (LxmlError), a part that is not the element python-docx expects
    # (AttributeError), a missing part (KeyError). All of them mean the same thing to the user.
    try:
        document = docx.Document(io.BytesIO(data))
        builder = _Builder()
        builder.section("")
        for paragraph in document.paragraphs:
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            if style.startswith("Heading") or style == "Title":
                builder.section(paragraph.text)
            else:
                builder.block(paragraph.text)
        for table in document.tables:
            for row in table.rows:
                builder.block(" | ".join(cell.text.strip() for cell in row.cells))
        core = document.core_properties
        metadata = {
            "title": core.title,
            "author": core.author,
            "created": _date(core.created),
            "modified": _date(core.modified),
        }
    except (
        PackageNotFoundError,
        LxmlError,
        AttributeError,
        KeyError,
        ValueError,
        TypeError,
        zipfile.BadZipFile,
    ) as exc:
        raise BadContent(f"This is not a readable DOCX ({type(exc).__name__}).") from exc
    return builder.finish(metadata)


# --------------------------------------------------------------------------- HTML
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
BLOCKS = {
    "p",
    "div",
    "li",
    "tr",
    "br",
    "table",
    "section",
    "article",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "dt",
    "dd",
    "header",
    "footer",
    "main",
    "td",
    "th",
}
SKIPPED = {"script", "style", "noscript", "template", "head", "nav", "svg"}


def parse_html(data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(data, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    author = soup.find("meta", attrs={"name": "author"})
    root = soup.body or soup
    builder = _Builder()
    builder.section("")
    buffer: list[str] = []

    def flush() -> None:
        builder.block(re.sub(r"\s+", " ", "".join(buffer)))
        buffer.clear()

    skip_until = None
    for node in root.descendants:  # an iterator over the tree, not recursion: deep nesting is fine
        if skip_until is not None:
            if node is skip_until:
                skip_until = None
            continue
        if isinstance(node, Tag):
            if node.name in SKIPPED or node.name in HEADINGS:
                flush()
                if node.name in HEADINGS:
                    builder.section(node.get_text(" ", strip=True))
                skip_until = _last_descendant(node)
            elif node.name in BLOCKS:
                flush()
        elif isinstance(node, NavigableString) and not isinstance(node, Comment):
            buffer.append(str(node))
    flush()
    return builder.finish({"title": title, "author": author.get("content") if author else None})


def _last_descendant(tag):
    last = tag
    while getattr(last, "contents", None):
        last = last.contents[-1]
    return last if last is not tag else None


# --------------------------------------------------------------------------- Markdown and text
UNICODE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text(data: bytes) -> str:
    from charset_normalizer import from_bytes

    # UTF-16 and UTF-32 text is full of NUL bytes; with a byte-order mark (Windows' "Unicode"
    # text files) it is still text, and charset-normalizer decodes it by the mark.
    if b"\x00" in data[:8192] and not data.startswith(UNICODE_BOMS):
        raise BadContent("The file looks like binary data, not text.")
    try:
        # Valid UTF-8 is UTF-8 (legacy 8-bit text almost never decodes as such); statistical
        # detection is for the rest: it once read "*_*_…" Markdown as UTF-16 and made it CJK.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        best = from_bytes(data).best()
        if best is None:
            raise BadContent("The file's text encoding could not be recognised; save it as UTF-8.") from None
        text = str(best)
    controls = sum(1 for c in text[:10000] if ord(c) < 32 and c not in "\n\r\t\f")
    if controls > 0.01 * min(len(text), 10000):
        raise BadContent("The file looks like binary data, not text.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_markdown(data: bytes) -> ParsedDocument:
    from markdown_it import MarkdownIt

    text = decode_text(data)
    lines = text.splitlines(keepends=True)
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line))
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [(t.map[0], tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open" and t.map]
    sections = []
    boundaries = [(0, "")] + [(line_starts[line], heading) for line, heading in headings]
    for (start, heading), (end, _) in zip(boundaries, [*boundaries[1:], (len(text), "")], strict=True):
        if text[start:end].strip():
            sections.append(ParsedSection(heading, start, end))
    title = next((h for line, h in headings), None)
    return finished(text, sections, {"title": title})


def parse_text(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    return finished(text, [ParsedSection("", 0, len(text))], {})


PARSERS = {PDF: parse_pdf, DOCX: parse_docx, HTML: parse_html, MARKDOWN: parse_markdown, TEXT: parse_text}


def parse(data: bytes, media_type: str) -> ParsedDocument:
    parser = PARSERS.get(media_type)
    if parser is None:
        raise BadContent(f"No parser for {media_type}.")
    return parser(data)
