"""The layers of docs/architecture.md hold, and the check that holds them would catch a breach:
an import that points up fails `lint-imports` (bin/lint runs it in CI)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_layers_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_that_points_up_breaks_the_build(tmp_path):
    """A copy of the code where the documents app imports the search app (the push that events
    replaced) and the corpus imports ingestion (a sibling's writer): both are named."""
    shutil.copytree(ROOT / "apps", tmp_path / "apps", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    services = tmp_path / "apps" / "documents" / "services.py"
    services.write_text(services.read_text() + "\nfrom apps.search import sync as search_sync  # noqa\n")
    corpus = tmp_path / "apps" / "corpus" / "services.py"
    corpus.write_text(corpus.read_text() + "\nfrom apps.ingestion import chunking  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "apps.documents.services -> apps.search.sync" in result.stdout
    assert "apps.corpus.services -> apps.ingestion.chunking" in result.stdout
