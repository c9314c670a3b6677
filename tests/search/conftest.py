import hashlib

import numpy as np
import pytest

from apps.corpus.models import Chunk, chunk_id
from apps.corpus.vectors import EMBEDDING_DIMS
from apps.documents import services as document_services
from apps.documents.models import IngestionStatus
from apps.tenants.actors import Actor
from tests.documents.conftest import text_file


def vector_for(text: str) -> np.ndarray:
    """A deterministic unit vector per text (tests of plumbing, not of meaning)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    v = np.random.default_rng(seed).standard_normal(EMBEDDING_DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


def add_chunks(version, texts: list[str]) -> list[Chunk]:
    """What ingestion stores for a version: chunk rows with text and embedding."""
    offset, chunks = 0, []
    for ordinal, text in enumerate(texts):
        chunks.append(
            Chunk.objects.create(
                id=chunk_id(version.pk, ordinal),
                version=version,
                ordinal=ordinal,
                text=text,
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                start_offset=offset,
                end_offset=offset + len(text),
                embedding=vector_for(text).tobytes(),
                embedding_model="test-vectors",
            )
        )
        offset += len(text) + 1
    return chunks


@pytest.fixture
def published_document(acme):
    """A published document of acme with two indexed chunks, readable by the whole tenant."""
    from apps.access.grants import Grant
    from apps.access.levels import Level
    from apps.search import services as search_services
    from apps.tenants.models import TenantGroup

    collection = document_services.collection_create(tenant=acme.tenant, name="Policies")
    everyone = TenantGroup.objects.get(tenant=acme.tenant, is_everyone=True)
    document_services.grants_replace(obj=collection, grants=[Grant(everyone.auth_group, Level.VIEW)], actor=Actor(None))
    document = document_services.document_create(
        tenant=acme.tenant, collection=collection, title="Travel policy", actor=Actor(None), file=text_file()
    )
    version = document.versions.get()
    add_chunks(version, ["Flights under six hours are booked in economy class.", "Hotels are booked at the city rate."])
    document_services.version_set_status(version=version, status=IngestionStatus.READY)
    search_services.index_version(version_id=version.pk)
    document_services.version_publish(version=version, actor=Actor(None))
    return document
