"""Context assembly: the parent sections of the top child chunks, de-duplicated, most relevant
first, within a token budget. A section too long for what is left of the budget gives way to
the child chunk alone, so a huge undivided document does not crowd out everything else."""

from __future__ import annotations

from django.conf import settings

from apps.corpus.embedding import default_model_path
from apps.ingestion.chunking import tokenizer_for

from .types import Passage, RankedChunk


def count_tokens(text: str) -> int:
    tokenizer = tokenizer_for(settings.EMBEDDING["MODEL_PATH"] or default_model_path())
    tokenizer.no_truncation()
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def assemble(candidates: list[RankedChunk], *, budget: int) -> list[Passage]:
    """`candidates` are the re-checked chunks, best first; the ones that make it into a passage are
    the ones shown (given to the generator)."""
    passages: list[Passage] = []
    by_section: dict[int, Passage] = {}
    remaining = budget
    for ranked in candidates:
        assert ranked.facts is not None  # it passed the re-check, which loaded them
        chunk, section = ranked.facts, ranked.facts.section
        if section is not None and section.section_id in by_section:
            by_section[section.section_id].chunks.append(ranked)
            continue
        options: list[tuple[str, int, int, bool]] = []
        if section is not None:
            options.append((section.text, section.start_offset, section.end_offset, True))
        options.append((chunk.text, chunk.start_offset, chunk.end_offset, False))
        for text, start, end, whole_section in options:
            tokens = count_tokens(text)
            if tokens <= remaining:
                passage = Passage(
                    number=len(passages) + 1,
                    document_id=ranked.hit.document_id,
                    version_id=ranked.hit.version_id,
                    title=ranked.hit.title,
                    text=text,
                    start_offset=start,
                    end_offset=end,
                    chunks=[ranked],
                    tokens=tokens,
                    section_id=section.section_id if whole_section and section is not None else None,
                )
                passages.append(passage)
                if whole_section and section is not None:
                    by_section[section.section_id] = passage
                remaining -= tokens
                break
    return passages
