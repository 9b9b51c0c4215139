"""The results store survives crashes, reads back, and merges stores from several machines."""

from __future__ import annotations

import json

import pytest

from posebench.results import ResultStore, merge, new_record, trial_id, write_json


def _record(runtime: str, threads: int) -> dict:
    return new_record("latency", {"model": "m", "runtime": runtime, "threads": threads}, status="ok")


def test_append_and_read_back(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    a, b = _record("openvino", 1), _record("openvino", 2)
    store.append(a)
    store.append(b)
    assert [r["id"] for r in store.read()] == [a["id"], b["id"]]


def test_trial_id_is_stable_and_distinguishes_trials():
    assert trial_id({"a": 1, "b": 2}) == trial_id({"b": 2, "a": 1})
    assert _record("torch", 1)["trial_id"] == _record("torch", 1)["trial_id"]
    assert _record("torch", 1)["trial_id"] != _record("torch", 2)["trial_id"]


def test_a_line_cut_by_a_crash_is_skipped_and_the_next_append_is_intact(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    good = _record("torch", 1)
    store.append(good)
    with open(store.path, "a") as fh:
        fh.write('{"id": "half-written", "kind": "lat')  # the process died here
    later = _record("torch", 2)
    store.append(later)
    with pytest.warns(UserWarning, match="incomplete record"):
        ids = [r["id"] for r in store.read()]
    assert ids == [good["id"], later["id"]]


def test_merge_deduplicates_across_stores_and_json_lists(tmp_path):
    one, two = ResultStore(tmp_path / "laptop.jsonl"), ResultStore(tmp_path / "server.jsonl")
    shared, only_two = _record("openvino", 2), _record("deepsparse", 2)
    one.append(shared)
    two.append(shared)
    two.append(only_two)
    write_json(tmp_path / "export.json", [only_two])
    merged = merge([one.path, two.path, tmp_path / "export.json"])
    assert sorted(r["id"] for r in merged) == sorted([shared["id"], only_two["id"]])
    assert json.loads((tmp_path / "export.json").read_text())[0]["id"] == only_two["id"]
