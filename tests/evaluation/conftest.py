"""A tiny test collection in BEIR layout: six documents, three judged queries."""

import json

import pytest

CORPUS = [
    ("d1", "Wing flutter", "Flutter of swept wings at transonic speed is predicted by a panel method."),
    ("d2", "Boundary layers", "Laminar boundary layer separation on a flat plate in supersonic flow."),
    ("d3", "Heat transfer", "Heat transfer to a blunt body at hypersonic speed in the stagnation region."),
    ("d4", "Buckling of shells", "Buckling of thin cylindrical shells under axial compression and pressure."),
    ("d5", "Jet noise", "Noise radiated by a subsonic jet and its reduction by nozzle shape."),
    ("d6", "Flutter tests", "Wind tunnel tests of flutter on a swept wing model at transonic Mach numbers."),
]
QUERIES = [
    ("1", "flutter of swept wings at transonic speeds"),
    ("2", "buckling of cylindrical shells under compression"),
    ("3", "heat transfer at hypersonic speed"),
    ("4", "a query nobody judged"),
]
QRELS = [("1", "d1", 2), ("1", "d6", 1), ("2", "d4", 2), ("3", "d3", 1)]


@pytest.fixture
def beir_folder(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in CORPUS)
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS)
    )
    return folder
