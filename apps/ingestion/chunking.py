"""Chunking: parent sections for context, child chunks for retrieval.

Child chunks are windows of the embedding model's own tokens (its tokenizer.json through the
`tokenizers` library: no model weights needed), `size` tokens long with `overlap` tokens shared
between neighbours, never crossing a section. Each chunk keeps its exact character range in the
extracted text, so a citation points at the passage.

The optional semantic strategy groups whole sentences and starts a new chunk where the similarity
of adjacent sentences drops (or the token budget is reached).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .parsers import ParsedDocument

TOKEN_STRATEGY = "tokens"
SEMANTIC_STRATEGY = "semantic"
MODEL_MAX_TOKENS = 254  # all-MiniLM-L6-v2 reads 256 tokens, two of them special


@dataclass(frozen=True)
class ChunkPlan:
    ordinal: int
    section: int  # index into the parsed document's sections
    start: int  # character offsets into the extracted text
    end: int
    token_count: int


@lru_cache(maxsize=4)
def tokenizer_for(model_path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))


def _token_offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    tokenizer.no_truncation()
    return [span for span in tokenizer.encode(text, add_special_tokens=False).offsets if span[1] > span[0]]


def plan_token_chunks(parsed: ParsedDocument, tokenizer, *, size: int = 200, overlap: int = 40) -> list[ChunkPlan]:
    """Token windows that end at a paragraph break when one falls in the window's second half.
    Windows cut at a paragraph break start fresh at the next paragraph (no overlap needed); only a
    window cut inside a paragraph overlaps its neighbour. Content-defined boundaries keep an edit
    local: the chunks of untouched paragraphs stay byte-identical, so their embeddings are reused."""
    size = min(size, MODEL_MAX_TOKENS)
    overlap = min(max(overlap, 0), size // 2)
    plans: list[ChunkPlan] = []
    for index, section in enumerate(parsed.sections):
        body = parsed.text[section.start : section.end]
        offsets = _token_offsets(tokenizer, body)
        # breaks[i]: a paragraph break lies between token i-1 and token i
        breaks = {i for i in range(1, len(offsets)) if "\n\n" in body[offsets[i - 1][1] : offsets[i][0]]}
        position = 0
        while position < len(offsets):
            end = min(position + size, len(offsets))
            cut_at_break = False
            if end < len(offsets):
                candidates = [i for i in breaks if position + size // 2 <= i <= end]
                if candidates:
                    end, cut_at_break = max(candidates), True
            window = offsets[position:end]
            plans.append(
                ChunkPlan(len(plans), index, section.start + window[0][0], section.start + window[-1][1], len(window))
            )
            if end >= len(offsets):
                break
            position = end if cut_at_break else end - overlap
    return plans


SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n+|$)")


def plan_semantic_chunks(
    parsed: ParsedDocument, tokenizer, embed, *, size: int = 200, threshold: float = 0.45
) -> list[ChunkPlan]:
    """Whole sentences, grouped until adjacent-sentence cosine similarity falls below `threshold`
    or the next sentence would pass `size` tokens. `embed` maps texts to unit vectors."""
    size = min(size, MODEL_MAX_TOKENS)
    plans: list[ChunkPlan] = []
    for index, section in enumerate(parsed.sections):
        body = parsed.text[section.start : section.end]
        sentences = [
            (m.start() + len(m.group()) - len(m.group().lstrip()), m.end())
            for m in SENTENCE.finditer(body)
            if m.group().strip()
        ]
        if not sentences:
            continue
        vectors = embed([body[s:e] for s, e in sentences])
        lengths = [len(_token_offsets(tokenizer, body[s:e])) for s, e in sentences]
        group_start, group_tokens = 0, 0
        for i, (_s, _e) in enumerate(sentences):
            similar = i == 0 or float(np.dot(vectors[i - 1], vectors[i])) >= threshold
            if i > group_start and (not similar or group_tokens + lengths[i] > size):
                plans.append(
                    ChunkPlan(
                        len(plans),
                        index,
                        section.start + sentences[group_start][0],
                        section.start + sentences[i - 1][1],
                        group_tokens,
                    )
                )
                group_start, group_tokens = i, 0
            group_tokens += lengths[i]
        plans.append(
            ChunkPlan(
                len(plans),
                index,
                section.start + sentences[group_start][0],
                section.start + sentences[-1][1],
                group_tokens,
            )
        )
    return plans
