"""The ground floor of retrieval: what ingestion makes of a document version, its sections
(parents, for context) and chunks (children, for retrieval), with their embeddings. The database is
the system of record; the search index is a projection of these rows and can be rebuilt from them
without re-embedding.

The tables were created by the ingestion app (migrations ingestion/0001-0002) and moved here in
place: corpus/0001 takes the models over in Django's state only, corpus/0002 renames the tables
(the constraint and index names are kept)."""

from __future__ import annotations

import numpy as np
from django.db import models

from apps.documents.models import DocumentVersion
from apps.tenants.scoping import TenantOwned


def chunk_id(version_id: int, ordinal: int) -> str:
    """Deterministic: re-ingesting a version writes the same ids, so retries are idempotent and
    index updates and deletes go by id."""
    return f"v{version_id}-c{ordinal}"


class Section(TenantOwned):
    """A parent section of a version's extracted text: what an answer quotes for context."""

    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="sections")
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    # The model identity that embedded this section's sentences (its `Sentence` rows) and the rule
    # that split them (`corpus.sentences.segmented_by`); empty when they were not embedded (ingested
    # before sentences were, or with INGEST_SENTENCE_VECTORS off).
    sentences_model = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["version", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["version", "ordinal"], name="section_ordinal_unique_in_version")]

    def __str__(self) -> str:
        return f"version {self.version_id} section {self.ordinal}"


class Chunk(TenantOwned):
    """A child chunk: the unit of retrieval, with character offsets into the extracted text."""

    id = models.CharField(primary_key=True, max_length=64)
    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="chunks")
    section = models.ForeignKey(Section, null=True, blank=True, on_delete=models.SET_NULL, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64, db_index=True)
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField(default=0)
    # float32, L2-normalised; `embedding_model` names the model that made it, so a change of model
    # is detected and the affected chunks can be re-embedded.
    embedding = models.BinaryField()
    embedding_model = models.CharField(max_length=200)
    # sha256 of exactly what the model encoded (title + text, see Embedder.passage_input): the key
    # under which a later version reuses this vector instead of encoding the same input again.
    embedding_input_sha256 = models.CharField(max_length=64, default="")

    class Meta:
        ordering = ["version", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["version", "ordinal"], name="chunk_ordinal_unique_in_version")]
        indexes = [models.Index(fields=["embedding_input_sha256", "embedding_model"], name="chunk_embedding_reuse")]

    def __str__(self) -> str:
        return self.id

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype=np.float32)


class Sentence(TenantOwned):
    """A sentence of a section (`apps.corpus.sentences.spans`) with its vector, embedded once at
    ingestion: the extractive generator compares the question with these instead of encoding its
    context's sentences on every request. The text is not copied: it is the section's, at these
    offsets (into the version's extracted text)."""

    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="sentences")
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    # sha256 of the sentence as encoded (line breaks as spaces): a later version reuses the vector
    # of an unchanged sentence instead of encoding it again.
    text_sha256 = models.CharField(max_length=64)
    embedding = models.BinaryField()  # float32, L2-normalised, the sentence alone (no title)
    embedding_model = models.CharField(max_length=200)

    class Meta:
        ordering = ["section", "start_offset"]
        constraints = [
            models.UniqueConstraint(fields=["section", "start_offset"], name="sentence_start_unique_in_section")
        ]
        indexes = [models.Index(fields=["text_sha256", "embedding_model"], name="sentence_embedding_reuse")]

    def __str__(self) -> str:
        return f"section {self.section_id} sentence at {self.start_offset}"

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype=np.float32)
