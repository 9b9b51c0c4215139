"""The records a report reads, combined once: latency rounds merged per trial, accuracy per evaluation,
configurations as `Point`s (latency, accuracy, cost and the paired gap from base)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

from posebench.errors import InvalidInputError
from posebench.evaluate.uncertainty import Difference
from posebench.record import Accuracy, Record, evaluation_label
from posebench.runtimes.base import runtime_class
from posebench.evaluate.compare import difference
from posebench.report.cost import Cost, PriceRule, load_prices, price

NOISY_SPREAD = 0.10  # rounds of one trial whose p50s differ by more than this are flagged

METRICS = ("precision", "recall", "map50", "map50_95")
LABELS = {"precision": "P", "recall": "R", "map50": "mAP50", "map50_95": "mAP50-95"}


@dataclass(frozen=True)
class Point:
    """One deployable configuration: a variant on a runtime, thread count and machine."""

    model: str
    variant: str
    runtime: str
    threads: int
    machine: str
    device: str  # "cpu" | "gpu"
    mean_ms: float
    p50_ms: float
    p99_ms: float
    accuracy: float | None  # pose mAP50 (or --metric) on the primary evaluation (None when not measured)
    cost: Cost | None = None  # what it costs at its mean latency (None: no price rule for its machine)
    gap: Difference | None = field(default=None, compare=False)  # accuracy - base's, paired interval (None: unknown)
    interval: tuple[float, float] | None = None  # the accuracy's 95 % bootstrap interval over images (None: unknown)
    scored: dict | None = field(default=None, compare=False, repr=False)  # the accuracy record's figures (pairing)

    @property
    def label(self) -> str:
        return f"{self.variant} / {self.runtime} @{self.threads} ({self.machine})"


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/:;,'\"()]+/)+[^\s/:;,'\"()]+")


def shown_reason(text: str) -> str:
    """A failure's reason as a report shows it: never a machine's absolute path. A study's own files are named
    from its output folder (OUT/variants/..., OUT/cache/...), any other file by its last two parts."""
    def shown(match: re.Match[str]) -> str:
        path = match.group(0)
        for folder in ("/variants/", "/cache/"):
            if folder in path:
                return "OUT" + path[path.index(folder):]
        return ".../" + "/".join(path.split("/")[-2:])

    return _ABSOLUTE_PATH.sub(shown, text)


def machine_name(record: Record) -> str:
    env = record.environment or {}
    cpu = str(env.get("cpu_model", "?")).replace("(R)", "").replace("(TM)", "").replace(" Processor", "")
    gpus = f" + {env['gpus'][0]}" if env.get("gpus") and device_kind(record) == "gpu" else ""
    # records made up for a test or an example (not measured) say so wherever their machine is named
    return f"{cpu}, {env.get('usable_cores', '?')} cores{gpus}" + (" [synthetic]" if record.extra.get("synthetic") else "")


def device_kind(record: Record) -> str:
    return "gpu" if runtime_class(record.identity.runtime).device == "gpu" or record.device == "gpu" else "cpu"


class Report:
    """Everything a report shows, computed once from the merged records."""

    def __init__(self, records: list[Record], *, evaluation: str | None = None, metric: str = "map50",
                 prices: list[PriceRule] | None = None):
        if metric not in METRICS:
            raise InvalidInputError(f"--metric must be one of {', '.join(METRICS)}, got '{metric}'")
        self.metric = metric
        self.prices = load_prices() if prices is None else prices
        self.synthetic = any(r.extra.get("synthetic") for r in records)
        self.records = records
        timed = [r for r in records if r.kind == "latency" and r.ok]
        # model mode (the runtime call, the thesis's) and end-to-end records answer different questions
        self.latency = combine_rounds([r for r in timed if r.identity.mode == "model"])
        self.e2e = combine_rounds([r for r in timed if r.identity.mode == "e2e"])
        self.probes = [r for r in records if r.kind == "probe"]
        self.accuracy = [r for r in records if r.kind == "accuracy" and r.ok]
        succeeded = {(r.kind, r.trial_id) for r in self.latency + self.e2e + self.accuracy}
        self.failed = [r for r in records if r.kind in ("latency", "accuracy") and not r.ok
                       and (r.kind, r.trial_id) not in succeeded]  # a failure later retried successfully is not shown
        if not self.latency and not self.accuracy and not self.e2e:
            raise InvalidInputError("the results hold no successful latency or accuracy record to report on")
        names = []
        for r in self.accuracy:
            name = self._evaluation_name(r)
            if name not in names:
                names.append(name)
        labelled = [n for n in names if any(self._evaluation_name(r) == n and r.evaluation_mode == "labels"
                                           for r in self.accuracy)]
        if evaluation is not None and evaluation not in names:
            raise InvalidInputError(f"no evaluation named '{evaluation}' in the results (have: {', '.join(names)})")
        self.evaluations = names
        self.primary = evaluation or (labelled[0] if labelled else (names[0] if names else None))
        self._gaps: dict[tuple[int, int], Difference | None] = {}
        self.points = self._points()
        self.e2e_points = self._points(self.e2e)
        self.machines = list(dict.fromkeys(machine_name(r) for r in self.latency + self.e2e))

    @staticmethod
    def _evaluation_name(record: Record) -> str:
        return evaluation_label(record.evaluation)

    def accuracy_of(self, model: str, variant: str, runtime: str | None, evaluation: str) -> dict | None:
        """The accuracy record of a variant (on `runtime` if measured there, else on any runtime)."""
        found = [r for r in self.accuracy if r.identity.model == model and r.identity.variant == variant
                 and self._evaluation_name(r) == evaluation]
        exact = [r for r in found if r.identity.runtime == runtime]
        preferred = [r for r in found if r.identity.runtime == "onnxruntime"]
        pick = (exact or preferred or found)
        return pick[-1].accuracy if pick else None

    def _points(self, records: list[Record] | None = None) -> list[Point]:
        points = []
        for r in self.latency if records is None else records:
            t = r.identity
            acc = self.accuracy_of(t.model, t.variant, t.runtime, self.primary) if self.primary else None
            if not runtime_class(t.runtime).runs_model:
                continue
            base = self.accuracy_of(t.model, "base", t.runtime, self.primary) if acc else None
            lat = r.latency_stats
            points.append(Point(t.model, t.variant, t.label, t.threads, machine_name(r), device_kind(r),
                                lat.mean_ms, lat.p50_ms, lat.p99_ms,
                                Accuracy(acc).score("pose", self.metric) if acc else None,
                                price(self.prices, r.environment or {}, device_kind(r), t.threads, lat.mean_ms),
                                self.gap(acc, base), self.interval_of(acc), acc))
        return points

    def interval_of(self, accuracy: dict | None) -> tuple[float, float] | None:
        """The primary metric's 95 % interval in an accuracy record (None: the record has none)."""
        return Accuracy(accuracy).interval("pose", self.metric) if accuracy else None

    def resolvably_better(self, a: Point, b: Point) -> bool | None:
        """Whether a's accuracy is above b's by a paired interval that excludes zero (None: no per-image matches
        to pair, or the same record)."""
        if self.metric not in ("map50", "map50_95"):  # P and R have no paired difference
            return None
        d = self.gap(a.scored, b.scored)
        return None if d is None else d.low > 0

    @property
    def gap_metric(self) -> str:
        """The metric paired comparisons use: pose mAP50 / mAP50-95 as --metric says (mAP50-95 for P and R)."""
        return "pose." + (self.metric if self.metric in ("map50", "map50_95") else "map50_95")

    def gap(self, accuracy: dict | None, base: dict | None) -> Difference | None:
        """accuracy - base's on the same images (paired bootstrap), computed once per pair of records."""
        if accuracy is None or base is None or accuracy is base:
            return None
        key = (id(accuracy), id(base))
        if key not in self._gaps:
            self._gaps[key] = difference(accuracy, base, self.gap_metric)
        return self._gaps[key]

    def config(self, record: Record) -> str:
        """'runtime@threads', with the machine when the results hold several."""
        t = record.identity
        return f"{t.label}@{t.threads}" + (f" ({machine_name(record)})" if len(self.machines) > 1 else "")

    def variants(self) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for r in self.latency + self.e2e + self.accuracy:
            key = (r.identity.model, r.identity.variant)
            if key not in seen:
                seen.append(key)
        return seen


def combine_rounds(records: list[Record]) -> list[Record]:
    """One latency record per configuration and machine: the median of its rounds' statistics, with each round's
    p50 in `rounds` (its `spread` flags a noisy trial beyond 10 %). The roofline figures are recomputed for the
    median p50."""
    import statistics

    from posebench.machine.roofline import cpu_peak, roofline

    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.identity.config_id, (r.environment or {}).get("machine_id", "?"))].append(r)
    combined = []
    for group in groups.values():
        group.sort(key=lambda r: (r.round or 1, r.created))
        last = group[-1]
        stats = [g.latency_stats for g in group]
        medians = {k: statistics.median(getattr(s, k) for s in stats) for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms")}
        compute = last.compute
        ops = last.artifact_facts.op_counts
        if ops and compute:
            compute = roofline(ops, medians["p50_ms"], cpu_peak(last.environment or {}, last.identity.threads))
        combined.append(replace(last, latency={**last.latency, **medians}, compute=compute,
                                rounds=tuple(s.p50_ms for s in stats)))
    return sorted(combined, key=lambda r: r.created)
