"""Reads of the corpus for the layers above, with the tenant explicit."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .models import Section, Sentence
from .types import SectionSentences
from .vectors import EMBEDDING_DIMS


def section_sentences(*, tenant_id: int, section_ids: Iterable[int], model: str) -> dict[int, SectionSentences]:
    """The sentences ingestion embedded with `model` for these sections of the tenant, by section id.
    A section it did not embed with that model (ingested before sentences were stored, or by
    another model) is absent; one it embedded that holds no sentence maps to an empty set."""
    ids = set(section_ids)
    if not ids:
        return {}
    embedded = (
        Section.objects.for_tenant(tenant_id).filter(pk__in=ids, sentences_model=model).values_list("pk", flat=True)
    )
    found: dict[int, tuple[list[tuple[int, int]], list[bytes]]] = {pk: ([], []) for pk in embedded}
    if not found:
        return {}
    rows = (
        Sentence.objects.for_tenant(tenant_id)
        .filter(section_id__in=found, embedding_model=model)
        .order_by("section_id", "start_offset")
        .values_list("section_id", "start_offset", "end_offset", "embedding")
    )
    for section_id, start, end, embedding in rows:
        spans, vectors = found[section_id]
        spans.append((start, end))
        vectors.append(bytes(embedding))
    return {
        section_id: SectionSentences(
            spans=tuple(spans),
            vectors=np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(spans), EMBEDDING_DIMS),
        )
        for section_id, (spans, vectors) in found.items()
    }
