"""The query encoder on ONNX Runtime (apps/corpus/query_encoder.py): the same vectors as torch's
(cosine ≥ 0.999, the bar that keeps stored chunk vectors valid), what the platform serves with by
default, never a silent fall-back to torch when its file is missing, and an export that refuses a
file whose vectors are not torch's."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.corpus import query_encoder
from apps.corpus.embedding import Embedder, get_embedder
from apps.corpus.query_encoder import ExportRefused, check_query_encoder, exported_path

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT.parent / "shared" / "datasets" / "cranfield" / "queries.jsonl"
CORPUS = ROOT.parent / "shared" / "datasets" / "cranfield" / "corpus.jsonl"


def torch_and_onnx(**options) -> tuple[Embedder, Embedder]:
    """Two embedders of the served model: one encoding with torch, one whose encode_queries must
    go through ONNX Runtime (its torch path fails the test, so a fall-back cannot pass for parity)."""
    served = get_embedder()
    torch_side = Embedder(served.model_path, query_runtime="torch", **options)
    onnx_side = Embedder(served.model_path, query_runtime="onnx", **options)
    assert onnx_side.query_encoder is not None

    def no_torch(*args, **kwargs):
        pytest.fail("encode_queries fell back to torch on the onnx runtime")

    onnx_side.encode = no_torch  # type: ignore[method-assign]
    return torch_side, onnx_side


def odd_texts(count: int, seed: int) -> list[str]:
    """Texts no fixed list holds: words, digits, punctuation, whitespace of every kind and other
    scripts, from empty to far past the 256-token truncation."""
    rng = random.Random(seed)
    alphabet = (
        list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?-'\"()[]{}<>/\\@#%&*+=")
        + list(" \t\n\r\u00a0\u2003\u200b")
        + list("äöüßéèêçñøåæœ")
        + list("日本語中文한국어")
        + list("абвгдежзийклмн")
        + list("αβγδεζηθ")
        + ["🙂", "👍🏽", "∑", "√"]
    )
    texts = []
    for _ in range(count):
        length = rng.choice([0, 1, 3, 12, 40, 120, 400, 2500])
        texts.append("".join(rng.choice(alphabet) for _ in range(length)))
    return texts


def lowest_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    return float((a * b).sum(axis=1).min())


def test_onnx_gives_torchs_vectors_for_real_questions_and_passages():
    torch_side, onnx_side = torch_and_onnx()
    questions = [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()]
    passages = []
    for line in CORPUS.read_text().splitlines()[:64]:
        document = json.loads(line)
        passages.append(torch_side.passage_input(document.get("title", ""), document["text"]))
    for texts in (questions, passages):
        reference = torch_side.encode(texts)
        assert lowest_cosine(reference, onnx_side.encode_queries(texts)) >= 0.999  # batched, padded
        one_by_one = np.vstack([onnx_side.encode_queries([text]) for text in texts[:40]])
        assert lowest_cosine(reference[:40], one_by_one) >= 0.999
    norms = np.linalg.norm(onnx_side.encode_queries(questions), axis=1)
    assert np.allclose(norms, 1, atol=1e-5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_onnx_gives_torchs_vectors_for_odd_text(seed):
    torch_side, onnx_side = torch_and_onnx()
    texts = odd_texts(48, seed)
    assert lowest_cosine(torch_side.encode(texts), onnx_side.encode_queries(texts)) >= 0.999


def test_a_shorter_configured_length_truncates_both_runtimes_alike(installed_export, tmp_path, settings):
    """EMBEDDING_MAX_SEQ_LENGTH is the embedder's, not the tokenizer file's (which says 128): a
    length of 32 cuts both at 32, and its export is a file of its own."""
    settings.EMBEDDING = {**settings.EMBEDDING, "ONNX_DIR": str(tmp_path)}
    served = get_embedder()
    torch_side = Embedder(served.model_path, query_runtime="torch", max_seq_length=32)
    onnx_side = Embedder(served.model_path, query_runtime="onnx", max_seq_length=32)
    assert exported_path(onnx_side) != exported_path(get_embedder())
    restamp(
        installed_export, exported_path(onnx_side), query_encoder.fingerprint(onnx_side)
    )  # the graph takes any length
    long_texts = [" ".join(["shock wave boundary layer interaction"] * 40), "a short one"]
    assert lowest_cosine(torch_side.encode(long_texts), onnx_side.encode_queries(long_texts)) >= 0.999
    full_length = Embedder(get_embedder().model_path).encode(long_texts[:1])
    assert float((full_length * onnx_side.encode_queries(long_texts[:1])).sum()) < 0.999  # really cut


def restamp(source: Path, target: Path, fingerprint: str) -> None:
    """A copy of an exported file carrying another fingerprint (what export() writes into it)."""
    import onnx

    model = onnx.load(str(source))
    onnx.helper.set_model_props(model, {query_encoder.FINGERPRINT_KEY: fingerprint})
    onnx.save(model, str(target))


@pytest.fixture
def installed_export() -> Path:
    """The file bin/venv exported at install time (read before a test points ONNX_DIR elsewhere)."""
    path = exported_path(get_embedder())
    assert path.exists(), f"bin/venv exports the query encoder at install time: {path} is missing"
    return path


def test_the_platform_serves_queries_with_onnx_by_default_and_never_loads_torch_for_them():
    """The default settings choose ONNX Runtime; a serving process that only encodes queries never
    imports torch (240 MiB of memory instead of 964, docs/benchmarks/throughput-profile.md)."""
    assert get_embedder().query_runtime == "onnx"
    script = (
        "import sys, django; django.setup()\n"
        "import knowledge_platform.urls\n"
        "from apps.corpus.embedding import get_embedder\n"
        "vector = get_embedder().encode_queries(['How long is parental leave?'])[0]\n"
        "print(len(vector), 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    env = {
        "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}",
        "DJANGO_SETTINGS_MODULE": "knowledge_platform.settings.development",
    }
    import os

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["384", "False", "False"]


def test_a_missing_export_is_an_error_not_a_silent_fall_back_to_torch(tmp_path, settings):
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_RUNTIME": "onnx", "ONNX_DIR": str(tmp_path / "empty")}
    embedder = Embedder(get_embedder().model_path, query_runtime="onnx")
    with pytest.raises(ImproperlyConfigured, match=r"export_query_encoder.*or set EMBEDDING_QUERY_RUNTIME=torch"):
        embedder.encode_queries(["a query"])
    errors = check_query_encoder()
    assert [e.id for e in errors] == ["corpus.E002"] and str(tmp_path / "empty") in errors[0].msg
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_RUNTIME": "torch"}
    assert check_query_encoder() == []  # torch needs no export
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_RUNTIME": "tensorflow"}
    assert [e.id for e in check_query_encoder()] == ["corpus.E001"]
    with pytest.raises(
        ImproperlyConfigured, match="EMBEDDING_QUERY_RUNTIME is 'tensorflow'; it takes one of onnx, torch"
    ):
        Embedder(get_embedder().model_path, query_runtime="tensorflow")


def test_the_export_writes_a_checked_file_and_keeps_it(tmp_path, settings, capsys):
    """The real export (torch.onnx, about 15 s): its file gives torch's vectors; run again, the
    command keeps the file; --json reports what it checked."""
    settings.EMBEDDING = {**settings.EMBEDDING, "ONNX_DIR": str(tmp_path)}
    call_command("export_query_encoder", "--json")
    report = json.loads(capsys.readouterr().out)
    path = Path(report["path"])
    assert report["exported"] and path.parent == tmp_path and path.stat().st_size > 50 * 2**20
    assert report["min_cosine"] >= 0.999 and report["texts_checked"] == len(query_encoder.CHECK_TEXTS)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left behind
    assert path.stat().st_mode & 0o044 == 0o044  # readable by the image's user, who did not export it
    torch_side, onnx_side = torch_and_onnx()
    texts = odd_texts(16, seed=7)
    assert lowest_cosine(torch_side.encode(texts), onnx_side.encode_queries(texts)) >= 0.999
    modified = path.stat().st_mtime_ns
    call_command("export_query_encoder")
    assert "already exported" in capsys.readouterr().out and path.stat().st_mtime_ns == modified


def test_an_export_whose_vectors_are_not_torchs_is_refused_and_leaves_the_old_file(
    installed_export, tmp_path, settings, monkeypatch
):
    """A model the ONNX path does not mirror (here: an export of the wrong network, simulated by
    a graph whose output is torch's plus noise) is refused; the file that served stays."""
    settings.EMBEDDING = {**settings.EMBEDDING, "ONNX_DIR": str(tmp_path)}
    served = exported_path(get_embedder())
    shutil.copy(installed_export, served)
    before, kept = served.read_bytes()[:4096], (served.stat().st_ino, served.stat().st_mtime_ns)

    real_forward = query_encoder.OnnxQueryEncoder._forward

    def skewed(self, texts):
        vectors = real_forward(self, texts) + np.random.default_rng(0).normal(0, 0.004, (len(texts), 384))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(
        query_encoder, "_export_transformer", lambda model_path, out, metadata: shutil.copy(served, out)
    )
    monkeypatch.setattr(query_encoder.OnnxQueryEncoder, "_forward", skewed)
    with pytest.raises(
        CommandError, match=r"cosine 0\.99\d+ of torch's \(at least 0\.999 is needed\).*EMBEDDING_QUERY_RUNTIME=torch"
    ):
        call_command("export_query_encoder", "--force")
    with pytest.raises(ExportRefused):
        query_encoder.export(get_embedder(), force=True)
    assert served.read_bytes()[:4096] == before and (served.stat().st_ino, served.stat().st_mtime_ns) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [served.name]  # no partial file left behind


@pytest.fixture
def edited_model(tmp_path) -> Path:
    """A copy of the model folder with one weight changed past the first MiB: same file name and
    size, so the same model identity and export file name; another network all the same."""
    folder = tmp_path / "model"
    shutil.copytree(get_embedder().model_path, folder)
    weights = folder / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size - 4096)
        block = handle.read(4096)
        handle.seek(-4096, 1)
        handle.write(bytes(255 - b for b in block))
    return folder


