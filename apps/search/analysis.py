"""English text analysis in Python: lower-case word tokens, English stop words removed, Snowball
stemming (PyStemmer). Both backends index and query with it, so keyword matching means the same
everywhere; Elasticsearch uses its own `english` analyser instead when the server has it."""

from __future__ import annotations

import html
import re
from functools import lru_cache

import Stemmer

TOKEN = re.compile(r"\w+", re.UNICODE)

# Lucene's English stop words (what Elasticsearch's `english` analyser removes).
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def analyze(text: str) -> list[str]:
    words = [w for w in TOKEN.findall(text.lower()) if w not in STOP_WORDS]
    return _stemmer().stemWords(words)


def analyzed_text(text: str) -> str:
    return " ".join(analyze(text))


def highlight(text: str, query_text: str, *, fragment_chars: int = 160, max_fragments: int = 2) -> list[str]:
    """Fragments of `text` around the words that match the query, with <mark> tags; the text is
    HTML-escaped, so a fragment is safe to show as HTML."""
    wanted = set(analyze(query_text))
    if not wanted:
        return []
    spans = [m.span() for m in TOKEN.finditer(text) if _stemmer().stemWord(m.group().lower()) in wanted]
    fragments: list[str] = []
    used_until = -1
    for start, _ in spans:
        if start < used_until or len(fragments) >= max_fragments:
            continue
        lo = max(0, start - fragment_chars // 3)
        hi = min(len(text), lo + fragment_chars)
        inner = [(s, e) for s, e in spans if s >= lo and e <= hi]
        pieces, cursor = [], lo
        for s, e in inner:
            pieces.append(html.escape(text[cursor:s]))
            pieces.append(f"<mark>{html.escape(text[s:e])}</mark>")
            cursor = e
        pieces.append(html.escape(text[cursor:hi]))
        fragments.append(("…" if lo > 0 else "") + "".join(pieces) + ("…" if hi < len(text) else ""))
        used_until = hi
    return fragments
