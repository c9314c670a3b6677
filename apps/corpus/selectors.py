"""Reads of the corpus for the layers above, with the tenant explicit."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .models import Section
from .sentences import segmented_by
from .types import SectionSentences
from .vectors import EMBEDDING_DIMS


def section_sentences(*, tenant_id: int, section_ids: Iterable[int], model: str) -> dict[int, SectionSentences]:
    """The sentences ingestion embedded with `model` (an embedder identity), split by today's rule,
    for these sections of the tenant, by section id. A section it did not embed so (ingested before
    sentences were stored, by another model or another rule) is absent; one it embedded that holds
    no sentence maps to an empty set."""
    ids = set(section_ids)
    if not ids:
        return {}
    # One statement (the sections, LEFT JOINed to their sentences), so that a re-ingest committing
    # meanwhile cannot make a section read as embedded come back with none of its sentences.
    rows = (
        Section.objects.for_tenant(tenant_id)
        .filter(pk__in=ids, sentences_model=segmented_by(model))
        .order_by("pk", "sentences__start_offset")
        .values_list(
            "pk",
            "sentences__start_offset",
            "sentences__end_offset",
            "sentences__embedding",
            "sentences__embedding_model",
        )
    )
    found: dict[int, tuple[list[tuple[int, int]], list[bytes]]] = {}
    for section_id, start, end, embedding, embedding_model in rows:
        spans, vectors = found.setdefault(section_id, ([], []))
        if start is not None and embedding_model == model:  # None: a section that holds no sentence
            spans.append((start, end))
            vectors.append(bytes(embedding))
    return {
        section_id: SectionSentences(
            spans=tuple(spans),
            vectors=np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(spans), EMBEDDING_DIMS),
        )
        for section_id, (spans, vectors) in found.items()
    }