def test_an_export_of_another_model_folder_is_refused_at_load_and_by_the_check(
    installed_export, edited_model, tmp_path, settings, monkeypatch
):
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_RUNTIME": "onnx", "ONNX_DIR": str(tmp_path / "exports")}
    edited = Embedder(str(edited_model), query_runtime="onnx")
    # The file name (like the model identity) reads the first MiB only: it cannot tell these two apart.
    assert exported_path(edited).name == exported_path(get_embedder()).name
    (tmp_path / "exports").mkdir()
    shutil.copy(installed_export, exported_path(edited))  # the served model's file, under the edited one's name
    with pytest.raises(query_encoder.StaleExport, match=r"not made from this model folder.*export_query_encoder"):
        edited.encode_queries(["a query"])
    monkeypatch.setattr("apps.corpus.embedding.get_embedder", lambda: Embedder(str(edited_model), query_runtime="onnx"))
    errors = check_query_encoder()
    assert [e.id for e in errors] == ["corpus.E003"] and "not made from this model folder" in errors[0].msg
    assert query_encoder.stored_fingerprint(exported_path(edited)) != query_encoder.fingerprint(edited)


def test_a_truncated_export_fails_the_check_not_the_first_search(installed_export, tmp_path, settings, monkeypatch):
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_RUNTIME": "onnx", "ONNX_DIR": str(tmp_path)}
    fresh = Embedder(get_embedder().model_path, query_runtime="onnx")
    exported_path(fresh).write_bytes(installed_export.read_bytes()[: 2**20])  # a copy cut short
    monkeypatch.setattr("apps.corpus.embedding.get_embedder", lambda: fresh)
    errors = check_query_encoder()
    assert [e.id for e in errors] == ["corpus.E003"] and "cannot be loaded" in errors[0].msg
    assert query_encoder.stored_fingerprint(exported_path(fresh)) is None  # so export() makes it again


def test_the_installed_export_carries_this_installs_fingerprint(installed_export):
    assert query_encoder.stored_fingerprint(installed_export) == query_encoder.fingerprint(get_embedder())
    assert check_query_encoder() == []
