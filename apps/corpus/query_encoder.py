"""The query side of the embedding model on ONNX Runtime: the same weights as the torch model,
exported once at install time (`manage.py export_query_encoder`, run by bin/venv and the image).

Why: a request encodes one short query. sentence-transformers on torch spends about twice the
time ONNX Runtime does on it (docs/benchmarks/throughput-profile.md), much of it Python overhead
around a 20-token forward pass, and a process that only serves queries never imports torch (a
quarter of the memory). Ingestion's batches of 32 long chunks are faster on torch, so they stay
there.

Why the vectors stay valid: the export is checked before it is kept. A fixed set of texts (short,
long past the truncation, empty, odd whitespace and scripts, batched with padding) is encoded by
both engines, and a file whose vectors fall below cosine 0.999 of torch's is refused. Stored chunk
vectors therefore need no re-embedding, and the model identity does not change with the runtime.
The file carries a fingerprint of what it was checked against (every byte of the model folder, the
input length, the torch-side library versions); a process refuses a file whose fingerprint is not
its own, so an edited model, a changed length or an upgrade never meets a stale export.

The path mirrors sentence-transformers for a BERT-style model with mean pooling and L2
normalisation: the model folder's fast tokenizer, truncated at the model's max_seq_length (the
folder's tokenizer.json says 128, sentence-transformers uses 256: the length comes from the
embedder), padded to the longest text of the batch, token_type_ids all zero, mean over the
attention mask."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .vectors import EMBEDDING_DIMS

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

    from .embedding import Embedder

OPSET = 18  # the dynamo exporter's lowest: a lower one is converted down after the export
MIN_COSINE = 0.999  # the bar; the export measured here gives 0.9999998
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_COMMAND = "manage.py export_query_encoder"
FINGERPRINT_KEY = "knowledge_platform.fingerprint"  # in the file's ONNX metadata_props
# The torch side the export is checked against: an upgrade of one of them is checked again.
CHECKED_AGAINST = ("torch", "transformers", "sentence-transformers", "tokenizers", "onnxruntime")

# What the export is checked on: every kind of input the query path meets, in one padded batch and
# one by one. The long text runs past 256 tokens, so truncation is compared too.
CHECK_TEXTS = [
    "How long is parental leave?",
    "what is the heat transfer to a blunt body in hypersonic flow",
    "",
    "   leading and trailing spaces   ",
    "Tabs\tand\nnew lines\r\nand a non-breaking\u00a0space",
    "Überstunden werden mit 25 % Zuschlag vergütet.",
    "出張旅費の精算は月末までに提出してください。",
    "UPPER CASE, numbers 3.14159 and symbols <>&'\"",
    "emoji 🙂 and accents café naïve",
    " ".join(["boundary-layer transition on a flat plate at supersonic speeds"] * 60),
]


def onnx_dir() -> Path:
    configured = settings.EMBEDDING.get("ONNX_DIR") or ""
    return Path(configured) if configured else Path(sys.prefix) / "share" / "knowledge-platform" / "models"


def exported_path(embedder: Embedder) -> Path:
    """One file per model weights and input length: a changed model or length never reuses an old
    export (the file name carries the same weights digest as the model identity)."""
    name = Path(embedder.model_path).name
    return onnx_dir() / f"{name}-{embedder.weights_digest}-{embedder.effective_max_seq_length}-opset{OPSET}.onnx"


def fingerprint(embedder: Embedder) -> str:
    """What an export was checked against: every file of the model folder (not only the first MiB
    the model identity reads: a fine-tune may leave the embeddings alone), the input length, the
    opset and the library versions on both sides."""
    parts = [
        _folder_digest(embedder.model_path),
        f"length={embedder.effective_max_seq_length}",
        f"opset={OPSET}",
        *(f"{name}={version(name)}" for name in CHECKED_AGAINST),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@functools.cache
def _folder_digest(model_path: str) -> str:  # ~0.2 s for the 90 MB folder, once per process
    digest = hashlib.sha256()
    root = Path(model_path)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class StaleExport(ImproperlyConfigured):
    """The file was exported from another model folder, length or library versions."""


class OnnxQueryEncoder:
    """Encodes texts with an exported model file; L2-normalised float32 rows, like Embedder.encode."""

    def __init__(
        self,
        path: Path,
        *,
        model_path: str,
        max_seq_length: int,
        threads: int,
        expected_fingerprint: str,
        batch_size: int = 32,
    ):
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_seq_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")  # to the longest
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        if self.session.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY) != expected_fingerprint:
            raise StaleExport(
                f"The exported query encoder {path} was not made from this model folder, input length and "
                f"library versions. Run `{EXPORT_COMMAND}` again (bin/venv does), or set EMBEDDING_QUERY_RUNTIME=torch."
            )
        self.input_names = {item.name for item in self.session.get_inputs()}
        dimensions = self.session.get_outputs()[0].shape[-1]
        if dimensions != EMBEDDING_DIMS:
            raise ImproperlyConfigured(
                f"The exported query encoder {path} makes {dimensions}-dimensional vectors; the platform stores "
                f"{EMBEDDING_DIMS}. Export it again ({EXPORT_COMMAND} --force)."
            )

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIMS), dtype=np.float32)
        # Longest first, as sentence-transformers batches: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), EMBEDDING_DIMS), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._forward([texts[i] for i in rows])
        return vectors

    def _forward(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})
        weights = mask.astype(np.float32)[:, :, None]
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return vectors


def load(embedder: Embedder, *, threads: int) -> OnnxQueryEncoder:
    path = exported_path(embedder)
    if not path.exists():
        raise ImproperlyConfigured(missing_message(path))
    return OnnxQueryEncoder(
        path,
        model_path=embedder.model_path,
        max_seq_length=embedder.effective_max_seq_length,
        threads=threads,
        expected_fingerprint=fingerprint(embedder),
        batch_size=embedder.batch_size,
    )


def missing_message(path: Path) -> str:
    return (
        f"EMBEDDING_QUERY_RUNTIME is onnx, but the exported query encoder {path} does not exist. Run "
        f"`{EXPORT_COMMAND}` (bin/venv and the image do it at install time; EMBEDDING_ONNX_DIR says where), "
        "or set EMBEDDING_QUERY_RUNTIME=torch."
    )


@dataclass(frozen=True)
class ExportReport:
    path: Path
    seconds: float
    size_bytes: int
    min_cosine: float | None  # None: not checked again (exported=False)
    texts_checked: int
    exported: bool  # False: a checked file was already there, kept as it is


class ExportRefused(Exception):
    """The exported file's vectors are not torch's (a model this path does not mirror)."""


def export(embedder: Embedder, *, force: bool = False) -> ExportReport:
    """Export the embedder's transformer to ONNX, check its vectors against torch's, keep it.
    Written to a temporary file, flushed to disk and renamed into place, so a reader never sees
    half a file and a refused export leaves the old one serving. A file with this model's
    fingerprint is kept as it is (it was checked before it was renamed into place)."""
    path = exported_path(embedder)
    expected = fingerprint(embedder)
    started = time.perf_counter()
    if path.exists() and not force and stored_fingerprint(path) == expected:
        return ExportReport(path, time.perf_counter() - started, path.stat().st_size, None, 0, False)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    os.chmod(partial, 0o644)  # mkstemp's 0600 would hide it from the image's unprivileged user
    try:
        _export_transformer(embedder.model_path, partial, {FINGERPRINT_KEY: expected})
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        min_cosine = check(partial, embedder)
        os.replace(partial, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
    finally:
        partial.unlink(missing_ok=True)
    return ExportReport(path, time.perf_counter() - started, path.stat().st_size, min_cosine, len(CHECK_TEXTS), True)


def stored_fingerprint(path: Path) -> str | None:
    """The fingerprint an exported file carries; None for a file that cannot be read as ONNX."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return None
    return next((prop.value for prop in model.metadata_props if prop.key == FINGERPRINT_KEY), None)


