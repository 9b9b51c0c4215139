"""Studies on a real Dask cluster on this machine: a scheduler and three `posebench worker` processes
standing in for two hardware kinds (node n1: kind sim-a; node n2: two workers of kind sim-b). The study
also targets sim-c, which no worker has. Proven: placement by kind, one task at a time per node, a
killed driver resumes with nothing lost or doubled, a killed worker's trial is retried elsewhere, and
a kind with no worker ends in failed records, never a hole."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

pytest.importorskip("distributed")

TIMEOUT = 240


def _wait(condition, what: str, timeout: float = TIMEOUT) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _records(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and three workers; yields (scheduler file, {worker name: process}, environment)."""
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT": "3s",
           "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL": "1s", "PYTHONUNBUFFERED": "1"}
    scheduler_file = tmp_path / "scheduler.json"
    dask = Path(sys.executable).parent / "dask"
    procs = [subprocess.Popen([str(dask), "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                               "--no-dashboard", "--host", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    _wait(scheduler_file.is_file, "the scheduler", 60)
    workers = {}
    for name, node, kind in (("w1", "n1", "sim-a"), ("w2", "n2", "sim-b"), ("w3", "n2", "sim-b")):
        with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own copy of the descriptor
            workers[name] = subprocess.Popen([sys.executable, "-m", "posebench", "worker", "--scheduler-file",
                                              str(scheduler_file), "--kind", kind, "--node", node, "--name", name],
                                             env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(workers[name])
    for name in workers:
        log_path = tmp_path / f"{name}.log"
        _wait(lambda path=log_path: "posebench worker tcp://" in path.read_text(), f"worker {name}", 120)
    yield scheduler_file, workers, env
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_study_on_a_cluster_places_trials_by_kind_one_per_node_and_survives_killed_driver_and_worker(
        cluster, tmp_path):
    scheduler_file, workers, env = cluster
    study = tmp_path / "study.yaml"
    study.write_text("""name: fleet
models: [default]
variants: {base: null}
runtimes: ["null[delay_ms=40]"]
threads: [1, 2]
imgsz: 64
targets: [sim-a, sim-b, sim-c]
latency: {iters: 25, min_seconds: 0.5, warmup: 1, warmup_seconds: 0, rounds: 2, probe: false}
""")
    out = tmp_path / "out"

    def driver() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "posebench", "study", str(study), "--out", str(out),
                                 "--executor", "dask", "--scheduler-file", str(scheduler_file), "--orphan-seconds",
                                 "20"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # 1. kill the driver once two trials are recorded
    first = driver()
    _wait(lambda: sum(r["status"] == "ok" for r in _records(out)) >= 2 or first.poll() is not None, "two trials")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = {r["trial_id"] for r in _records(out) if "trial_id" in r}
    assert len(before) >= 2

    # 2. restart it; kill the n2 worker that runs one of its trials, mid-trial
    second = driver()
    second_started = time.time()
    started_on_n2: list[str] = []

    def trial_starts_on_n2() -> bool:
        for path in (out / ".cluster" / "attempts").glob("*"):
            lines = path.read_text().splitlines()
            if path.stat().st_mtime > second_started and lines and lines[-1].startswith("n2 "):
                started_on_n2.append(lines[-1].split()[1])
                return True
        return False

    _wait(trial_starts_on_n2, "a trial on node n2")
    victim_address = started_on_n2[0]
    victim = next(name for name in ("w2", "w3") if victim_address in (tmp_path / f"{name}.log").read_text())
    workers[victim].send_signal(signal.SIGKILL)
    output, _ = second.communicate(timeout=TIMEOUT)
    assert second.returncode in (0, 4), output  # 4: some trials failed (sim-c has no worker)

    records = [r for r in _records(out) if r["kind"] == "latency"]
    keys = [r["trial_id"] for r in records]
    assert len(keys) == len(set(keys)) == 12, keys  # 2 threads x 2 rounds x 3 targets, each exactly once
    assert before <= set(keys)
    by_target: dict[str, list[dict]] = {}
    for r in records:
        by_target.setdefault(r["target"], []).append(r)
    # exclusivity: never two trials at once on one node (n2 has two workers)
    for node in ("n1", "n2"):
        spans = sorted((r["executor"]["started"], r["executor"]["finished"]) for r in records
                       if (r.get("executor") or {}).get("node") == node)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), (node, spans)
    # placement: every trial ran on a worker of its kind
    assert {r["executor"]["node"] for r in by_target["sim-a"]} == {"n1"}
    assert {r["executor"]["node"] for r in by_target["sim-b"]} == {"n2"}
    assert all(r["status"] == "ok" for r in by_target["sim-a"] + by_target["sim-b"]), output
    # a kind with no worker: failed records with the reason, never a hole
    assert all(r["status"] == "error" and "kind-sim-c" in r["error"] for r in by_target["sim-c"])
    # the killed worker's trial ran again on the other n2 worker, and its record says so
    rerun = [r for r in by_target["sim-b"] if any(victim_address in line for line in r["executor"]["earlier"])]
    assert rerun, [r["executor"] for r in by_target["sim-b"]]
    assert all(r["executor"]["worker"] != victim_address and r["executor"]["attempt"] >= 2 for r in rerun)
