"""Sentence vectors stored at ingestion (`corpus.Sentence`): an extractive answer reads them instead
of encoding its context's sentences on every request, and says exactly what it said when it
encoded them; a section whose sentences another model embedded, or none, is encoded as before;
the vectors are the tenant's, go with a purge, and are reused by a later version."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.answers.generators import ExtractiveGenerator, candidates_with_vectors
from apps.corpus import selectors as corpus_selectors
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Section, Sentence
from apps.corpus.sentences import segmented_by, spans
from apps.documents import services as documents
from apps.search.backends import get_search_backend
from apps.tenants.actors import Actor
from tests.answers.conftest import add_document, version_passages

QUESTION = "How long must a password be?"


@pytest.fixture
def encoded(monkeypatch):
    """Every text the embedding model encodes from here on: ingestion's (`encode`) and a request's
    (`encode_queries`, on whichever runtime serves), each once; the model itself still runs."""
    embedder, texts, in_query = get_embedder(), [], [False]
    real_encode, real_queries = embedder.encode, embedder.encode_queries

    def encode(batch, **kwargs):
        if not in_query[0]:  # the torch query runtime goes through encode(): counted once
            texts.extend(batch)
        return real_encode(batch, **kwargs)

    def encode_queries(batch):
        texts.extend(batch)
        in_query[0] = True
        try:
            return real_queries(batch)
        finally:
            in_query[0] = False

    monkeypatch.setattr(embedder, "encode", encode)
    monkeypatch.setattr(embedder, "encode_queries", encode_queries)
    return texts


def ask(library, query=QUESTION, **options):
    response = library.client(library.alice).post("/api/v1/ask", {"query": query, **options}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_ingestion_stores_each_sections_sentences_with_the_models_vectors(library):
    tenant, embedder = library.world.tenant, get_embedder()
    sections = list(Section.objects.for_tenant(tenant).filter(version=library.security.published_version))
    assert sections and all(s.sentences_model == segmented_by(embedder.identity) for s in sections)
    stored = 0
    for section in sections:
        expected = spans(section.text, section.start_offset)
        rows = list(Sentence.objects.for_tenant(tenant).filter(section=section).order_by("start_offset"))
        assert [(r.start_offset, r.end_offset) for r in rows] == [(start, end) for _, start, end in expected]
        if expected:
            np.testing.assert_allclose(
                np.stack([r.vector for r in rows]), embedder.encode([text for text, _, _ in expected]), atol=1e-5
            )
        assert {r.embedding_model for r in rows} <= {embedder.identity}
        stored += len(rows)
    assert stored >= 2  # "Passwords must be at least fourteen …", "Multi-factor authentication is …"


@pytest.mark.django_db
def test_an_answer_reads_the_stored_vectors_and_says_what_encoding_them_said(library, encoded):
    answer = ask(library)
    assert answer["grounded"] is True and "fourteen characters" in answer["answer"]
    assert encoded == [QUESTION], "only the question is encoded: every context sentence's vector was read"

    # As before sentence vectors were stored (or stored by another model): encoded here, same answer.
    Section.objects.for_tenant(library.world.tenant).update(sentences_model="another-model")
    encoded.clear()
    again = ask(library)
    # The question's vector is this caller's own from the first ask (answers/query_vectors.py).
    assert len(encoded) > 3 and QUESTION not in encoded
    assert again["answer"] == answer["answer"] and again["citations"] == answer["citations"]


@pytest.mark.django_db
def test_a_refusal_is_the_same_with_stored_vectors_and_without(library, encoded):
    query = "What colour is the office cat?"
    first = ask(library, query)
    Section.objects.for_tenant(library.world.tenant).update(sentences_model="")
    second = ask(library, query)
    assert first["grounded"] is second["grounded"] is False
    assert first["answer"] == second["answer"]


LONG = (
    "# Procurement\n\n"
    + " ".join(f"Purchase order {i} needs a second signature above {i} thousand euros." for i in range(120))
).encode()


@pytest.mark.django_db
def test_a_lone_chunk_takes_the_stored_vector_of_each_sentence_it_holds_whole(
    library, encoded, django_capture_on_commit_callbacks
):
    tenant = library.world.tenant
    document = add_document(tenant, library.travel.collection, "Procurement", LONG, django_capture_on_commit_callbacks)
    version = document.published_version
    _, passages = version_passages(tenant, version)
    assert len(passages) > 1, "the section is cut into several chunks"
    stored = corpus_selectors.section_sentences(
        tenant_id=tenant.pk, section_ids={p.home_section_id for p in passages}, model=get_embedder().identity
    )
    assert set(stored) == {p.home_section_id for p in passages}
    candidates, vectors = candidates_with_vectors(passages, stored)
    assert candidates and all(
        (vector is not None) == ((start, end) in stored[passage.home_section_id].spans)
        for (passage, _, start, end), vector in zip(candidates, vectors, strict=True)
    )
    assert sum(v is not None for v in vectors) > len(vectors) // 2, "most sentences lie whole inside a chunk"

    # The answer from those passages is the one the generator gives when it encodes every sentence.
    generator = ExtractiveGenerator(min_similarity=0.3, max_sentences=3)
    question = "Which purchase orders need a second signature?"
    with_stored = generator.generate(question, passages, stored_sentences=stored)
    encoded.clear()
    without = generator.generate(question, passages)
    assert len(encoded) == 1 + len(candidates)
    assert with_stored.grounded and with_stored.text == without.text and with_stored.citations == without.citations


@pytest.mark.django_db
def test_another_tenants_sections_give_no_vectors(library, globex):
    section_ids = set(Section.objects.for_tenant(library.world.tenant).values_list("pk", flat=True))
    identity = get_embedder().identity
    assert corpus_selectors.section_sentences(
        tenant_id=library.world.tenant.pk, section_ids=section_ids, model=identity
    )
    assert corpus_selectors.section_sentences(tenant_id=globex.tenant.pk, section_ids=section_ids, model=identity) == {}


@pytest.mark.django_db
def test_a_purge_takes_the_sentences_with_it(library, django_capture_on_commit_callbacks):
    tenant = library.world.tenant
    versions = list(library.security.versions.values_list("pk", flat=True))
    assert Sentence.objects.for_tenant(tenant).filter(section__version_id__in=versions).exists()
    actor = Actor(user=None)
    with django_capture_on_commit_callbacks(execute=True):
        documents.document_delete(document=library.security, actor=actor)
        library.security.refresh_from_db()
        documents.document_purge(document=library.security, actor=actor)
    assert not Sentence.objects.across_tenants().filter(section__version_id__in=versions).exists()


@pytest.mark.django_db
def test_a_new_version_reuses_the_vectors_of_sentences_it_keeps(library, encoded, django_capture_on_commit_callbacks):
    from apps.ingestion import services as ingestion

    # The last sentence changes: the cuts between the long text's sections stay where they were.
    changed = LONG.replace(b"Purchase order 119 needs", b"Purchase order 119 always needs")
    document = add_document(
        library.world.tenant, library.travel.collection, "Procurement", LONG, django_capture_on_commit_callbacks
    )
    version = documents.version_upload(
        document=document, actor=Actor(user=None), file=SimpleUploadedFile("procurement.md", changed), ingest=False
    )
    encoded.clear()
    report = ingestion.ingest_version(version_id=version.pk)
    assert report.status == "ready" and report.sentences == 120
    assert report.sentences_embedded == 1, "only the changed sentence is encoded again"
    assert "Purchase order 119 always needs a second signature above 119 thousand euros." in encoded


@pytest.mark.django_db
def test_with_sentence_vectors_off_nothing_is_stored_and_answers_still_come(
    library, settings, encoded, django_capture_on_commit_callbacks
):
    settings.INGESTION = {**settings.INGESTION, "SENTENCE_VECTORS": False}
    document = add_document(
        library.world.tenant, library.travel.collection, "Procurement", LONG, django_capture_on_commit_callbacks
    )
    sections = Section.objects.for_tenant(library.world.tenant).filter(version=document.published_version)
    assert {s.sentences_model for s in sections} == {""}
    assert not Sentence.objects.for_tenant(library.world.tenant).filter(section__in=sections).exists()
    get_search_backend().refresh()
    answer = ask(library, "Which purchase orders need a second signature above 7 thousand euros?")
    assert answer["grounded"] is True and "second signature" in answer["answer"]


@pytest.mark.django_db
def test_sentences_split_by_an_earlier_rule_are_not_read_and_reembed_splits_them_again(library, capsys):
    from django.core.management import call_command

    tenant, identity = library.world.tenant, get_embedder().identity
    sections = Section.objects.for_tenant(tenant).filter(version=library.security.published_version)
    ids = set(sections.values_list("pk", flat=True))
    assert corpus_selectors.section_sentences(tenant_id=tenant.pk, section_ids=ids, model=identity)
    sections.update(sentences_model=f"{identity} sentences-v0 pysbd-0.3.3")
    assert corpus_selectors.section_sentences(tenant_id=tenant.pk, section_ids=ids, model=identity) == {}

    call_command("reembed", "--tenant", tenant.slug)
    assert "1 more have sections whose sentences it did not embed" in capsys.readouterr().out
    assert {s.sentences_model for s in sections.all()} == {segmented_by(identity)}
    ids = set(sections.values_list("pk", flat=True))  # a re-ingest writes the sections anew
    assert corpus_selectors.section_sentences(tenant_id=tenant.pk, section_ids=ids, model=identity)
