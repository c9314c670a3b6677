"""Reading a test collection in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BeirDocument:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class BeirSet:
    name: str
    corpus: list[BeirDocument]
    queries: dict[str, str]  # only the queries that have judgements
    qrels: dict[str, dict[str, int]]  # query id → document id → graded relevance


class BeirFormatError(ValueError):
    pass


def load(folder: str | Path, *, split: str = "test") -> BeirSet:
    folder = Path(folder)
    paths = {
        "corpus": folder / "corpus.jsonl",
        "queries": folder / "queries.jsonl",
        "qrels": folder / "qrels" / f"{split}.tsv",
    }
    for what, path in paths.items():
        if not path.is_file():
            raise BeirFormatError(f"{folder} is not a BEIR folder: {what} file {path.name} is missing.")
    corpus = []
    with paths["corpus"].open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                corpus.append(BeirDocument(str(row["_id"]), row.get("title", "") or "", row.get("text", "") or ""))
            except (json.JSONDecodeError, KeyError) as exc:
                raise BeirFormatError(f"corpus.jsonl line {number}: {exc}") from exc
    qrels: dict[str, dict[str, int]] = {}
    with paths["qrels"].open(encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader, None)  # header
        for row in reader:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries = {}
    with paths["queries"].open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = row["text"]
    return BeirSet(name=folder.name, corpus=corpus, queries=queries, qrels=qrels)
