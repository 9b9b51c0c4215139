"""The results store survives crashes, reads back, and merges stores from several machines."""

from __future__ import annotations

import hashlib
import json

import pytest

from posebench.errors import InvalidInputError
from posebench.record import SCHEMA_VERSION, Failure, Identity, Record
from posebench.results import ResultStore, latest_per_trial, merge, write_json
from posebench.trial import Evaluation, Trial


def _trial(runtime: str, threads: int, round_no: int = 1) -> Trial:
    return Trial("latency", "m", "base", runtime, threads, (64, 64), round=round_no)


def _record(runtime: str, threads: int, round_no: int = 1) -> Record:
    trial = _trial(runtime, threads, round_no)
    return Record("latency", trial.id, Identity("m", "s", "base", runtime, threads, (64, 64), "onnx"),
                  round=round_no, latency={"p50_ms": 1.0})


def test_append_and_read_back(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    a, b = _record("openvino", 1), _record("openvino", 2)
    store.append(a)
    store.append(b)
    assert store.read() == [a, b]  # typed records survive the round trip whole


def test_a_trial_has_one_stable_id_that_tells_trials_apart():
    assert _trial("torch", 1).id == _trial("torch", 1).id == "m|base|latency|torch|1"
    assert len({_trial("torch", 1).id, _trial("torch", 2).id, _trial("openvino", 1).id, _trial("torch", 1, 2).id}) == 4
    accuracy = Trial("accuracy", "m", "int8", "openvino", 2, (64, 64), evaluation=Evaluation("coco"))
    assert accuracy.id == "m|int8|accuracy|coco|openvino"
    # the rounds of one configuration are different trials of the same configuration
    assert _record("torch", 1).identity.config_id == _record("torch", 1, 2).identity.config_id
    assert _record("torch", 1).identity.config_id != _record("torch", 2).identity.config_id
    with pytest.raises(InvalidInputError, match="needs an evaluation"):
        Trial("accuracy", "m", "base", "torch", 1, (64, 64))


def test_records_of_schema_1_load_with_their_study_key_as_the_trial_id():
    old = {"schema": 1, "id": "abc", "kind": "latency", "trial_id": "0123456789abcdef", "study_key": "m|base|latency|torch|1|r2",
           "trial": {"model": "m", "source_id": "s", "variant": "base", "runtime": "torch", "threads": 1,
                     "imgsz": [64, 64], "format": "checkpoint", "precision": "fp32"},
           "created": "2026-01-01T00:00:00+00:00", "status": "error", "error": "it broke", "error_type": "X",
           "environment": {}, "round": 2, "pid": 7}
    record = Record.from_json(old)
    assert record.trial_id == "m|base|latency|torch|1|r2" and record.round == 2
    assert record.failure == Failure("error", "it broke", "X") and not record.ok and record.status == "error"
    # what schema 1 called trial_id (the configuration's hash) is the identity's config_id: rounds still group
    assert record.identity.config_id == hashlib.sha256(json.dumps(old["trial"], sort_keys=True).encode()).hexdigest()[:16]
    assert record.extra == {"pid": 7}
    again = record.to_json()
    assert again["schema"] == SCHEMA_VERSION and "study_key" not in again and again["trial_id"] == record.trial_id
    assert Record.from_json(again) == record
    with pytest.raises(InvalidInputError, match="upgrade posebench"):
        Record.from_json({**old, "schema": SCHEMA_VERSION + 1})


def test_the_newest_record_of_a_trial_wins():
    first = Record("latency", "t", None, failure=Failure.error("its worker died"), created="2026-01-01T00:00:00")
    retried = Record("latency", "t", None, latency={"p50_ms": 1.0}, created="2026-01-02T00:00:00")
    assert first.status == "error" and Failure.skipped("no GPU").status == "skipped"
    assert latest_per_trial([retried, first]) == [retried]


def test_a_failure_has_one_shape_from_an_exception_to_a_record_and_back():
    """A runtime that is missing or cannot run here is a skip, any other posebench error an error with its own
    message, a bug an error prefixed with its class; across the process boundary the dict round-trips."""
    from posebench.errors import InvalidInputError, RuntimeNotInstalledError, RuntimeUnavailableError

    cases = {RuntimeNotInstalledError("pip install openvino"): ("skipped", "pip install openvino"),
             RuntimeUnavailableError("no GPU"): ("skipped", "no GPU"),
             InvalidInputError("bad imgsz"): ("error", "bad imgsz"),
             ZeroDivisionError("division by zero"): ("error", "ZeroDivisionError: division by zero")}
    for exc, (status, reason) in cases.items():
        failure = Failure.from_exception(exc)
        assert (failure.status, failure.reason, failure.type) == (status, reason, type(exc).__name__)
        assert Failure.from_result(failure.to_result()) == failure
        record = Record("latency", "t", None, failure=failure)
        assert Record.from_json(record.to_json()).failure == failure
    assert Failure.from_result({"status": "ok", "latency": {}}) is None


def test_a_line_cut_by_a_crash_is_skipped_and_the_next_append_is_intact(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    good = _record("torch", 1)
    store.append(good)
    with open(store.path, "a") as fh:
        fh.write('{"id": "half-written", "kind": "lat')  # the process died here
    later = _record("torch", 2)
    store.append(later)
    with pytest.warns(UserWarning, match="incomplete record"):
        ids = [r.id for r in store.read()]
    assert ids == [good.id, later.id]


def test_merge_deduplicates_across_stores_and_json_lists(tmp_path):
    one, two = ResultStore(tmp_path / "laptop.jsonl"), ResultStore(tmp_path / "server.jsonl")
    shared, only_two = _record("openvino", 2), _record("deepsparse", 2)
    one.append(shared)
    two.append(shared)
    two.append(only_two)
    write_json(tmp_path / "export.json", [only_two])
    merged = merge([one.path, two.path, tmp_path / "export.json"])
    assert sorted(r.id for r in merged) == sorted([shared.id, only_two.id])
    assert json.loads((tmp_path / "export.json").read_text())[0]["id"] == only_two.id
