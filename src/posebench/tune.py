"""`posebench tune`: the fastest deployment of a pose model for the user's own footage, within an accuracy tolerance
of Ultralytics' own int8 export (or the most accurate one within a latency budget).

The search space is input size x channel-pruning ratio x precision x runtime x threads; every candidate is judged
on the user's footage by label-free fidelity (COCO keypoint AP against the dense fp32 model at its native size, on
frames no candidate was calibrated or trained on) and, with labels, by pose mAP50-95. It runs coarse to fine:

1. **reference**: Ultralytics' `yolo export format=openvino int8=True` of the unpruned model at 640x640 is always
   in the race. Its accuracy minus the tolerance is the floor every candidate must reach.
2. **sizes**: the fp32 model at every candidate size (square below 640 and matched to the footage's aspect ratio);
   a size whose fp32 accuracy is already under the floor is dropped (compression does not add accuracy).
3. **compression**: int8 (posebench PTQ and Ultralytics' NNCF export) and channel pruning (recovered by
   distillation from the dense model on the calibration frames) at every surviving size; under the floor: dropped.
4. **coarse latency**: every surviving candidate and the reference, short protocol, interleaved rounds.
5. **fine latency**: the fastest few and the reference again, longer protocol, more interleaved rounds; the winner
   is the fastest (median over rounds of its p50) with the reference's ratio taken within each round.

Data discipline: the footage is split once, frames before `eval_from` calibrate int8 and train the pruned models
(plus any extra images given), frames from `eval_from` on judge. Every build and measurement is a record in
`OUT/results.jsonl` keyed like a study trial, so an interrupted tune resumes where it stopped; builds are cached.
The winner is copied to `OUT/winner/` (a bundle, or the exported folder) that `bench` and `val` take as `--model`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

from posebench.errors import PosebenchError
from posebench.record import Record
from posebench.runtimes.base import runtime_name
from posebench.trial import Built, Evaluation, Trial
from posebench.tune_build import CandidateBuilder, candidate_recipes  # noqa: F401 - part of tune's interface
from posebench.tune_plan import (  # noqa: F401 - part of tune's interface
    INT8_PRESETS,
    NATIVE,
    PRECISIONS,
    Candidate,
    Progress,
    TunePlan,
    candidate_sizes,
    default_runtimes,
    footage_split,
    is_openvino,
    ultralytics_openvino,
)



def choose_winner(timed: list[dict[str, Any]], floor: dict[str, float], budget_ms: float | None,
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The winning row among `timed` (rows of the fine rounds: p50_ms, accuracy per evaluation, `within` from the
    paired comparison, reference) and the unresolved rows faster than it. A candidate must reach every `floor`
    (evaluation -> least accuracy). With a latency budget: the most accurate within it (ties: the faster). Else
    the fastest whose paired interval says it is within the tolerance; a candidate whose interval straddles the
    floor is not resolved and wins only when no resolved one is left."""
    eligible = [r for r in timed if not r["reference"] and all((r["accuracy"].get(k) or -1) >= v
                                                                for k, v in floor.items())]
    unresolved: list[dict[str, Any]] = []
    if budget_ms is not None:
        eligible = [r for r in eligible if r["p50_ms"] <= budget_ms]
        eligible.sort(key=lambda r: (tuple(-(v or 0) for v in r["accuracy"].values()), r["p50_ms"]))
    else:
        unresolved = [r for r in eligible if r.get("within") is None]
        eligible = ([r for r in eligible if r.get("within") is not None] or unresolved)
        eligible.sort(key=lambda r: r["p50_ms"])
    winner = dict(eligible[0]) if eligible else None
    return winner, [r for r in unresolved if winner and r["p50_ms"] < winner["p50_ms"]]

