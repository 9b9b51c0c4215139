"""Studies on a Dask cluster: `posebench study STUDY.yaml --executor dask [--cluster ADDRESS]`.

Why Dask (distributed) and not Ray: it is pure Python (a pip install, no C++ runtime or object store),
a local cluster starts from Python in about a second, `dask scheduler` / `dask worker` or `SSHCluster`
make an ad-hoc fleet, and worker resources express placement. Ray would do the same with custom
resources; both treat resources as logical labels only, so posebench enforces exclusivity itself.

How a study runs here:
- Every worker is started by `posebench worker ADDRESS` (or a local cluster): one task at a time, with
  resources `posebench=1` and `kind-<K>=1` for each hardware kind K of its machine (`machine_kinds`:
  avx2, avx512_vnni, cuda...; `--kind` names them for a fleet you label yourself) and a node name.
- Builds (compression, export) and accuracy trials run on any worker (accuracy of GPU runtimes on a
  cuda worker; a build that trains prefers a cuda worker when the cluster has one). A latency trial of
  target K runs only on a `kind-K` worker.
- Exclusivity: every posebench task holds its node's lock (`distributed.Lock`) while it runs, so two
  workers on one machine never run two tasks at once and a latency trial never shares its machine
  with a build. The records carry node, worker, start and end, so this can be checked afterwards.
- Records stream into the driver's append-only store as trials finish; a trial already recorded is
  never submitted or written twice, so a killed driver restarted resumes with nothing lost or doubled.
- A worker lost mid-trial: the scheduler runs the trial again on another worker of its kind (the
  record says which attempt it was and where the earlier ones died); if it keeps dying, or no worker
  of that kind is left, the trial is recorded as failed with the reason and the study goes on.
- OUT must be on a filesystem every worker sees (the same path): builds write variants there; each
  node exports its own runtime artifacts under OUT/cache/<node> (an engine belongs to its machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.errors import PosebenchError
from posebench.record import Record
from posebench.study import (Study, accuracy_trials, build_job, done_ids, is_gpu_kind, latency_trials, model_name,
                             reference_of)
from posebench.trial import Built, Trial

ANY = "posebench"  # the resource every posebench worker has
NODE_ENV = "POSEBENCH_NODE"  # a worker's node name (its machine), set by `posebench worker`
Progress = Callable[[str, int, int], None]


class ClusterError(PosebenchError):
    """The cluster cannot run this study (unreachable scheduler, OUT not shared, Dask not installed)."""


def kind_resource(kind: str) -> str:
    """The Dask resource a worker of hardware kind `kind` declares."""
    return f"kind-{kind}"


def worker_resources(kinds: list[str]) -> dict[str, float]:
    """Resources of a posebench worker: `posebench` plus one `kind-K` per hardware kind."""
    return {ANY: 1.0, **{kind_resource(k): 1.0 for k in kinds}}


def node_name() -> str:
    """The machine this process runs on, as the cluster knows it (`posebench worker --node`, else the host)."""
    return os.environ.get(NODE_ENV) or socket.gethostname()


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cluster is and how long a trial may wait for a worker of its kind."""

    address: str | None = None  # tcp://host:8786; None (and no scheduler_file): a local cluster on this machine
    scheduler_file: Path | None = None
    orphan_seconds: float = 120.0  # a trial whose kind has no worker for this long is recorded as failed
    poll_seconds: float = 2.0


# ---- what runs on a worker ----------------------------------------------------------------------------------

def _node_cache(out: Path) -> Path:
    return out / "cache" / node_name()


def attempts_file(out: Path, key: str) -> Path:
    """Where the attempts of one trial are listed, a line `node worker` each (OUT/.cluster/attempts)."""
    return out / ".cluster" / "attempts" / hashlib.sha256(key.encode()).hexdigest()[:20]


