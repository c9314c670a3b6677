"""The sentences of a piece of a version's extracted text, with exact offsets: what the extractive
generator may quote. Ingestion segments every section once and stores each sentence's vector
(`Sentence`), so an answer compares the question with vectors it reads instead of encoding every
sentence of its context on every request (docs/benchmarks/throughput-profile.md)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# A paragraph: text up to a blank line. Segmented one by one, so a heading never glues onto the
# sentence below it; inside a paragraph a line break is just a space (hard-wrapped text).
_PARAGRAPH = re.compile(r"\S(?:.|\n(?!\s*\n))*")
MIN_WORDS = 5  # shorter fragments are not answers
# Raise when the rule changes (the paragraph pattern, MIN_WORDS, pysbd's version): a section
# segmented by another rule then reads as not embedded, and `manage.py reembed` segments it again.
SEGMENTATION = "sentences-v1 pysbd-0.3.4"


def segmented_by(model_identity: str) -> str:
    """What `Section.sentences_model` holds for sentences split by this rule and embedded by that model."""
    return f"{model_identity} {SEGMENTATION}"


@lru_cache(maxsize=1)
def _segmenter() -> Any:  # a pysbd.Segmenter (pysbd ships no types)
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def spans(text: str, start_offset: int) -> list[tuple[str, int, int]]:
    """(sentence, start, end) of `text`, which starts at `start_offset` of the version's extracted
    text; offsets are into that text. The sentence is its text with line breaks as spaces (what the
    model encodes). Headings in capitals and fragments under five words are dropped."""
    found = []
    for paragraph in _PARAGRAPH.finditer(text):
        flat = paragraph.group().replace("\n", " ")  # same length: offsets stay exact
        for span in _segmenter().segment(flat):
            sentence = span.sent.strip()
            if len(sentence.split()) < MIN_WORDS or sentence.isupper():
                continue
            start = start_offset + paragraph.start() + span.start + span.sent.index(sentence[0])
            found.append((sentence, start, start + len(sentence)))
    return found