def check(path: Path, embedder: Embedder) -> float:
    """The lowest cosine between this file's vectors and torch's over CHECK_TEXTS, in one padded
    batch and one text at a time; refuses the file below MIN_COSINE."""
    encoder = OnnxQueryEncoder(
        path,
        model_path=embedder.model_path,
        max_seq_length=embedder.effective_max_seq_length,
        threads=1,
        expected_fingerprint=fingerprint(embedder),
    )
    reference = embedder.encode(CHECK_TEXTS)
    batched = encoder.encode(CHECK_TEXTS)
    single = np.vstack([encoder.encode([text]) for text in CHECK_TEXTS])
    lowest = float(min((reference * batched).sum(axis=1).min(), (reference * single).sum(axis=1).min()))
    if lowest < MIN_COSINE:
        raise ExportRefused(
            f"The ONNX export of {embedder.model_path} gives vectors at cosine {lowest:.6f} of torch's (at least "
            f"{MIN_COSINE} is needed): this model is not a mean-pooled BERT-style one the ONNX path mirrors. "
            "Set EMBEDDING_QUERY_RUNTIME=torch."
        )
    return lowest


def _export_transformer(model_path: str, out: Path, metadata: dict[str, str]) -> None:
    import torch
    from transformers import AutoModel

    # Eager attention: the plain matmul/softmax graph ONNX Runtime's BERT fusions recognise
    # (transformers 5 defaults to SDPA).
    bert = AutoModel.from_pretrained(model_path, local_files_only=True, attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Batch 2 × 8 tokens, one padded: an example dimension of 1 would be specialised into the graph.
    ids = torch.tensor([[101, 2129, 2146, 2003, 6687, 2389, 1029, 102], [101, 2129, 2146, 102, 0, 0, 0, 0]])
    example = (ids, (ids != 0).long(), torch.zeros_like(ids))
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=512)
    # The exporter reports its progress with print(): to stderr, so `--json` keeps stdout to itself;
    # its optimiser's INFO lines (a hundred "replaced initializer") are not the operator's business.
    with torch.no_grad(), contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), _quiet(*EXPORTER_LOGGERS):
        warnings.simplefilter("ignore")  # tracing warnings about transformers' internals, not our graph
        program = torch.onnx.export(
            LastHiddenState().eval(),
            example,
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUTS},
            opset_version=OPSET,
            dynamo=True,
        )
    assert program is not None  # the dynamo exporter returns the program
    program.model.metadata_props.update(metadata)
    program.save(str(out), external_data=False)  # one file: the weights inside (86 MiB)


EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")


@contextlib.contextmanager
def _quiet(*names: str):  # type: ignore[no-untyped-def]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def configured_max_seq_length(model_path: str) -> int | None:
    """sentence-transformers' own length for the folder (sentence_bert_config.json), if it says."""
    try:
        length = json.loads((Path(model_path) / "sentence_bert_config.json").read_text()).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(length) if length else None


def check_query_encoder(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """System check (manage.py check, migrate, runserver): the configured query runtime can start,
    so a missing, stale or broken export is found at deploy time, not by the first search. It
    loads the file as a search would (under a second), and the process keeps it for that search."""
    from django.core import checks

    from .embedding import QUERY_RUNTIMES, get_embedder

    runtime = settings.EMBEDDING.get("QUERY_RUNTIME", "torch")
    if runtime not in QUERY_RUNTIMES:
        return [
            checks.Error(
                f"EMBEDDING_QUERY_RUNTIME is {runtime!r}.",
                hint=f"One of {', '.join(QUERY_RUNTIMES)}.",
                id="corpus.E001",
            )
        ]
    if runtime != "onnx":
        return []
    embedder = get_embedder()
    path = exported_path(embedder)
    if not path.exists():
        return [checks.Error(missing_message(path), id="corpus.E002")]
    try:
        embedder.query_encoder  # noqa: B018 (loads it as the first search would; kept for that search)
    except StaleExport as error:
        return [checks.Error(str(error), id="corpus.E003")]
    except Exception as error:
        return [
            checks.Error(
                f"The exported query encoder {path} cannot be loaded: {error}",
                hint=f"Run `{EXPORT_COMMAND} --force`, or set EMBEDDING_QUERY_RUNTIME=torch.",
                id="corpus.E003",
            )
        ]
    return []
