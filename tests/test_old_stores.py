"""Result stores committed under benchmarks/results/ (made by earlier versions) still load and report exactly as the
committed report.md says: the records' format is a contract, not an accident of today's code."""

from __future__ import annotations

from pathlib import Path

import pytest

from posebench.report.build import build_report

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
STORES = {  # store: the report's accuracy metric when it was made
    "thesis-study": "map50", "thesis-v8s-spread": "map50", "yolo26-study": "map50",
    "deepsparse-int8-study-avx2": "map50", "deepsparse-int8-study-avx512_vnni": "map50",
    "int8-accuracy-amx": "map50_95",
}


@pytest.mark.parametrize("store", sorted(STORES))
def test_a_committed_store_reports_as_committed(store: str, tmp_path: Path) -> None:
    md, page = build_report([RESULTS / store / "results.jsonl"], tmp_path, metric=STORES[store])
    assert md.read_text() == (RESULTS / store / "report.md").read_text()
    assert page.stat().st_size > 10_000  # the HTML page with its plots


def test_every_committed_store_is_covered() -> None:
    found = {p.parent.name for p in RESULTS.glob("*/results.jsonl")}
    assert found == set(STORES), f"stores without a report test: {sorted(found - set(STORES))}"
