"""Re-ranking with a cross-encoder from a configured local folder.

No cross-encoder ships in a PyPI package here, and nothing may be downloaded, so the test builds a
tiny BERT cross-encoder with random weights (the real tokenizer of the embedding model) and saves it
to a folder: the wiring — load from a path, score (query, chunk) pairs, re-order, report the score —
is exercised for real; the quality of a trained model is not what this test is about."""

import shutil
from pathlib import Path

import pytest

from apps.answers.rerank import _load
from apps.audit.models import AuditRecord
from apps.corpus.embedding import default_model_path


@pytest.fixture(scope="session")
def cross_encoder_path(tmp_path_factory) -> str:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross-encoder")
    source = Path(default_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


@pytest.mark.django_db
def test_rerank_reorders_by_the_cross_encoder_and_reports_its_score(library, settings, cross_encoder_path):
    settings.ANSWERS = {**settings.ANSWERS, "RERANK_MODEL_PATH": cross_encoder_path, "RERANK_DEPTH": 10}
    client = library.client(library.world.owner)
    query = "company policy rules"
    body = client.post("/api/v1/search", {"query": query, "k": 4, "rerank": True}, format="json").json()
    results = body["results"]
    assert len(results) == 4
    rerank = [r["scores"]["rerank"] for r in results]
    assert rerank == sorted(rerank, reverse=True)
    expected = _load(cross_encoder_path).model.predict([(query, r["text"]) for r in results])
    assert rerank == pytest.approx([float(x) for x in expected], abs=1e-4)
    assert body["timings"]["rerank"] > 0
    record = AuditRecord.objects.across_tenants().get(pk=body["audit_id"])
    assert record.parameters["rerank"] is True
    # every fused candidate up to the re-rank depth was scored and is in the record; only k were shown
    chunks = list(record.chunks.order_by("rank"))
    assert len(chunks) > 4 and all(c.scores["rerank"] is not None for c in chunks)
    assert [c.chunk_id for c in chunks if c.shown] == [r["chunk_id"] for r in results]
    plain = client.post("/api/v1/search", {"query": query, "k": 4}, format="json").json()
    assert all(r["scores"]["rerank"] is None for r in plain["results"])
