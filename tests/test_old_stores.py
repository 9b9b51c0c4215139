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


def test_committed_results_never_name_a_machines_absolute_paths() -> None:
    machine_paths = ("/tmp/", "/work/", "/home/", "/root/", "/Users/")
    for text_file in [*RESULTS.rglob("*.md"), *(RESULTS.parents[1] / "models").rglob("*.md")]:
        text = text_file.read_text()
        assert not any(p in text for p in machine_paths), text_file


def test_a_failure_reason_is_shown_without_absolute_paths() -> None:
    from posebench.report.model import shown_reason

    reason = "/tmp/y26/variants/default/int8/0-int8-ptq is a int8 bundle; see https://docs.x.org/a/b; 3/4 of /srv/d/e.yaml"
    assert shown_reason(reason) == ("OUT/variants/default/int8/0-int8-ptq is a int8 bundle; see https://docs.x.org/a/b; "
                                    "3/4 of .../d/e.yaml")


@pytest.mark.parametrize("store", sorted(STORES))
def test_every_old_record_reads_into_a_typed_record_and_back_without_losing_a_field(store: str) -> None:
    import json

    from posebench.record import Record

    for line in (RESULTS / store / "results.jsonl").read_text().splitlines():
        old = json.loads(line)
        record = Record.from_json(old)
        again = record.to_json()
        assert Record.from_json(again) == record
        kept = {k: v for k, v in old.items() if k not in ("schema", "study_key", "trial_id") and v is not None}
        assert {k: again.get(k) for k in kept} == kept, [k for k in kept if again.get(k) != kept[k]]
        assert again["trial_id" if "trial" in old else "id"] == (old.get("study_key") or old.get("trial_id") or old["id"])