def _attempt(out: Path, key: str, worker: str) -> dict[str, Any]:
    """Count this attempt of a trial: one that starts again after its worker was lost says where it ran before."""
    path = attempts_file(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    earlier = path.read_text().splitlines() if path.is_file() else []
    with open(path, "a") as fh:
        fh.write(f"{node_name()} {worker}\n")
    return {"attempt": len(earlier) + 1, "earlier": earlier}


def _exclusively(out: Path, key: str, work: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run `work` holding this node's lock; returns its result and where and when it ran."""
    from distributed import Lock, get_worker

    node, worker = node_name(), get_worker().address
    with Lock(f"posebench-node-{node}"):
        attempt = _attempt(out, key, worker)
        started = time.time()
        result = work()
        finished = time.time()
    return result, {"executor": "dask", "node": node, "worker": worker, "started": started, "finished": finished,
                    **attempt}


def _check_shared(out: str) -> str:
    """On a worker: the node name if it sees OUT, else raises."""
    marker = Path(out) / ".cluster" / "shared"
    if not marker.is_file():
        raise ClusterError(f"worker on {node_name()} cannot see {out}: a cluster study needs OUT on a filesystem "
                           f"every worker mounts at the same path (NFS, a shared disk)")
    return node_name()


def _build_task(study: Study, model: str, variant: str, out: Path) -> Built:
    key = f"{model}|{variant}|build"
    built, _ = _exclusively(out, key, lambda: build_job(study, model, variant, out, _node_cache(out)))
    return built


def _trial_task(trial: Trial, built: Built, reference: Built | None, out: Path) -> Record:
    """One trial on this worker, holding its node: its record says where and when it ran."""
    from posebench.machine.environment import fingerprint
    from posebench.runner import run_trial

    def work() -> Record:
        return run_trial(trial, built, cache=_node_cache(out), environment=fingerprint(), reference=reference)

    record, where = _exclusively(out, trial.id, work)
    return record.with_fields(executor=where)


# ---- the driver ---------------------------------------------------------------------------------------------

def connect(settings: ClusterSettings) -> tuple[Any, Any]:
    """A Dask client (and the local cluster it started, or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ClusterError("--executor dask needs Dask: pip install 'dask[distributed]'") from exc
    from posebench.machine.environment import fingerprint, machine_kinds

    try:
        if settings.address or settings.scheduler_file:
            return Client(settings.address, scheduler_file=str(settings.scheduler_file)
                          if settings.scheduler_file else None, timeout="30s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        where = settings.address or settings.scheduler_file
        raise ClusterError(f"cannot reach the Dask scheduler at {where}: {exc}") from exc
    # one worker: one machine runs one posebench task at a time, as on a cluster node
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           resources=worker_resources(machine_kinds(fingerprint())))
    return Client(cluster), cluster


def _trains(study: Study, variant: str) -> bool:
    """Whether building `variant` trains (recovery fine-tuning or QAT): such builds prefer a GPU worker."""
    from posebench.compress.recipe import Recipe

    try:
        recipes = [Recipe.load(path) for path in study.variants[variant]]
    except PosebenchError:
        return False  # the build itself reports the broken recipe
    return any(r.finetune.epochs or r.qat() for r in recipes)


def _required(trial: Trial, study: Study) -> str:
    if trial.kind == "latency":
        return kind_resource(trial.target) if trial.target else ANY
    if trial.gpu and any(is_gpu_kind(t) for t in study.targets):
        return kind_resource(next(t for t in study.targets if is_gpu_kind(t)))
    return ANY


def _failure(trial: Trial, reason: str) -> Record:
    """The record of a trial the cluster could not run (no worker of its kind, a worker lost)."""
    from posebench.record import Failure
    from posebench.runner import failed

    return failed(trial, Failure.error(reason), None, executor={"executor": "dask", "node": None})


def run_study_on_cluster(study: Study, out: Path, settings: ClusterSettings, *, on_progress: Progress | None = None,
                         retry_failed: bool = False) -> list[Record]:
    """Run every trial of `study` not yet in OUT/results.jsonl on a Dask cluster; returns the records written now."""
    from distributed import wait

    from posebench.results import ResultStore

    report = on_progress or (lambda what, done, total: None)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / ".cluster").mkdir(exist_ok=True)
    (out / ".cluster" / "shared").write_text(json.dumps({"driver": socket.gethostname(), "at": time.time()}))
    store = ResultStore(out / "results.jsonl")
    done = done_ids(store.read(), retry_failed=retry_failed)
    names = {model: model_name(model) for model in study.models}
    trials = [*latency_trials(study, names), *accuracy_trials(study, names)]
    todo = [t for t in trials if t.id not in done]
    total, finished = len(trials), len(trials) - len(todo)
    written: list[Record] = []
    if not todo:
        report("done", total, total)
        return written
    client, cluster = connect(settings)
    try:
        report("checking that every worker sees OUT", finished, total)
        _check_workers(client, out)
        needed = {(t.model, t.variant) for t in todo} | {reference_of(t) for t in todo if reference_of(t)}
        # builds first, in parallel over the nodes; then the trials as independent tasks, so the scheduler spreads
        # them over every worker of their kind (a trial depending on a build's future would follow that build's
        # worker instead)
        report(f"building {len(needed)} variant(s) on the cluster", finished, total)
        built = _build_variants(client, study, needed, out)
        futures = {}
        for trial in todo:
            reference = reference_of(trial)
            future = client.submit(_trial_task, trial, built[(trial.model, trial.variant)],
                                   built[reference] if reference else None, out,
                                   resources={_required(trial, study): 1}, pure=False,
                                   priority=-trial.round if trial.kind == "latency" else -1000)
            futures[future] = trial
        pending = set(futures)
        orphaned_since: dict[str, float] = {}

        def keep(trial: Trial, record: Record) -> None:
            nonlocal finished
            finished += 1
            if trial.id in done:  # never twice, whatever happens
                return
            done.add(trial.id)
            store.append(record)
            written.append(record)
            where = (record.executor or {}).get("node")
            report(f"[{finished}/{total}] {trial.id} -> {record.status}" + (f" on {where}" if where else ""),
                   finished, total)

        report(f"{len(todo)} trials submitted to {client.scheduler.address}", finished, total)
        while pending:
            try:
                wait(list(pending), timeout=settings.poll_seconds, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            for future in [f for f in pending if f.done()]:
                pending.discard(future)
                trial = futures[future]
                keep(trial, future.result() if future.status == "finished" else _failure(trial, _lost(future)))
            # a trial whose kind has no worker left would wait forever: fail it after orphan_seconds
            for future, reason in _orphans(client, pending, futures, study, settings, orphaned_since):
                future.cancel()
                pending.discard(future)
                keep(futures[future], _failure(futures[future], reason))
        report("done", total, total)
        return written
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(client: Any, out: Path) -> None:
    """Every worker must see OUT (the shared folder the trials write to): raise the first that does not."""
    answers = client.run(_check_shared, str(out), on_error="return")
    for answer in answers.values():  # a worker's ClusterError comes back as itself; anything else is reported
        if isinstance(answer, ClusterError):
            raise answer
        if isinstance(answer, Exception) and not isinstance(answer, OSError):
            raise ClusterError(f"checking the workers failed: {type(answer).__name__}: {answer}") from answer
    if all(isinstance(answer, OSError) for answer in answers.values()):  # a closed comm: a worker that just died
        raise ClusterError("checking the workers failed: no worker answered")


def _build_variants(client: Any, study: Study, needed: set[tuple[str, str]], out: Path) -> dict[tuple[str, str], Built]:
    """Build each (model, variant) on the cluster, in parallel; a variant that trains prefers a GPU worker."""
    from distributed import wait

    gpu_workers = [address for address, w in client.scheduler_info(n_workers=-1)["workers"].items()
                   if any(r.startswith("kind-cuda") for r in (w.get("resources") or {}))]
    building = {}
    for mv in sorted(needed):
        # a variant that trains (fine-tuning, QAT) prefers a GPU worker (Ultralytics trains on the GPU it finds)
        prefer = gpu_workers if gpu_workers and _trains(study, mv[1]) else None
        building[mv] = client.submit(_build_task, study, mv[0], mv[1], out, resources={ANY: 1}, pure=False,
                                     workers=prefer, allow_other_workers=prefer is not None)
    wait(list(building.values()))
    built: dict[tuple[str, str], Built] = {}
    for mv, future in building.items():
        exc = future.exception() if future.status == "error" else None
        built[mv] = future.result() if future.status == "finished" else \
            Built(None, f"building variant '{mv[1]}' failed on the cluster: {type(exc).__name__}: {exc}")
    return built


def _orphans(client: Any, pending: set[Any], futures: dict[Any, Trial], study: Study, settings: ClusterSettings,
             since: dict[str, float]) -> list[tuple[Any, str]]:
    """The pending futures whose resource no worker has offered for `settings.orphan_seconds` (`since`: when each
    resource went missing, updated here), each with the reason to record."""
    have = set()
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        have |= set(worker.get("resources") or {})
    now, orphans = time.time(), []
    for future in list(pending):
        need = _required(futures[future], study)
        if need in have:
            since.pop(need, None)
            continue
        if now - since.setdefault(need, now) >= settings.orphan_seconds:
            orphans.append((future, f"no worker with resource '{need}' in the cluster for "
                                    f"{settings.orphan_seconds:.0f} s (start one: posebench worker "
                                    f"ADDRESS --kind {need.removeprefix('kind-')})"))
    return orphans


def _lost(future: Any) -> str:
    """Why a trial's future did not finish."""
    exc = future.exception() if future.status == "error" else None
    if type(exc).__name__ == "KilledWorker":
        return f"the trial's worker was lost and so was every retry ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}" if exc else f"trial {future.status}"


def serve_worker(address: str | None, *, scheduler_file: Path | None = None, kinds: list[str] | None = None,
                 node: str | None = None, name: str | None = None) -> None:
    """`posebench worker`: join a Dask cluster as one posebench worker (one task at a time) until stopped."""
    import asyncio

    try:
        from distributed import Worker
    except ImportError as exc:
        raise ClusterError("posebench worker needs Dask: pip install 'dask[distributed]'") from exc
    from posebench.machine.environment import fingerprint, machine_kinds

    if node:
        os.environ[NODE_ENV] = node
    kinds = kinds or machine_kinds(fingerprint())
    if scheduler_file is not None:
        address = json.loads(Path(scheduler_file).read_text())["address"]
    if not address:
        raise ClusterError("posebench worker needs the scheduler's address (tcp://host:8786) or --scheduler-file")

    async def main() -> None:
        async with Worker(address, nthreads=1, resources=worker_resources(kinds), name=name or None) as worker:
            print(f"posebench worker {worker.address} on node {node_name()}: kinds {', '.join(kinds)}; "
                  f"scheduler {address}", flush=True)
            await worker.finished()

    asyncio.run(main())
