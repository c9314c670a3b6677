import itertools

import numpy as np

from apps.corpus.embedding import default_model_path
from apps.corpus.vectors import EMBEDDING_DIMS
from apps.ingestion.chunking import plan_semantic_chunks, plan_token_chunks, tokenizer_for
from apps.ingestion.parsers import ParsedDocument, ParsedSection


def tokenizer():
    return tokenizer_for(default_model_path())


def doc(*bodies: str) -> ParsedDocument:
    text, sections = "", []
    for i, body in enumerate(bodies):
        sections.append(ParsedSection(f"s{i}", len(text), len(text) + len(body)))
        text += body
    return ParsedDocument(text=text, sections=sections)


def test_token_windows_with_overlap_and_exact_offsets():
    words = " ".join(f"word{i}" for i in range(300))
    parsed = doc(words)
    plans = plan_token_chunks(parsed, tokenizer(), size=50, overlap=10)
    assert len(plans) > 5
    assert all(p.token_count <= 50 for p in plans)
    for a, b in itertools.pairwise(plans):
        assert a.start < b.start < a.end  # neighbours overlap
    assert parsed.text[plans[0].start : plans[0].end].startswith("word0")
    assert parsed.text[plans[-1].start : plans[-1].end].endswith("word299")


def test_chunks_never_cross_sections_and_the_model_limit_holds():
    parsed = doc("alpha " * 30, "beta " * 600)
    plans = plan_token_chunks(parsed, tokenizer(), size=1000, overlap=0)
    assert {p.section for p in plans} == {0, 1}
    assert all("alpha" not in parsed.text[p.start : p.end] for p in plans if p.section == 1)
    assert max(p.token_count for p in plans) <= 254


def test_semantic_chunks_split_where_the_topic_changes():
    sentences = ["Cats purr.", "Cats sleep a lot.", "Cats chase mice.", "Bonds pay coupons.", "Bonds have yields."]
    topics = {"Cats": np.eye(EMBEDDING_DIMS, dtype=np.float32)[0], "Bonds": np.eye(EMBEDDING_DIMS, dtype=np.float32)[1]}

    def embed(texts):
        return np.stack([topics[t.split()[0]] for t in texts])

    parsed = doc(" ".join(sentences))
    plans = plan_semantic_chunks(parsed, tokenizer(), embed, size=200, threshold=0.5)
    assert [parsed.text[p.start : p.end] for p in plans] == [
        "Cats purr. Cats sleep a lot. Cats chase mice.",
        "Bonds pay coupons. Bonds have yields.",
    ]


def test_windows_end_at_paragraph_breaks_so_edits_stay_local():
    paragraphs = [" ".join(f"p{p}w{i}" for i in range(40)) for p in range(12)]
    original = doc("\n\n".join(paragraphs))
    edited_paragraphs = list(paragraphs)
    edited_paragraphs[5] = edited_paragraphs[5].replace("p5w3", "changed words here")
    edited = doc("\n\n".join(edited_paragraphs))

    def chunk_texts(parsed):
        return [parsed.text[p.start : p.end] for p in plan_token_chunks(parsed, tokenizer(), size=200, overlap=40)]

    before, after = chunk_texts(original), chunk_texts(edited)
    assert all(text.endswith(("w39",)) for text in before[:-1])  # cut at a paragraph's end
    assert len(set(after) - set(before)) == 1  # only the chunk holding paragraph 5 changed
