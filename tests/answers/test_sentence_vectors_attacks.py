"""Attacks on the sentence vectors stored at ingestion (`corpus.Sentence`): tenant isolation of the
reads and of reuse by hash, ACLs of what an answer quotes, equality with encoding every sentence
(odd whitespace, headings, long and empty sections, lone chunks), and the lifecycle (purge in a
batch, re-ingest with the setting toggled, another model, reembed)."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.answers.generators import ExtractiveGenerator, candidates_with_vectors, sentences
from apps.corpus import selectors as corpus_selectors
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Section, Sentence
from apps.corpus.sentences import segmented_by, spans
from apps.documents import services as documents
from apps.documents.models import Document
from apps.ingestion import parsers
from apps.ingestion import services as ingestion
from apps.tenants.actors import Actor
from tests.answers.conftest import SECURITY, add_document, version_passages

QUESTION = "How long must a password be?"


def ask(library, query=QUESTION, membership=None, **options):
    client = library.client(membership or library.alice)
    response = client.post("/api/v1/ask", {"query": query, **options}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _upload(document, content: bytes):
    return documents.version_upload(
        document=document, actor=Actor(user=None), file=SimpleUploadedFile("doc.md", content), ingest=False
    )


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.django_db
def test_a_version_purged_in_a_batch_does_not_shift_the_other_versions_sentence_vectors(library, monkeypatch):
    """Two versions ingested in one batch, the first purged while being embedded: the second's
    stored sentence vectors must be its own sentences', not the purged version's."""
    tenant, actor = library.world.tenant, Actor(user=None)
    secret = documents.document_create(tenant=tenant, collection=library.travel.collection, actor=actor, title="S")
    kept = documents.document_create(tenant=tenant, collection=library.travel.collection, actor=actor, title="K")
    secret_version = _upload(
        secret, b"# Secret\n\nThe merger with Initech closes on the first of May next year. Nobody may know it yet.\n"
    )
    kept_version = _upload(kept, b"# Kept\n\nVisitors sign in at the front desk before entering the building.\n")

    real = ingestion.embed_with_reuse

    def embed_while_purged(texts, **kwargs):
        document = Document.objects.across_tenants().get(pk=secret.pk)
        if document.purged_at is None:  # meanwhile, in another request
            documents.document_delete(document=document, actor=actor)
            documents.document_purge(document=Document.objects.across_tenants().get(pk=secret.pk), actor=actor)
        return real(texts, **kwargs)

    monkeypatch.setattr(ingestion, "embed_with_reuse", embed_while_purged)
    reports = ingestion.ingest_versions(version_ids=[secret_version.pk, kept_version.pk])
    assert [r.status for r in reports] == ["skipped", "ready"]

    rows = list(Sentence.objects.for_tenant(tenant).filter(section__version=kept_version).order_by("start_offset"))
    assert len(rows) == 1
    expected = get_embedder().encode(["Visitors sign in at the front desk before entering the building."])[0]
    leaked = get_embedder().encode(["The merger with Initech closes on the first of May next year."])[0]
    assert float(rows[0].vector @ leaked) < 0.99, "the purged version's sentence vector was stored on another's row"
    np.testing.assert_allclose(rows[0].vector, expected, atol=1e-5)


@pytest.mark.django_db
def test_reingest_with_sentence_vectors_off_leaves_no_sentence_and_answers_stay(library, settings):
    """Re-ingest a version with INGEST_SENTENCE_VECTORS off, then on again: no stale rows are left
    or read, the section is marked unembedded, and the answer does not change."""
    tenant, version = library.world.tenant, library.security.published_version
    before = ask(library)
    settings.INGESTION = {**settings.INGESTION, "SENTENCE_VECTORS": False}
    assert ingestion.ingest_version(version_id=version.pk).status == "ready"
    sections = Section.objects.for_tenant(tenant).filter(version=version)
    assert {s.sentences_model for s in sections} == {""}
    assert not Sentence.objects.for_tenant(tenant).filter(section__version=version).exists()
    assert ask(library)["answer"] == before["answer"]

    settings.INGESTION = {**settings.INGESTION, "SENTENCE_VECTORS": True}
    assert ingestion.ingest_version(version_id=version.pk).status == "ready"
    assert {s.sentences_model for s in sections.all()} == {segmented_by(get_embedder().identity)}
    again = ask(library)
    assert again["answer"] == before["answer"] and again["citations"] == before["citations"]


@pytest.mark.django_db
def test_sentences_of_another_model_are_neither_read_nor_reused_and_reembed_replaces_them(library, capsys):
    """Sections and sentences embedded by another model (garbage vectors): an answer ignores them,
    ingestion does not reuse them by hash, and reembed replaces them, leaving none behind."""
    from django.core.management import call_command

    tenant, version = library.world.tenant, library.security.published_version
    before = ask(library)
    rows = Sentence.objects.for_tenant(tenant).filter(section__version=version)
    garbage = np.full(rows.first().vector.shape, 1 / np.sqrt(rows.first().vector.size), dtype=np.float32)
    for row in rows:
        row.embedding, row.embedding_model = garbage.tobytes(), "old-model"
        row.save()
    Section.objects.for_tenant(tenant).filter(version=version).update(sentences_model="old-model")
    assert ask(library)["answer"] == before["answer"]

    call_command("reembed")
    assert "1 more have sections" in capsys.readouterr().out
    assert not Sentence.objects.across_tenants().filter(embedding_model="old-model").exists()
    for row in Sentence.objects.for_tenant(tenant).filter(section__version=version):
        assert not np.allclose(row.vector, garbage)
    again = ask(library)
    assert again["answer"] == before["answer"] and again["citations"] == before["citations"]


# --------------------------------------------------------------------------- tenants and ACLs


@pytest.mark.django_db
def test_another_tenants_poisoned_sentence_vectors_are_not_reused_by_hash(
    library, globex, django_capture_on_commit_callbacks
):
    """Acme's stored sentence vectors are poisoned; Globex ingests the very same text: its vectors
    are encoded afresh (reuse by hash is pinned to the tenant) and its answers are unaffected."""
    rows = Sentence.objects.for_tenant(library.world.tenant)
    poison = np.zeros(rows.first().vector.shape, dtype=np.float32)
    poison[0] = 1.0
    rows.update(embedding=poison.tobytes())

    collection = documents.collection_create(tenant=globex.tenant, name="Handbook")
    document = add_document(globex.tenant, collection, "Security policy", SECURITY, django_capture_on_commit_callbacks)
    theirs = list(Sentence.objects.for_tenant(globex.tenant).filter(section__version=document.published_version))
    assert theirs and all(not np.allclose(r.vector, poison) for r in theirs)
    texts = [
        t
        for s in Section.objects.for_tenant(globex.tenant).filter(version=document.published_version)
        for t, _, _ in spans(s.text, s.start_offset)
    ]
    np.testing.assert_allclose(np.stack([r.vector for r in theirs]), get_embedder().encode(texts), atol=1e-5)


@pytest.mark.django_db
def test_section_sentences_reads_only_the_tenants_own_among_mixed_ids(
    library, globex, django_capture_on_commit_callbacks
):
    """A request for a mix of the tenant's section ids and another tenant's gets only its own."""
    collection = documents.collection_create(tenant=globex.tenant, name="Handbook")
    add_document(globex.tenant, collection, "Security policy", SECURITY, django_capture_on_commit_callbacks)
    mine = set(Section.objects.for_tenant(library.world.tenant).values_list("pk", flat=True))
    theirs = set(Section.objects.for_tenant(globex.tenant).values_list("pk", flat=True))
    assert mine and theirs
    got = corpus_selectors.section_sentences(
        tenant_id=globex.tenant.pk, section_ids=mine | theirs, model=get_embedder().identity
    )
    assert set(got) == theirs


@pytest.mark.django_db
def test_poisoned_vectors_of_an_unreadable_section_do_not_reach_a_readers_answer(library):
    """Bob-only salary sentences get vectors equal to the question's: Alice's answer still never
    quotes them (vectors are read only for the sections of her re-checked passages)."""
    query = "What are the salary bands for engineers?"
    vector = get_embedder().encode([query])[0]
    tenant = library.world.tenant
    Sentence.objects.for_tenant(tenant).filter(section__version__document=library.salaries).update(
        embedding=vector.tobytes()
    )
    answer = ask(library, query)
    assert "Salary" not in answer["answer"] and "60,000" not in answer["answer"]
    assert all(c["document_id"] != library.salaries.pk for c in answer["citations"])


@pytest.mark.django_db
def test_an_old_versions_stored_sentences_are_not_quoted_after_a_new_version_is_published(
    library, django_capture_on_commit_callbacks
):
    """A new version changes the password rule: the old (unpurged) version's stored sentences are
    still in the table, but the answer quotes only the published version."""
    changed = SECURITY.replace(b"at least fourteen", b"at least twenty")
    with django_capture_on_commit_callbacks(execute=True):
        version = _upload(library.security, changed)
        assert ingestion.ingest_version(version_id=version.pk).status == "ready"
        version.refresh_from_db()
        documents.version_publish(version=version, actor=Actor(user=None))
    from apps.search.backends import get_search_backend

    get_search_backend().refresh()
    old = library.security.versions.exclude(pk=version.pk).get()
    assert Sentence.objects.for_tenant(library.world.tenant).filter(section__version=old).exists()
    answer = ask(library)
    assert "twenty" in answer["answer"] and "fourteen" not in answer["answer"], answer
    assert {c["version_id"] for c in answer["citations"]} == {version.pk}


# --------------------------------------------------------------------------- stored == encoded

ODD = (
    "# Odd document\r\n\r\n"
    "## Tabs\tand\u00a0spaces\r\n\r\n"
    "Employees\tmust\u00a0lock their screens when they leave the desk.\r\nA second line wraps "
    "the same paragraph and ends here.\r\n\r\n"
    "## Unicode\n\n"
    "Caf\u00e9 visits are reimbursed up to f\u00fcnf euros per day \u2014 receipts required. "
    "Na\u00efve r\u00e9sum\u00e9 readers \u201cquote\u201d things\u2026 and that is fine today.\n\n"
    "## EMPTY\n\n"
    "## THE HEADING IN CAPITALS IS LONG ENOUGH\n\n"
    "Dr. Smith of the U.S. office approves travel above 500 euros per trip.\n\n"
    "## Long\n\n"
    + "\n\n".join(
        " ".join(f"Clause {p}.{i} says that item {i} of part {p} is kept for {i + p} years." for i in range(12))
        for p in range(12)
    )
    + "\n"
).encode()


@pytest.mark.django_db
def test_odd_text_gives_the_same_candidates_stored_or_encoded_for_whole_sections_and_lone_chunks(
    library, django_capture_on_commit_callbacks
):
    """Tabs, CRLF, NBSP, unicode, capital headings, an empty section and one cut by
    MAX_SECTION_CHARS: stored spans equal segmenting the passage, lie inside it, and their vectors
    equal encoding the sentence."""
    tenant = library.world.tenant
    document = add_document(tenant, library.travel.collection, "Odd", ODD, django_capture_on_commit_callbacks)
    version = document.published_version
    sections = list(Section.objects.for_tenant(tenant).filter(version=version))
    assert any(len(s.text) > parsers.MAX_SECTION_CHARS // 2 for s in sections)
    assert len([s for s in sections if s.heading.startswith("Long")]) > 1, "the long section was cut"
    wholes, lone = version_passages(tenant, version)
    stored = corpus_selectors.section_sentences(
        tenant_id=tenant.pk, section_ids={s.pk for s in sections}, model=get_embedder().identity
    )
    assert set(stored) == {s.pk for s in sections}
    embedder = get_embedder()
    for kind, passages in (("whole", wholes), ("lone", lone)):
        candidates, vectors = candidates_with_vectors(passages, stored)
        expected = [(p.number, *s) for p in passages for s in sentences(p)]
        assert [(p.number, t, s, e) for p, t, s, e in candidates] == expected, kind
        for (passage, text, start, end), _ in zip(candidates, vectors, strict=True):
            assert passage.start_offset <= start < end <= passage.end_offset, kind
            assert passage.text[start - passage.start_offset : end - passage.start_offset].replace("\n", " ") == text
        known = [(c[1], v) for c, v in zip(candidates, vectors, strict=True) if v is not None]
        if known:  # one batch: the model's vectors do not depend on their batch beyond float noise
            encoded = embedder.encode([text for text, _ in known])
            np.testing.assert_allclose(np.stack([v for _, v in known]), encoded, atol=1e-5)
        if kind == "whole":
            assert all(v is not None for v in vectors)

    generator = ExtractiveGenerator(min_similarity=0.2, max_sentences=4)
    for question in ("Must employees lock their screens?", "How long is item 7 of part 3 kept?", "Café receipts?"):
        for passages in (wholes, lone):
            with_stored = generator.generate(question, passages, stored_sentences=stored)
            without = generator.generate(question, passages)
            assert (with_stored.text, with_stored.citations) == (without.text, without.citations), question


@pytest.mark.django_db
def test_a_reingest_between_the_selectors_reads_does_not_turn_a_section_into_one_without_sentences(
    library, monkeypatch
):
    """A re-ingest (reembed) commits between the selector's reads (which sections are embedded,
    then their sentences): the old section must come back absent (then encoded) or whole, never as
    holding no sentence (which silently drops every sentence of that passage from the answer)."""
    tenant, version = library.world.tenant, library.security.published_version
    section = next(s for s in Section.objects.for_tenant(tenant).filter(version=version) if spans(s.text, 0))
    reads, reingested = [], []

    def reingest():
        reingested.append(True)
        assert ingestion.ingest_version(version_id=version.pk).status == "ready"  # new sections, new ids

    for model in (Section, Sentence):
        real = model.objects.for_tenant

        def counted(tenant_id, real=real):
            if not reingested:  # the re-ingest's own reads are not the selector's
                reads.append(tenant_id)
                if len(reads) == 2:  # between the selector's first read and its second
                    reingest()
            return real(tenant_id)

        monkeypatch.setattr(model.objects, "for_tenant", counted)
    stored = corpus_selectors.section_sentences(
        tenant_id=tenant.pk, section_ids={section.pk}, model=get_embedder().identity
    )
    monkeypatch.undo()
    if not reingested:  # one read: the re-ingest comes after it
        reingest()
    assert not Section.objects.for_tenant(tenant).filter(pk=section.pk).exists()
    assert section.pk not in stored or stored[section.pk].spans, (
        "a section that is gone was read as one that holds no sentence"
    )
