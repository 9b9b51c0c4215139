"""The command line as a user types it: a real sweep, and one clear line for every bad input."""

from __future__ import annotations

import json
import os

import pytest

from conftest import IMGSZ, run_cli, run_here

from posebench.errors import (EXIT_NONE_FAILED, EXIT_NONE_SKIPPED, EXIT_OK, EXIT_PARTIAL_FAILED,
                              EXIT_PARTIAL_SKIPPED, exit_status)

FAST = ["--iters", "5", "--min-seconds", "0", "--warmup", "1", "--warmup-seconds", "0"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("bench")
    imgsz = f"{IMGSZ[0]},{IMGSZ[1]}"
    result = run_cli("bench", "--runtime", "all", "--threads", "1,2", "--imgsz", imgsz, *FAST,
                     "--out", str(out), "--json", str(out / "records.json"), "--cache-dir", str(cache_dir))
    return result, out


@pytest.mark.slow
def test_bench_sweeps_every_cpu_runtime_and_thread_count(sweep):
    result, out = sweep
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "records.json").read_text())
    got = {(r["trial"]["runtime"], r["trial"]["threads"]) for r in records}
    assert got == {(rt, t) for rt in ("torch", "onnxruntime", "openvino", "deepsparse", "null") for t in (1, 2)}
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    for r in records:
        assert r["trial"]["imgsz"] == list(IMGSZ)
        assert r["latency"]["count"] >= 5
        assert r["environment"]["cpu_model"] and r["environment"]["versions"]["onnxruntime"]
        assert r["protocol"]["iters"] == 5 and r["backend"]["threads"] == r["trial"]["threads"]
    # each measurement ran in its own fresh process
    assert len({r["pid"] for r in records}) == len(records)
    assert "deepsparse" in result.stdout and "null" in result.stdout
    assert (out / "latency.md").read_text().count("| deepsparse |") == 2


@pytest.mark.slow  # the sweep itself is the slow tier's
def test_results_store_matches_the_json_output(sweep):
    _, out = sweep
    from posebench.results import ResultStore

    stored = ResultStore(out / "results.jsonl").read()
    assert [r.id for r in stored] == [r["id"] for r in json.loads((out / "records.json").read_text())]


@pytest.mark.slow  # the sweep itself is the slow tier's
def test_openvino_runs_the_requested_thread_count(sweep):
    _, out = sweep
    records = json.loads((out / "records.json").read_text())
    for r in records:
        if r["trial"]["runtime"] == "openvino":
            assert r["backend"]["effective_threads"] == r["trial"]["threads"]
            assert r["backend"]["streams"] == 1


