"""Answer generators, pluggable: each turns a question and numbered context passages into an
`Answer` whose every statement cites a passage it came from, or refuses.

* `ExtractiveGenerator` (the default, offline): the passages' sentences most similar to the
  question (all-MiniLM-L6-v2 cosine), each quoted with its citation; no sentence above the
  threshold → "no grounded answer". The sentences' vectors are the ones ingestion stored
  (`corpus.Sentence`), read for the request; only a sentence it did not embed is encoded here.
* `ChatGenerator`: any OpenAI-compatible chat endpoint (the `openai` client with a base URL). The
  prompt demands [n] citations to the numbered passages; a reply that cites a passage that was not
  in its context, or none at all, is refused rather than shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.exceptions import ServiceUnavailable
from apps.corpus import sentences as corpus_sentences
from apps.corpus.embedding import get_embedder
from apps.corpus.types import SectionSentences

from .types import Answer, Citation, Passage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

NO_ANSWER = "No grounded answer: nothing you may read in this tenant's documents answers this question closely enough."


def _refusal(generator: str, model: str, reason: str) -> Answer:
    return Answer(text=NO_ANSWER, citations=[], grounded=False, generator=generator, model=model, refusal_reason=reason)


def sentences(passage: Passage) -> list[tuple[str, int, int]]:
    """(sentence, start, end) with offsets into the version's extracted text (`corpus.sentences`)."""
    return corpus_sentences.spans(passage.text, passage.start_offset)


SentenceCandidate = tuple[Passage, str, int, int]  # a passage, one of its sentences, its start and end offsets


def candidates_with_vectors(
    passages: list[Passage], stored: Mapping[int, SectionSentences]
) -> tuple[list[SentenceCandidate], list[np.ndarray | None]]:
    """Every sentence of the passages, with the vector ingestion stored for it (None: not stored).
    A whole section that ingestion embedded gives its stored sentences as they are (no segmenting
    here); a lone chunk, or a section it did not embed, is segmented, and each sentence takes the
    stored vector of the same span of its section if there is one (a sentence a chunk's edge cuts
    through has none)."""
    candidates: list[SentenceCandidate] = []
    vectors: list[np.ndarray | None] = []
    for passage in passages:
        whole = stored.get(passage.section_id) if passage.section_id is not None else None
        if whole is not None:
            for (start, end), vector in zip(whole.spans, whole.vectors, strict=True):
                text = passage.text[start - passage.start_offset : end - passage.start_offset].replace("\n", " ")
                candidates.append((passage, text, start, end))
                vectors.append(vector)
            continue
        home = stored.get(passage.home_section_id) if passage.home_section_id is not None else None
        row_of = {span: row for row, span in enumerate(home.spans)} if home is not None else {}
        for text, start, end in sentences(passage):
            row = row_of.get((start, end))
            candidates.append((passage, text, start, end))
            vectors.append(home.vectors[row] if home is not None and row is not None else None)
    return candidates, vectors


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, *, min_similarity: float, max_sentences: int):
        self.min_similarity = min_similarity
        self.max_sentences = max_sentences

    @property
    def model(self) -> str:
        return get_embedder().identity

    def generate(
        self,
        question: str,
        passages: list[Passage],
        *,
        question_vector: np.ndarray | None = None,
        stored_sentences: Mapping[int, SectionSentences] | None = None,
    ) -> Answer:
        """`stored_sentences`: the sentence vectors ingestion stored for the passages' sections
        (`corpus.selectors.section_sentences`), by section id; whatever they lack is encoded now."""
        candidates, known = candidates_with_vectors(passages, stored_sentences or {})
        if not candidates:
            return _refusal(self.name, self.model, "the context holds no sentences")
        embedder = get_embedder()
        if question_vector is None:
            question_vector = embedder.encode_queries([question])[0]
        missing = [i for i, vector in enumerate(known) if vector is None]
        vectors = np.zeros((len(candidates), len(question_vector)), dtype=np.float32)
        if missing:
            vectors[missing] = embedder.encode_queries([candidates[i][1] for i in missing])
        for i, vector in enumerate(known):
            if vector is not None:
                vectors[i] = vector
        similarity = vectors @ question_vector
        chosen: list[tuple[SentenceCandidate, float]] = []
        seen: set[str] = set()
        for index in np.argsort(-similarity, kind="stable"):
            if similarity[index] < self.min_similarity or len(chosen) == self.max_sentences:
                break
            key = candidates[index][1].lower()
            if key not in seen:
                seen.add(key)
                chosen.append((candidates[index], float(similarity[index])))
        if not chosen:
            best = float(similarity.max())
            return _refusal(
                self.name,
                self.model,
                f"best sentence similarity {best:.2f} is below the threshold {self.min_similarity:.2f}",
            )
        parts, citations = [], []
        for marker, ((passage, text, start, end), _) in enumerate(chosen, start=1):
            ranked = passage.chunk_at(start)
            exact = passage.text[start - passage.start_offset : end - passage.start_offset]
            citations.append(
                Citation(
                    marker=marker,
                    chunk_id=ranked.hit.chunk_id,
                    document_id=passage.document_id,
                    version_id=passage.version_id,
                    start_offset=start,
                    end_offset=end,
                    quote=exact,
                )
            )
            parts.append(f"{' '.join(text.split())} [{marker}]")
        return Answer(text=" ".join(parts), citations=citations, grounded=True, generator=self.name, model=self.model)