class Tuner:
    """Runs a `TunePlan` (resumable: records in OUT/results.jsonl, builds under OUT/builds)."""

    def __init__(self, plan: TunePlan, on_progress: Progress | None = None):
        from posebench.machine.environment import fingerprint
        from posebench.results import ResultStore

        self.plan = plan
        self.say = on_progress or (lambda what, done, total: None)
        plan.out.mkdir(parents=True, exist_ok=True)
        self.store = ResultStore(plan.out / "results.jsonl")
        self.records = self.store.read()
        self.done = {r.trial_id: r for r in self.records if r.trial_id}
        self.cache = plan.out / "cache"
        self.env = fingerprint()
        self.frames, self.eval_from, self.frame_hw = footage_split(plan.footage, plan.eval_from)
        self.builder = CandidateBuilder(plan, self.eval_from, self.cache, self.say)
        self.build = self.builder.build  # each candidate built once (OUT/builds)
        self.errors = self.builder.errors  # why a candidate could not be built
        self.dropped: dict[Candidate, str] = {}
        self.reference = Candidate(plan.native, "int8-ultralytics")  # Ultralytics' own int8 export

    # ---- measuring --------------------------------------------------------------------------------------------
    def trial(self, candidate: Candidate, runtime: str, threads: int | None = None, *,
              evaluation: Evaluation | None = None, stage: str = "", lineup: str = "", round_no: int = 1) -> Trial:
        """The trial of `candidate` on `runtime`: latency (a `stage`, a round) or accuracy (an `evaluation`)."""
        protocol = self.plan.coarse if stage.startswith("coarse") else self.plan.fine
        return Trial("accuracy" if evaluation else "latency", self.plan.source.name, candidate.name, runtime,
                     threads or max(self.plan.threads), candidate.imgsz, evaluation=evaluation, stage=stage,
                     lineup=lineup, round=round_no, study=f"tune:{self.plan.out.name}", protocol=protocol)

    def evaluation(self, name: str, runtime: str) -> Evaluation:
        """fidelity (label-free, against the dense model at its native size on the judging frames), labels (the
        plan's data) or judge (the judging set)."""
        if name == "fidelity":
            return Evaluation("fidelity", reference=self.plan.source.name, source=self.plan.footage, max_frames=0,
                              first_frame=self.eval_from, reference_imgsz=self.plan.native,
                              reference_runtime=runtime_name(runtime))  # the reference in full precision
        if name == "judge":
            return Evaluation("judge", data=self.plan.judge, split="val")
        return Evaluation("labels", data=self.plan.data, split=self.plan.split)

    def measured(self, candidate: Candidate, trial: Trial) -> Record:
        """The record of `trial` (run now if it has none yet)."""
        from posebench.runner import run_trial

        if trial.id not in self.done:
            spec = self.build(candidate)
            if trial.evaluation:  # latency trials are announced by their stage, with their count
                self.say(f"accuracy '{trial.evaluation.name}' of {candidate.name} on {trial.runtime}", 0, 0)
            record = run_trial(trial, Built(spec, self.errors.get(candidate)), cache=self.cache,
                               environment=self.env, reference=Built(self.plan.source.spec))
            self.store.append(record)
            self.records.append(record)
            self.done[trial.id] = record
        return self.done[trial.id]

    def accuracy_record(self, candidate: Candidate, runtime: str, name: str, *, run: bool = True) -> Record | None:
        """`candidate`'s record on `runtime` by evaluation `name` (None when it has none and `run` is False)."""
        trial = self.trial(candidate, runtime, evaluation=self.evaluation(name, runtime))
        return self.measured(candidate, trial) if run else self.done.get(trial.id)

    def evaluations(self) -> tuple[str, ...]:
        return ("fidelity", "labels") if self.plan.data else ("fidelity",)

    def accuracy(self, candidate: Candidate, runtime: str) -> dict[str, float | None]:
        """Fidelity on the judging frames (and pose mAP50-95 with labels) of `candidate` on `runtime`."""
        return {name: _score(self.accuracy_record(candidate, runtime, name)) for name in self.evaluations()}

    def recorded_accuracy(self, candidate: Candidate, runtime: str) -> dict[str, float | None]:
        """What was recorded for `candidate` on `runtime` (None where nothing was); measures nothing."""
        return {name: _score(self.accuracy_record(candidate, runtime, name, run=False)) for name in self.evaluations()}

    def latency(self, candidate: Candidate, runtime: str, threads: int, stage: str, round_no: int,
                lineup: str = "") -> float | None:
        """Model-mode p50 (ms) of one measurement, recorded once per `lineup` (what it is interleaved with)."""
        record = self.measured(candidate, self.trial(candidate, runtime, threads, stage=stage, lineup=lineup,
                                                     round_no=round_no))
        return record.latency_stats.p50_ms if record.ok else None

    # ---- the search -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """The whole search; returns the summary also written to OUT/tune.json."""
        plan = self.plan
        sizes = plan.sizes or candidate_sizes(self.frame_hw, max(plan.native))
        configs = [(rt, t) for rt in plan.runtimes for t in plan.threads]

        def score(candidate: Candidate) -> dict[str, float | None]:
            """Accuracy on every runtime, the worst of them (a deployment is only as good as its runtime)."""
            runtimes = plan.runtimes
            if candidate.precision == "int8-ultralytics":  # an IR: OpenVINO only
                runtimes = tuple(rt for rt in plan.runtimes if is_openvino(rt)) or (plan.reference_runtime,)
            per = [self.accuracy(candidate, rt) for rt in runtimes]  # recorded once, then read back
            return {k: min((p[k] for p in per if p.get(k) is not None), default=None) for k in per[0]}

        # 1. the reference sets the floor
        self.say(f"the reference: Ultralytics' OpenVINO int8 export at {plan.native[0]}x{plan.native[1]}", 0, 0)
        reference = self._reference_score()
        floor = {k: v - plan.tolerance for k, v in reference.items() if v is not None} if plan.budget_ms is None else {}

        def passes(candidate: Candidate) -> bool:
            got = score(candidate)
            for k, need in floor.items():
                if got.get(k) is None:
                    self.dropped[candidate] = self.errors.get(candidate) or f"no {k} measured"
                    return False
                if got[k] < need:
                    self.dropped[candidate] = f"{k} {got[k]:.4f} < floor {need:.4f}"
                    return False
            return candidate not in self.errors
        # 2. sizes, in fp32
        kept_sizes = [s for s in sizes if passes(Candidate(s))]
        # 3. compression at the surviving sizes
        candidates = [Candidate(s, p, m, start) for s in kept_sizes for start in ("", *plan.models) for m in plan.macs
                      for p in plan.precisions]
        survivors = [c for c in candidates if not c.compressed or passes(c)]
        if self.reference not in survivors:
            survivors.append(self.reference)
        # 4. coarse latency, interleaved rounds
        coarse = self._timed(survivors, configs, "coarse", plan.coarse_rounds)
        # 5. fine latency: the fastest few per configuration, and the reference
        finalists: set[Candidate] = {self.reference}
        for config in configs:
            ranked = sorted((c for c in survivors if c != self.reference and coarse.get((c, *config))),
                            key=lambda c: coarse[(c, *config)]["p50_ms"])
            if plan.budget_ms is not None:
                ranked = sorted((c for c in ranked if coarse[(c, *config)]["p50_ms"] <= plan.budget_ms),
                                key=lambda c: tuple(-(v or 0) for v in score(c).values()))
            finalists.update(ranked[:plan.finalists])
        fine = self._timed(sorted(finalists, key=lambda c: c.name), configs, "fine", plan.fine_rounds)
        summary = self._summary(sizes, candidates, survivors, coarse, fine, reference, floor, score)
        if summary["winner"]:
            summary["winner"]["deployment"] = str(self.builder.deploy(summary["winner"]))
            if plan.judge is not None:
                summary["judged"] = self._judge(summary["winner"])
        (plan.out / "tune.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _reference_score(self) -> dict[str, float | None]:
        score = self.accuracy(self.reference, self.plan.reference_runtime)  # Ultralytics' int8 is an OpenVINO IR
        if any(v is None for v in score.values()):
            raise PosebenchError(f"the reference (Ultralytics' OpenVINO int8 export) could not be scored: "
                                 f"{self.errors.get(self.reference, 'see OUT/results.jsonl')}")
        return score

    def _timed(self, candidates: list[Candidate], configs: list[tuple[str, int]], stage: str,
               rounds: int) -> dict[tuple[Candidate, str, int], dict[str, Any]]:
        """Every candidate x configuration once per round (round r before r+1); per key: median p50 over rounds and
        the median over rounds of the reference's p50 / the candidate's p50 in the same round."""
        ref_rt = self.plan.reference_runtime
        triples = [(c, rt, t) for rt, t in configs for c in candidates if c != self.reference
                   and (c.precision != "int8-ultralytics" or is_openvino(rt))]  # Ultralytics' int8 is an IR
        triples += [(self.reference, ref_rt, t) for t in sorted({t for _, t in configs}) if self.reference in candidates]
        # Ratios are only fair between measurements interleaved together: a resumed run reuses a stage's records
        # only if it times the same line-up (an interrupted run); another line-up (new candidates) is timed afresh.
        import hashlib

        lineup = hashlib.sha256(repr(sorted((c.name, rt, t) for c, rt, t in triples)).encode()).hexdigest()[:10]
        samples: dict[tuple[Candidate, str, int], list[float | None]] = {}
        total, k = rounds * len(triples), 0
        for round_no in range(1, rounds + 1):
            for candidate, runtime, threads in triples:
                k += 1
                self.say(f"[{k}/{total}] {stage} latency {candidate.name} on {runtime} @ {threads}, "
                         f"round {round_no}/{rounds}", k, total)
                samples.setdefault((candidate, runtime, threads), []).append(
                    self.latency(candidate, runtime, threads, stage, round_no, lineup))
        out: dict[tuple[Candidate, str, int], dict[str, Any]] = {}
        for (candidate, runtime, threads), p50s in samples.items():
            if any(p is None for p in p50s):
                continue
            ref = samples.get((self.reference, ref_rt, threads)) or []
            ratios = [r / p for r, p in zip(ref, p50s) if r]
            out[(candidate, runtime, threads)] = {
                "p50_ms": statistics.median(p50s), "rounds_p50_ms": p50s,
                "spread": (max(p50s) - min(p50s)) / statistics.median(p50s),
                "x_vs_reference": statistics.median(ratios) if ratios else None}
        return out

    def _summary(self, sizes: tuple[tuple[int, int], ...], candidates: list[Candidate], survivors: list[Candidate],
                 coarse: dict, fine: dict, reference: dict[str, float | None], floor: dict[str, float],
                 score: Callable[[Candidate], dict[str, float | None]]) -> dict[str, Any]:
        rows = []
        for candidate in [Candidate(s) for s in sizes] + [c for c in candidates if c.compressed]:
            for runtime, threads in [(rt, t) for rt in self.plan.runtimes for t in self.plan.threads]:
                if candidate.precision == "int8-ultralytics" and not is_openvino(runtime):
                    continue
                if candidate == self.reference and runtime != self.plan.reference_runtime:
                    continue
                key = (candidate, runtime, threads)
                timing = fine.get(key) or coarse.get(key)
                rows.append({"candidate": candidate.name, "imgsz": list(candidate.imgsz),
                             "precision": candidate.precision, "macs": candidate.macs, "start": candidate.start,
                             "runtime": runtime,
                             "threads": threads, "accuracy": self.recorded_accuracy(candidate, runtime), "stage": "fine" if key in fine else
                             "coarse" if key in coarse else "dropped",
                             "dropped": self.dropped.get(candidate) or self.errors.get(candidate),
                             "reference": candidate == self.reference, **(timing or {})})
        if not any(r["reference"] for r in rows):
            for runtime, threads in [(self.plan.reference_runtime, t) for t in self.plan.threads]:
                timing = fine.get((self.reference, runtime, threads)) or {}
                rows.append({"candidate": self.reference.name, "imgsz": list(self.plan.native), "precision": self.reference.precision,
                             "macs": 1.0, "runtime": runtime, "threads": threads, "accuracy": reference,
                             "stage": "fine", "dropped": None, "reference": True, **timing})
        timed = [r for r in rows if r["stage"] == "fine" and r.get("p50_ms") is not None]
        pareto_front(timed)
        for r in timed:
            if not r["reference"]:
                self._compare(r)
        winner, faster_unresolved = choose_winner(timed, floor, self.plan.budget_ms)
        return {"model": self.plan.source.name, "footage": str(self.plan.footage), "frames": self.frames,
                "eval_from": self.eval_from, "frame_hw": list(self.frame_hw),
                "calibration": json.loads((self.plan.out / "calibration" / "frames.json").read_text()),
                "goal": ({"budget_ms": self.plan.budget_ms} if self.plan.budget_ms is not None else
                         {"tolerance": self.plan.tolerance}),
                "reference": {"candidate": self.reference.name, "accuracy": reference,
                              "runtime": self.plan.reference_runtime}, "floor": floor,
                "sizes": [list(s) for s in sizes], "rows": rows, "winner": winner,
                "faster_unresolved": [r["candidate"] + f" on {r['runtime']}" for r in faster_unresolved],
                "labels": str(self.plan.data) if self.plan.data else None, "environment": self.env,
                "out": str(self.plan.out)}

    def _compare(self, row: dict[str, Any]) -> None:
        """Paired differences of a row from the reference on each evaluation (same frames / images, same
        resamples): row["comparison"][name], and row["within"]: True when every interval says the row is no more
        than the tolerance below, None when one cannot say (not resolved), False when one says it is below."""
        from posebench.evaluate.compare import METRIC_OF_SCORE, difference

        verdicts, row["comparison"] = [], {}
        for name in row["accuracy"]:
            mine = self.accuracy_record(Candidate.of_row(row), row["runtime"], name, run=False)
            ref = self.accuracy_record(self.reference, self.plan.reference_runtime, name, run=False)
            ok = mine and ref and mine.ok and ref.ok
            d = difference(mine.accuracy, ref.accuracy, METRIC_OF_SCORE[name]) if ok else None
            row["comparison"][name] = d.to_dict() if d else None
            verdicts.append(d.within(self.plan.tolerance) if d else None)
        row["within"] = False if False in verdicts else (None if None in verdicts else True)

    def _judge(self, winner: dict[str, Any]) -> dict[str, Any]:
        """Final figures on the judging set: the winner, the fp32 model at the winner's input size and the reference,
        pose mAP50-95 with intervals, and the winner's paired differences from the other two."""
        from posebench.evaluate.compare import difference

        chosen = Candidate.of_row(winner)
        runs = {"winner": (chosen, winner["runtime"]),
                "fp32 at the winner's size": (Candidate(tuple(winner["imgsz"])), winner["runtime"]),
                "reference": (self.reference, self.plan.reference_runtime)}
        records = {name: self.accuracy_record(c, rt, "judge") for name, (c, rt) in runs.items()}
        out: dict[str, Any] = {"data": str(self.plan.judge), "scores": {}, "differences": {}}
        for name, r in records.items():
            if r.ok:
                a = r.scores
                interval = a.interval("pose", "map50_95")
                out["scores"][name] = {"candidate": runs[name][0].name, "runtime": runs[name][1],
                                       "map50_95": a.score("pose", "map50_95"), "images": a.images,
                                       "interval": list(interval) if interval else None}
        mine = records["winner"]
        for name in ("fp32 at the winner's size", "reference"):
            other = records[name]
            if mine.ok and other.ok and mine is not other:
                d = difference(mine.accuracy, other.accuracy, "pose.map50_95")
                out["differences"][name] = d.to_dict() if d else None
        return out



def _score(record: Record | None) -> float | None:
    """Fidelity, or pose mAP50-95 with labels (None: no successful record)."""
    if record is None or not record.ok:
        return None
    return record.scores.headline


def pareto_front(rows: list[dict[str, Any]]) -> None:
    """Mark rows (p50_ms, worst accuracy) that no other row beats on both: `row["pareto"] = True`."""
    from posebench.pareto import pareto

    def worst(row: dict[str, Any]) -> float:
        return min((v for v in row["accuracy"].values() if v is not None), default=-1.0)

    front = {id(row) for row in pareto(rows, lambda r: r["p50_ms"], worst)}
    for row in rows:
        row["pareto"] = id(row) in front


def tune(plan: TunePlan, on_progress: Progress | None = None) -> dict[str, Any]:
    """Search `plan`'s space and return the summary (kept in OUT/tune.json; the winner deployed in OUT/winner/);
    `posebench.report.tune.write_tune_report` writes what a person reads."""
    return Tuner(plan, on_progress).run()
