"""Ingestion speed, end to end, against plain `SentenceTransformer.encode` over the same texts in
the same run (the chunks' inputs, and the sections' sentences when INGEST_SENTENCE_VECTORS is on);
and the re-ingest figure (a new version with ~5 % of its text edited).

The documents go into a throwaway tenant that is deleted at the end (with its index entries).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.corpus import sentences as corpus_sentences
from apps.corpus import services as corpus_services
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk
from apps.documents.models import Document, DocumentVersion
from apps.ingestion import bulk
from apps.ingestion import services as ingestion_services
from apps.tenants import services as tenant_services
from apps.tenants.models import Tenant

BATCH = 128  # documents per ingest_versions call, as `ingest_bulk --batch` defaults to


class Command(BaseCommand):
    help = "Ingestion chunks/s vs plain encode (same texts, same run), and the re-ingest figure."

    def add_arguments(self, parser):
        parser.add_argument(
            "--corpus",
            default=str(Path(settings.BASE_DIR).parent / "shared" / "datasets" / "cranfield" / "corpus.jsonl"),
        )
        parser.add_argument("--documents", type=int, default=300)
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "benchmarks" / "ingestion.md"))

    def handle(self, *args, corpus, documents, output, **options):
        embedder = get_embedder()
        embedder.encode(["warm up"])  # load the model outside both timings
        slug = f"bench-{random.randrange(10**8)}"
        tenant = tenant_services.tenant_create(slug=slug, name="Ingestion benchmark")
        try:
            rows = [json.loads(line) for line in Path(corpus).read_text().splitlines()[:documents] if line.strip()]
            from apps.documents import services as document_services

            collection = document_services.collection_create(tenant=tenant, name="bench")
            version_ids = [
                bulk.upload(
                    collection=collection,
                    item=bulk.BulkItem(
                        str(row["_id"]), row.get("title") or row["_id"], f"{row['_id']}.txt", row["text"].encode()
                    ),
                    publish=False,
                )
                for row in rows
            ]
            # Plain encode is timed before and after the pipeline (its texts are the same chunks, known
            # only after chunking, so the "before" run chunks them itself): the mean is the baseline,
            # which cancels the drift of a 2-core machine's clock and caches over a minute.
            from apps.ingestion import chunking, parsers

            tokenizer = chunking.tokenizer_for(embedder.model_path)
            planned, sentences = [], []
            for row in rows:
                parsed = parsers.parse(row["text"].encode(), "text/plain")
                title = row.get("title") or row["_id"]
                planned += [
                    embedder.passage_input(title, parsed.text[p.start : p.end])
                    for p in chunking.plan_token_chunks(
                        parsed, tokenizer, size=collection.chunk_size, overlap=collection.chunk_overlap
                    )
                ]
                if settings.INGESTION["SENTENCE_VECTORS"]:
                    sentences += [
                        text
                        for section in parsed.sections
                        for text, _, _ in corpus_sentences.spans(
                            parsed.text[section.start : section.end], section.start
                        )
                    ]
            started = time.perf_counter()
            embedder.model.encode(planned, batch_size=embedder.batch_size, normalize_embeddings=True)
            encode_before = time.perf_counter() - started
            started = time.perf_counter()
            embedder.model.encode(sentences, batch_size=embedder.batch_size, normalize_embeddings=True)
            sentences_before = time.perf_counter() - started
            started = time.perf_counter()
            reports = []
            for start in range(0, len(version_ids), BATCH):
                reports += ingestion_services.ingest_versions(
                    version_ids=version_ids[start : start + BATCH], embedder=embedder
                )
            pipeline_seconds = time.perf_counter() - started
            chunks = sum(r.chunks for r in reports)
            texts = [
                embedder.passage_input(title, text)
                for title, text in Chunk.objects.filter(version__document__tenant=tenant)
                .order_by("version_id", "ordinal")
                .values_list("version__document__title", "text")
            ]
            started = time.perf_counter()
            embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
            encode_seconds = (encode_before + time.perf_counter() - started) / 2
            started = time.perf_counter()
            embedder.model.encode(sentences, batch_size=embedder.batch_size, normalize_embeddings=True)
            sentence_seconds = (sentences_before + time.perf_counter() - started) / 2
            stored_sentences = sum(r.sentences for r in reports)

            # re-ingest: ~5 % of one long document's text edited
            long_doc = self._long_document(collection, rows)
            v1 = long_doc.versions.get()
            ingestion_services.ingest_version(version_id=v1.pk, embedder=embedder)
            text = v1.file.open("rb").read().decode()
            edited = self._edit(text, 0.05)
            from django.core.files.uploadedfile import SimpleUploadedFile

            from apps.tenants.actors import Actor

            v2 = document_services.version_upload(
                document=long_doc, file=SimpleUploadedFile("long.txt", edited.encode()), actor=Actor(None), ingest=False
            )
            report = ingestion_services.ingest_version(version_id=v2.pk, embedder=embedder)
        finally:
            # The corpus forgets the benchmark's chunks and announces it: the index drops them too.
            corpus_services.versions_forget(
                tenant_id=tenant.pk,
                version_ids=DocumentVersion.objects.filter(document__tenant=tenant).values_list("pk", flat=True),
            )
            self._drop(tenant)
        plain_seconds = encode_seconds + sentence_seconds
        pipeline_rate, encode_rate = chunks / pipeline_seconds, len(texts) / plain_seconds
        table = (
            "| what | chunks | sentences | seconds | chunks/s |\n|---|---:|---:|---:|---:|\n"
            f"| pipeline (parse, chunk, embed chunks and sentences, store, index) | {chunks} | {stored_sentences} | "
            f"{pipeline_seconds:.1f} | {pipeline_rate:.1f} |\n"
            f"| plain `encode` of the same texts (mean of a run before and one after) | {len(texts)} | "
            f"{len(sentences)} | {plain_seconds:.1f} | {encode_rate:.1f} |\n"
            f"| of which the chunks' inputs | {len(texts)} | | {encode_seconds:.1f} | "
            f"{len(texts) / encode_seconds:.1f} |\n"
            f"| of which the sentences (for extractive answers) | | {len(sentences)} | {sentence_seconds:.1f} | |\n\n"
            f"Pipeline / plain encode of the same texts: **{pipeline_rate / encode_rate:.2f}×** (target ≥ 0.9×). "
            f"The sentences take {sentence_seconds / plain_seconds:.0%} of the model's time "
            "(`INGEST_SENTENCE_VECTORS=false` saves it where answers do not come from the extractive generator).\n\n"
            f"Re-ingest of a {report.chunks}-chunk document with 5 % of its text edited: embedded {report.embedded} "
            f"chunks ({report.embedded / max(report.chunks, 1):.0%}), reused {report.reused} (target ≤ 10 % "
            f"embedded); embedded {report.sentences_embedded} of its {report.sentences} sentences "
            f"({report.sentences_embedded / max(report.sentences, 1):.0%}).\n"
        )
        self.stdout.write("\n" + table)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(
            f"# Ingestion speed\n\n`manage.py ingest_benchmark --documents {documents}` (Cranfield abstracts, "
            f"{settings.SEARCH_BACKEND} "
            f"search backend, profile {settings.PLATFORM_PROFILE}), all-MiniLM-L6-v2 on this 2-core machine's CPU.\n\n"
            + table
        )

    @staticmethod
    def _long_document(collection, rows):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from apps.documents import services as document_services
        from apps.tenants.actors import Actor

        text = "\n\n".join(row["text"] for row in rows[:60])
        return document_services.document_create(
            tenant=collection.tenant,
            collection=collection,
            title="long",
            actor=Actor(None),
            file=SimpleUploadedFile("long.txt", text.encode()),
            ingest=False,
        )

    @staticmethod
    def _edit(text: str, share: float) -> str:
        paragraphs = text.split("\n\n")
        rng = random.Random(5)
        budget = share * len(text)
        for i in rng.sample(range(len(paragraphs)), len(paragraphs)):
            if budget <= 0:
                break
            budget -= len(paragraphs[i])
            paragraphs[i] = paragraphs[i].replace(" the ", " this ")
        return "\n\n".join(paragraphs)

    @staticmethod
    def _drop(tenant: Tenant) -> None:
        for version in DocumentVersion.objects.filter(document__tenant=tenant):
            if version.file:
                version.file.delete(save=False)
        Document.objects.filter(tenant=tenant).update(published_version=None)
        Document.objects.filter(tenant=tenant).delete()  # versions, sections, chunks, history cascade
        tenant.delete()