SYSTEM_PROMPT = (
    "You answer questions for employees using only the numbered context passages you are given. "
    "After every sentence, cite the passage or passages it comes from as [n], using only the numbers "
    "shown in the context. Never use outside knowledge. If the passages do not answer the question, "
    "reply with exactly NO_ANSWER."
)
HYDE_PROMPT = (
    "Write one short paragraph that could appear in a company document answering the question. Do not add any preamble."
)


class ChatGenerator:
    """An OpenAI-compatible chat endpoint (OpenAI itself, vLLM, llama.cpp server, Ollama, …)."""

    name = "openai-chat"

    def __init__(self, *, base_url: str, model: str, api_key: str, timeout: float):
        from openai import OpenAI

        self.model = model
        self.base_url = base_url
        # The key comes from the environment (LLM_API_KEY); local servers often need none.
        self.client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=1)

    def _complete(self, messages: list[ChatCompletionMessageParam]) -> str:
        import openai

        try:
            reply = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0)
        except openai.APIError as exc:
            raise ServiceUnavailable(
                f"The answer model at {self.base_url} failed: {exc}. Try again, or ask with generate off.",
                code="generator_unavailable",
            ) from exc
        return (reply.choices[0].message.content or "").strip()

    def hypothetical_passage(self, question: str) -> str:
        return self._complete([{"role": "system", "content": HYDE_PROMPT}, {"role": "user", "content": question}])

    def generate(
        self, question: str, passages: list[Passage], *, question_vector=None, stored_sentences=None
    ) -> Answer:
        """The chat model reads the passages' text; `question_vector` and `stored_sentences` are
        the extractive generator's, not needed here."""
        if not passages:
            return _refusal(self.name, self.model, "nothing was retrieved")
        context = "\n\n".join(f"[{p.number}] {p.title}\n{p.text}" for p in passages)
        text = self._complete(
            [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
            ]
        )
        if not text or text.startswith("NO_ANSWER"):
            return _refusal(self.name, self.model, "the model found no answer in the context")
        by_number = {p.number: p for p in passages}
        cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)})
        unknown = [n for n in cited if n not in by_number]
        if unknown:
            return _refusal(
                self.name,
                self.model,
                f"the model cited passages that were not in its context: {unknown}; reply: {text[:500]}",
            )
        if not cited:
            return _refusal(self.name, self.model, f"the model's reply cites no passage; reply: {text[:500]}")
        citations = []
        for number in cited:
            passage = by_number[number]
            ranked = passage.chunks[0]
            citations.append(
                Citation(
                    marker=number,
                    chunk_id=ranked.hit.chunk_id,
                    document_id=passage.document_id,
                    version_id=passage.version_id,
                    start_offset=passage.start_offset,
                    end_offset=passage.end_offset,
                    quote=passage.text[:300],
                )
            )
        return Answer(text=text, citations=citations, grounded=True, generator=self.name, model=self.model)


def get_generator():
    config = settings.ANSWERS
    if config["GENERATOR"] == "extractive":
        return ExtractiveGenerator(min_similarity=config["MIN_SIMILARITY"], max_sentences=config["MAX_SENTENCES"])
    if config["GENERATOR"] == "openai":
        if not (config["LLM_BASE_URL"] and config["LLM_MODEL"]):
            raise ImproperlyConfigured("ANSWER_GENERATOR=openai needs LLM_BASE_URL and LLM_MODEL.")
        return ChatGenerator(
            base_url=config["LLM_BASE_URL"],
            model=config["LLM_MODEL"],
            api_key=config["LLM_API_KEY"],
            timeout=config["LLM_TIMEOUT"],
        )
    raise ImproperlyConfigured(f"ANSWER_GENERATOR={config['GENERATOR']!r}: use 'extractive' or 'openai'.")