@pytest.mark.parametrize("args,message", [
    (["--model", "no/such/model.pt"], "does not exist"),
    (["--model", "nosuch-pose.yaml"], "not found"),
    (["--model", "weights.h5"], "checkpoint (.pt), a model YAML"),
    (["--model", "no/such/model.onnx"], "does not exist"),
    (["--runtime", "openvinoo"], 'Did you mean "openvino"'),
    (["--runtime", "tensorflow"], "Known runtimes"),
    (["--imgsz", "100"], "multiples of 32"),
    (["--imgsz", "big"], "HEIGHT,WIDTH"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--threads", "two"], "whole numbers"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    result = run_here("bench", *args, "--out", str(tmp_path), *FAST)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("flag,value", [("--iters", "0"), ("--iters", "-3"), ("--min-seconds", "-1")])
def test_non_positive_iterations_are_refused_by_the_parser(flag, value, tmp_path):
    result = run_cli("bench", flag, value, "--out", str(tmp_path))
    assert result.returncode == 2 and flag in result.stderr and "Traceback" not in result.stderr


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x80\x04truncated")
    result = run_here("bench", "--model", str(bad), "--runtime", "torch", "--out", str(tmp_path), *FAST)
    assert result.returncode == 2 and "not a loadable Ultralytics model" in result.stderr
    assert "Traceback" not in result.stderr


def test_more_threads_than_cores_warns_and_still_runs(tmp_path, cache_dir):
    too_many = str((os.cpu_count() or 1) + 1)
    result = run_cli("bench", "--runtime", "null", "--threads", too_many, "--imgsz", f"{IMGSZ[0]},{IMGSZ[1]}",
                     "--out", str(tmp_path), "--cache-dir", str(cache_dir), *FAST)
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "cores" in result.stderr


def test_missing_runtime_is_recorded_not_fatal(tmp_path, cache_dir):
    env = {**os.environ, "POSEBENCH_DEEPSPARSE_PYTHON": str(tmp_path / "absent" / "python")}
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run([sys.executable, "-m", "posebench", "bench", "--runtime", "deepsparse,null",
                             "--threads", "1", "--imgsz", f"{IMGSZ[0]},{IMGSZ[1]}", "--out", str(tmp_path),
                             "--cache-dir", str(cache_dir), "--json", str(tmp_path / "r.json"), *FAST],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == EXIT_PARTIAL_SKIPPED, result.stderr  # some measured, the rest not installed
    records = {r["trial"]["runtime"]: r for r in json.loads((tmp_path / "r.json").read_text())}
    assert records["deepsparse"]["status"] == "skipped" and "deepsparse==1.8.0" in records["deepsparse"]["error"]
    assert records["deepsparse"]["error_type"] == "RuntimeNotInstalledError"  # not installed != crashed
    assert records["null"]["status"] == "ok"


def test_nothing_measured_exits_non_zero(tmp_path, cache_dir):
    """TensorRT is not installed here (no GPU): nothing asked for was measured, and the exit status says so."""
    result = run_cli("bench", "--runtime", "tensorrt", "--threads", "1", "--imgsz", f"{IMGSZ[0]},{IMGSZ[1]}",
                     "--out", str(tmp_path), "--cache-dir", str(cache_dir), *FAST)
    assert result.returncode == EXIT_NONE_SKIPPED, result.stdout + result.stderr
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "skipped" and record["trial"]["runtime"] == "tensorrt"


def test_exit_status_tells_skipped_from_crashed():
    from posebench.record import Failure, Record

    ok = Record("latency", "t", None)
    skipped, crashed = (Record("latency", "t", None, failure=why) for why in (Failure.skipped("skipped: no GPU"), Failure.error("crashed")))
    assert exit_status([ok, ok]) == EXIT_OK
    assert exit_status([ok, skipped]) == EXIT_PARTIAL_SKIPPED
    assert exit_status([ok, skipped, crashed]) == EXIT_PARTIAL_FAILED
    assert exit_status([skipped]) == EXIT_NONE_SKIPPED
    assert exit_status([skipped, crashed]) == EXIT_NONE_FAILED
    assert exit_status([]) == EXIT_NONE_SKIPPED  # nothing ran is not success


def test_env_command_lists_runtimes():
    result = run_cli("env")
    assert result.returncode == 0
    assert '"cpu_model"' in result.stdout
    assert "openvino     installed" in result.stdout


@pytest.mark.slow
def test_sigterm_stops_the_measurement_child_too(tmp_path, cache_dir):
    """`kill` (SIGTERM) on posebench ends its measurement child as Ctrl-C does: an orphan would go on loading the
    CPU and disturb whatever is timed next (it did, once, during a study)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    proc = subprocess.Popen([sys.executable, "-m", "posebench", "bench", "--runtime", "onnxruntime", "--imgsz", "160",
                             "--threads", "1", "--iters", "1000000", "--min-seconds", "120", "--max-seconds", "120",
                             "--out", str(tmp_path), "--cache-dir", str(cache_dir)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def children() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
                if entry.isdigit() and int(fields[1]) == proc.pid and fields[0] != "Z":
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
        return found

    deadline = time.time() + 120
    while time.time() < deadline and not children():
        time.sleep(0.2)
    kids = children()
    assert kids, "the measurement child never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    time.sleep(0.5)
    for pid in kids:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] if os.path.exists(f"/proc/{pid}") else "gone"
        assert state in ("gone", "Z"), f"measurement child {pid} still running ({state})"


def test_a_bad_flag_value_prints_a_one_line_usage_and_the_error(capsys):
    """Not argparse's 13-line usage block: the command, where the full usage is, and what is wrong."""
    from posebench.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "--iters", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["usage: posebench bench [options]  (posebench bench --help)",
                   "posebench bench: error: argument --iters: must be at least 1, got 0"]
