"""Turn result stores (from one or many machines) into a Markdown + self-contained HTML report.

Contents, after the thesis: the accuracy table (Table 4.1 columns), the latency table (Table 4.2:
variant x runtime/threads/machine), bar plots of P, R, mAP50, mAP50-95 per variant (Figures
4.1-4.4), latency per variant and configuration (4.5), pose mAP50 against latency with the Pareto
front (4.6-4.7), the verdict under an accuracy drop or latency budget, and every machine's
environment. The thesis's published numbers can be added as a clearly labelled reference.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError
from posebench.evaluate.uncertainty import Difference
from posebench.report.compare import difference, within_words
from posebench.report.cost import Cost, PriceRule, load_prices, price
from posebench.report.pareto import pareto
from posebench.results import merge, runtime_label
from posebench.tables import with_interval

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

    @property
    def label(self) -> str:
        return f"{self.variant} / {self.runtime} @{self.threads} ({self.machine})"


def _machine(record: dict[str, Any]) -> str:
    env = record.get("environment") or {}
    cpu = str(env.get("cpu_model", "?")).replace("(R)", "").replace("(TM)", "").replace(" Processor", "")
    gpus = f" + {env['gpus'][0]}" if env.get("gpus") and _device(record) == "gpu" else ""
    # records made up for a test or an example (not measured) say so wherever their machine is named
    return f"{cpu}, {env.get('usable_cores', '?')} cores{gpus}" + (" [synthetic]" if record.get("synthetic") else "")


def _device(record: dict[str, Any]) -> str:
    backend = record.get("backend") or {}
    return "gpu" if record["trial"]["runtime"] == "tensorrt" or backend.get("device") == "gpu" else "cpu"


class Report:
    """Everything a report shows, computed once from the merged records."""

    def __init__(self, records: list[dict[str, Any]], *, evaluation: str | None = None, metric: str = "map50",
                 prices: list[PriceRule] | None = None):
        if metric not in METRICS:
            raise InvalidInputError(f"--metric must be one of {', '.join(METRICS)}, got '{metric}'")
        self.metric = metric
        self.prices = load_prices() if prices is None else prices
        self.synthetic = any(r.get("synthetic") for r in records)
        self.records = records
        timed = [r for r in records if r.get("kind") == "latency" and r.get("status") == "ok"]
        # model mode (the runtime call, the thesis's) and end-to-end records answer different questions
        self.latency = combine_rounds([r for r in timed if r["trial"].get("mode", "model") == "model"])
        self.e2e = combine_rounds([r for r in timed if r["trial"].get("mode") == "e2e"])
        self.probes = [r for r in records if r.get("kind") == "probe"]
        self.accuracy = [r for r in records if r.get("kind") == "accuracy" and r.get("status") == "ok"]
        def key(r: dict[str, Any]) -> tuple[str, str]:
            return r["kind"], r.get("study_key") or r["trial_id"]

        succeeded = {key(r) for r in self.latency + self.e2e + self.accuracy}
        self.failed = [r for r in records if r.get("kind") in ("latency", "accuracy") and r.get("status") != "ok"
                       and key(r) not in succeeded]  # a failure later retried successfully is not shown
        if not self.latency and not self.accuracy and not self.e2e:
            raise InvalidInputError("the results hold no successful latency or accuracy record to report on")
        names = []
        for r in self.accuracy:
            name = self._evaluation_name(r)
            if name not in names:
                names.append(name)
        labelled = [n for n in names if any(self._evaluation_name(r) == n and r["evaluation"].get("mode") == "labels"
                                           for r in self.accuracy)]
        if evaluation is not None and evaluation not in names:
            raise InvalidInputError(f"no evaluation named '{evaluation}' in the results (have: {', '.join(names)})")
        self.evaluations = names
        self.primary = evaluation or (labelled[0] if labelled else (names[0] if names else None))
        self._gaps: dict[tuple[int, int], Difference | None] = {}
        self.points = self._points()
        self.e2e_points = self._points(self.e2e)
        self.machines = list(dict.fromkeys(_machine(r) for r in self.latency + self.e2e))

    @staticmethod
    def _evaluation_name(record: dict[str, Any]) -> str:
        ev = record.get("evaluation", {})
        if ev.get("name"):
            return str(ev["name"])
        if ev.get("mode") == "labels":
            return f"{ev.get('dataset')}:{ev.get('split')}"
        return f"fidelity:{Path(str(ev.get('source'))).name}"

    def accuracy_of(self, model: str, variant: str, runtime: str | None, evaluation: str) -> dict | None:
        """The accuracy record of a variant (on `runtime` if measured there, else on any runtime)."""
        found = [r for r in self.accuracy if r["trial"]["model"] == model and r["trial"]["variant"] == variant
                 and self._evaluation_name(r) == evaluation]
        exact = [r for r in found if r["trial"]["runtime"] == runtime]
        preferred = [r for r in found if r["trial"]["runtime"] == "onnxruntime"]
        pick = (exact or preferred or found)
        return pick[-1]["accuracy"] if pick else None

    def _points(self, records: list[dict[str, Any]] | None = None) -> list[Point]:
        points = []
        for r in self.latency if records is None else records:
            t = r["trial"]
            acc = self.accuracy_of(t["model"], t["variant"], t["runtime"], self.primary) if self.primary else None
            if t["runtime"] == "null":
                continue
            base = self.accuracy_of(t["model"], "base", t["runtime"], self.primary) if acc else None
            points.append(Point(t["model"], t["variant"], runtime_label(t), t["threads"], _machine(r), _device(r),
                                r["latency"]["mean_ms"], r["latency"]["p50_ms"], r["latency"]["p99_ms"],
                                acc["pose"][self.metric] if acc else None,
                                price(self.prices, r.get("environment") or {}, _device(r), t["threads"],
                                      r["latency"]["mean_ms"]),
                                self.gap(acc, base)))
        return points

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

    def config(self, record: dict[str, Any]) -> str:
        """'runtime@threads', with the machine when the results hold several."""
        t = record["trial"]
        return f"{runtime_label(t)}@{t['threads']}" + (f" ({_machine(record)})" if len(self.machines) > 1 else "")

    def variants(self) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for r in self.latency + self.e2e + self.accuracy:
            key = (r["trial"]["model"], r["trial"]["variant"])
            if key not in seen:
                seen.append(key)
        return seen


def cost_table(report: Report) -> list[list[str]]:
    """Every priced configuration, cheapest per frame first."""
    metric = f"pose {LABELS[report.metric]}"
    rows = [["configuration", "device", "priced as", "USD / h", "frames / s", "USD per million frames",
             "frames per USD", metric]]
    for p in sorted((p for p in report.points if p.cost), key=lambda p: p.cost.usd_per_million_frames):
        rows.append([p.label, p.device, p.cost.rule.name, f"{p.cost.usd_per_hour:.4f}",
                     f"{p.cost.frames_per_second:.1f}", f"{p.cost.usd_per_million_frames:.2f}",
                     f"{p.cost.frames_per_dollar:,.0f}", "-" if p.accuracy is None else f"{p.accuracy:.3f}"])
    return rows


def cost_notes(report: Report) -> list[str]:
    """How configurations were priced, with each price's source and date, and what was not priced."""
    used = list(dict.fromkeys(p.cost.rule for p in report.points if p.cost))
    notes = ["Cost: CPU rows at a per-vCPU-hour rate x threads (the machine's other vCPUs serve other streams), "
             "GPU rows at a per-GPU-hour rate for one batch-1 stream (an upper bound: a GPU can serve several). "
             "Throughput = 1000 / mean ms. Prices are indicative and dated; pass your own with --prices FILE."]
    notes += [f"{r.name}: {r.usd_per_gpu_hour if r.usd_per_gpu_hour else r.usd_per_vcpu_hour} USD per "
              f"{'GPU' if r.usd_per_gpu_hour else 'vCPU'}-hour; source: {r.source} ({r.date})." for r in used]
    unpriced = sorted({p.machine for p in report.points if p.cost is None})
    if unpriced:
        notes.append(f"Not priced (no rule matches): {'; '.join(unpriced)}.")
    return notes


def combine_rounds(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One latency record per trial and machine: the median of its rounds' statistics, with the rounds' p50s,
    their spread ((max - min) / min) and a `noisy` flag when the spread exceeds 10 %. The roofline figures are
    recomputed for the median p50."""
    import statistics

    from posebench.roofline import cpu_peak, roofline

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["trial_id"], (r.get("environment") or {}).get("machine_id", "?"))].append(r)
    combined = []
    for group in groups.values():
        group.sort(key=lambda r: (r.get("round", 1), r.get("created", "")))
        last = dict(group[-1])
        stats = [g["latency"] for g in group]
        last["latency"] = {**stats[-1], **{k: statistics.median(s[k] for s in stats)
                                          for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms") if k in stats[-1]}}
        p50s = [s["p50_ms"] for s in stats]
        last["rounds"] = p50s
        last["spread"] = (max(p50s) - min(p50s)) / min(p50s) if len(p50s) > 1 and min(p50s) > 0 else None
        last["noisy"] = bool(last["spread"] is not None and last["spread"] > NOISY_SPREAD)
        ops = (last.get("artifact") or {}).get("ops")
        if ops and last.get("compute"):
            last["compute"] = roofline(ops, last["latency"]["p50_ms"],
                                       cpu_peak(last.get("environment") or {}, last["trial"]["threads"]))
        combined.append(last)
    return sorted(combined, key=lambda r: r.get("created", ""))


def pareto_front(points: list[Point]) -> list[Point]:
    """Configurations no other beats on both latency (lower) and pose mAP50 (higher)."""
    return pareto(points, lambda p: p.mean_ms, lambda p: p.accuracy)


def judge_within(points: list[Point], reference: float, max_drop: float) -> tuple[list[Point], list[Point]]:
    """(within the drop, not resolved): a point with a paired interval is within when the interval says so and
    not resolved when it straddles -max_drop; one without (old records, the base itself) is judged on its value."""
    ok, unresolved = [], []
    for p in points:
        verdict = p.gap.within(max_drop) if p.gap is not None else p.accuracy >= reference - max_drop
        if verdict is None:
            unresolved.append(p)
        elif verdict:
            ok.append(p)
    if not ok:  # the base itself is always within
        ok = [max(points, key=lambda p: p.accuracy)]
    return ok, unresolved


def verdict(report: Report, *, max_drop: float, budget_ms: float | None) -> list[str]:
    """Plain sentences: fastest within the accuracy drop, most accurate within the budget, CPU vs GPU."""
    scored = [p for p in report.points if p.accuracy is not None]
    metric = f"pose {LABELS[report.metric]}"
    if not scored:
        return ["No configuration has both a latency and an accuracy record: run `posebench val` for the variants "
                "you timed (same model, variant and runtime) to get a verdict."]
    lines = []
    for model in dict.fromkeys(p.model for p in scored):
        mine = [p for p in scored if p.model == model]
        base = [p.accuracy for p in mine if p.variant == "base"]
        reference = max(base) if base else max(p.accuracy for p in mine)
        if max(p.accuracy for p in mine) < 0.01:
            lines.append(f"**{model}**: every variant scores ~0 {metric} on {report.primary} (random weights built "
                         "from a model YAML?): latency only; no accuracy verdict.")
            continue
        ok, unresolved = judge_within(mine, reference, max_drop)
        fastest = min(ok, key=lambda p: p.mean_ms)
        lines.append(f"**{model}**: fastest configuration within {max_drop:.3f} {metric} of "
                     f"{'base' if base else 'the best variant'} ({reference:.3f}): **{fastest.label}**, "
                     f"{fastest.mean_ms:.2f} ms mean ({fastest.p99_ms:.2f} ms p99), {metric} {fastest.accuracy:.3f}"
                     + (f"; paired difference from base {within_words(fastest.gap, max_drop)}." if fastest.gap
                        else "."))
        quicker = [p for p in unresolved if p.mean_ms < fastest.mean_ms]
        if quicker:
            q = min(quicker, key=lambda p: p.mean_ms)
            lines.append(f"Faster but not resolved: **{q.label}** ({q.mean_ms:.2f} ms, {metric} {q.accuracy:.3f}), "
                         f"{within_words(q.gap, max_drop)}; these images cannot say whether it is within "
                         f"{max_drop:.3f} (more images would).")
        if budget_ms is not None:
            within = [p for p in mine if p.mean_ms <= budget_ms]
            if within:
                best = max(within, key=lambda p: (p.accuracy, -p.mean_ms))
                lines.append(f"Most accurate within {budget_ms:g} ms: **{best.label}**, {metric} {best.accuracy:.3f} "
                             f"at {best.mean_ms:.2f} ms.")
            else:
                lines.append(f"No configuration meets the {budget_ms:g} ms budget (fastest: "
                             f"{min(mine, key=lambda p: p.mean_ms).mean_ms:.2f} ms).")
        e2e = [p for p in report.e2e_points if p.model == model and p.accuracy is not None]
        if e2e and budget_ms is not None:
            within = [p for p in e2e if p.p99_ms <= budget_ms]
            if within:
                best = max(within, key=lambda p: (p.accuracy, -p.p99_ms))
                lines.append(f"End to end (frame in, poses out), most accurate within {budget_ms:g} ms at p99: "
                             f"**{best.label}**, {metric} {best.accuracy:.3f} at {best.p99_ms:.2f} ms p99 "
                             f"({best.p50_ms:.2f} ms p50).")
            else:
                quickest = min(e2e, key=lambda p: p.p99_ms)
                lines.append(f"End to end, no configuration meets {budget_ms:g} ms at p99 (best: {quickest.label}, "
                             f"{quickest.p99_ms:.2f} ms p99).")
        priced = [p for p in ok if p.cost is not None and (budget_ms is None or p.mean_ms <= budget_ms)]
        if priced:
            cheapest = min(priced, key=lambda p: (p.cost.usd_per_million_frames, p.mean_ms))
            lines.append(f"Cheapest configuration within {max_drop:.3f} {metric}"
                         + (f" and {budget_ms:g} ms" if budget_ms is not None else "") +
                         f": **{cheapest.label}**, ${cheapest.cost.usd_per_million_frames:.2f} per million frames "
                         f"({cheapest.mean_ms:.2f} ms mean, priced as {cheapest.cost.rule.name}).")
        elif any(p.cost for p in ok):
            lines.append(f"Cheapest configuration: none of the priced ones meets the {budget_ms:g} ms budget.")
        gpu = [p for p in ok if p.device == "gpu"]
        cpu = [p for p in ok if p.device == "cpu"]
        if not gpu:
            lines.append("CPU or GPU? No GPU measurement is present in these results (GPU rows absent or skipped), so "
                         "this report cannot compare: add a "
                         "store measured on a GPU machine (torch[device=cuda], tensorrt or onnxruntime --ort-provider cuda).")
        elif cpu:
            best_cpu, best_gpu = min(cpu, key=lambda p: p.mean_ms), min(gpu, key=lambda p: p.mean_ms)
            faster = best_cpu.mean_ms <= best_gpu.mean_ms
            lines.append(f"CPU or GPU? Within the accuracy drop, the best CPU configuration ({best_cpu.label}, "
                         f"{best_cpu.mean_ms:.2f} ms) is {'faster than' if faster else 'slower than'} the best GPU one "
                         f"({best_gpu.label}, {best_gpu.mean_ms:.2f} ms): "
                         f"{'a CPU can replace the GPU here.' if faster else 'the GPU keeps its edge here.'}")
    return lines


# ---- plots ----------------------------------------------------------------------------------------------

def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plots(report: Report) -> dict[str, tuple[str, bytes]]:
    """name -> (caption, PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, bytes]] = {}
    variants = report.variants()
    if report.primary:
        for kind in ("box", "pose"):
            fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), sharey=True)
            for ax, metric in zip(axes, METRICS):
                values, names = [], []
                for model, variant in variants:
                    acc = report.accuracy_of(model, variant, None, report.primary)
                    if acc:
                        values.append(acc[kind][metric])
                        names.append(variant if len({m for m, _ in variants}) == 1 else f"{model}\n{variant}")
                ax.bar(range(len(values)), values, color="#4C72B0")
                ax.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=8)
                ax.set_title(f"{kind} {LABELS[metric]}")
                ax.set_ylim(0, 1)
                ax.grid(axis="y", alpha=0.3)
            fig.suptitle(f"{kind} accuracy per variant ({report.primary})", y=1.04)
            out[f"accuracy-{kind}"] = (f"Box and pose P, R, mAP50, mAP50-95 per variant (thesis Figures 4.1-4.4): "
                                       f"{kind}, evaluation {report.primary}.", _png(fig))
    several = len(report.machines) > 1

    def config_of(p: Point) -> str:
        return f"{p.runtime}@{p.threads}" + (f" ({p.machine})" if several else "")

    if report.points:
        configs = list(dict.fromkeys(config_of(p) for p in report.points))
        names = list(dict.fromkeys(f"{p.model}/{p.variant}" for p in report.points))
        fig, ax = plt.subplots(figsize=(max(8, len(names) * 1.2), 4.2))
        width = 0.8 / max(len(configs), 1)
        for ci, config in enumerate(configs):
            xs, ys, up90, up99 = [], [], [], []
            for ni, name in enumerate(names):
                match = [p for p in report.points if f"{p.model}/{p.variant}" == name and config_of(p) == config]
                if match:
                    xs.append(ni + ci * width - 0.4 + width / 2)
                    ys.append(match[-1].p50_ms)
                    up99.append(match[-1].p99_ms)
                    up90.append(_p90(report, match[-1]))
            ax.bar(xs, ys, width=width, label=config)
            # the spread: a whisker from p50 up to p99, a tick at p90
            ax.errorbar(xs, ys, yerr=[[0] * len(ys), [max(u - y, 0) for u, y in zip(up99, ys)]], fmt="none",
                        ecolor="#333", elinewidth=0.8, capsize=2)
            ax.scatter(xs, up90, marker="_", color="#333", s=40, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("batch-1 latency, p50 (ms); whisker to p99, tick at p90")
        ax.set_title("Model-mode latency per variant and configuration"
                     + (f" ({report.machines[0]})" if not several and report.machines else ""))
        ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left", borderaxespad=0)
        ax.grid(axis="y", alpha=0.3)
        out["latency"] = ("Latency per variant and configuration, p50 with its p90 and p99 (thesis Figure 4.5).",
                          _png(fig))
        scored = [p for p in report.points if p.accuracy is not None]
        for model in dict.fromkeys(p.model for p in scored):  # one chart per model: models do not share an axis
            mine = [p for p in scored if p.model == model]
            fig, ax = plt.subplots(figsize=(8.5, 5))
            for runtime in dict.fromkeys(p.runtime for p in mine):
                theirs = [p for p in mine if p.runtime == runtime]
                ax.scatter([p.mean_ms for p in theirs], [p.accuracy for p in theirs], label=runtime, s=36)
            front = pareto_front(mine)
            for n, p in enumerate(front):  # label the front only, alternating above and below: no overlaps
                ax.annotate(f"{p.variant} / {p.runtime}@{p.threads}", (p.mean_ms, p.accuracy), fontsize=7,
                            xytext=(5, 8 if n % 2 else -12), textcoords="offset points")
            ax.plot([p.mean_ms for p in front], [p.accuracy for p in front], "k--", lw=1, label="Pareto front")
            ax.set_xlabel("batch-1 latency, mean (ms)")
            ax.set_ylabel(f"pose {LABELS[report.metric]} ({report.primary})")
            ax.set_title(f"{model}: pose {LABELS[report.metric]} against latency")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", borderaxespad=0)
            key = "pareto" if len({p.model for p in scored}) == 1 else f"pareto-{_slug(model)}"
            out[key] = (f"{model}: pose {LABELS[report.metric]} against latency, Pareto front dashed (thesis "
                        "Figures 4.6-4.7).", _png(fig))
    priced = [p for p in report.points if p.cost]
    if priced:
        fig, ax = plt.subplots(figsize=(8.5, 5))
        for device, marker in (("cpu", "o"), ("gpu", "s")):
            mine = [p for p in priced if p.device == device]
            if mine:
                ax.scatter([p.cost.usd_per_million_frames for p in mine], [p.mean_ms for p in mine], marker=marker,
                           s=36, label=device.upper())
        cheapest = sorted(priced, key=lambda p: p.cost.usd_per_million_frames)[:6]
        for n, p in enumerate(cheapest):  # the cheapest few labelled, alternating above and below
            ax.annotate(f"{p.model}/{p.variant} / {p.runtime}@{p.threads}", (p.cost.usd_per_million_frames, p.mean_ms),
                        fontsize=7, xytext=(5, 8 if n % 2 else -12), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("USD per million frames (log scale)")
        ax.set_ylabel("batch-1 latency, mean (ms)")
        ax.set_title("Latency against cost per frame" + (" (includes synthetic records)" if report.synthetic else ""))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", borderaxespad=0)
        out["cost"] = ("Latency against cost per million frames, per configuration (prices: see Cost per frame).",
                       _png(fig))
    if report.e2e:
        rows = [(f"{r['trial']['model']}/{r['trial']['variant']}\n{config_of_record(report, r)}", r.get("stages") or {})
                for r in report.e2e]
        fig, ax = plt.subplots(figsize=(max(7, len(rows) * 1.1), 4.2))
        bottom = [0.0] * len(rows)
        for stage, colour, label in (("pre", "#DD8452", "pre-processing"), ("infer", "#4C72B0", "inference"),
                                     ("post", "#55A868", "decode + NMS")):
            values = [st.get(stage, {}).get("mean_ms", 0.0) for _, st in rows]
            ax.bar(range(len(rows)), values, bottom=bottom, color=colour, label=label)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("end-to-end time per frame, mean (ms)")
        ax.set_title("Where a frame's time goes" + (f" ({report.machines[0]})" if not several and report.machines
                                                    else ""))
        ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", borderaxespad=0)
        ax.grid(axis="y", alpha=0.3)
        out["e2e-stages"] = ("End to end, frame in and poses out: time per stage (mean), per configuration.",
                             _png(fig))
    return out


def _p90(report: Report, point: Point) -> float:
    for r in report.latency:
        t = r["trial"]
        if (t["model"], t["variant"], runtime_label(t), t["threads"], _machine(r)) == \
                (point.model, point.variant, point.runtime, point.threads, point.machine):
            return float(r["latency"].get("p90_ms", point.p50_ms))
    return point.p50_ms


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _pipeline_name(trial: dict[str, Any]) -> str:
    """'fused' / 'vectorised' / 'reference' (posebench's pipeline, by pre-processing path) or 'ultralytics'."""
    pipeline = trial.get("pipeline") or {}
    return str(pipeline.get("preprocess") or pipeline.get("pipeline") or "-")


def config_of_record(report: Report, record: dict[str, Any]) -> str:
    return f"{report.config(record)}, {_pipeline_name(record['trial'])}"


# ---- tables ---------------------------------------------------------------------------------------------

def accuracy_table(report: Report, evaluation: str) -> list[list[str]]:
    gap_label = f"{LABELS[report.gap_metric.split('.')[1]]} vs base (paired, points)"
    header = ["model", "variant", "runtime", *(f"Box {LABELS[m]}" for m in METRICS),
              *(f"Pose {LABELS[m]}" for m in METRICS), "COCO AP / fidelity", "images", gap_label]
    rows = [header]
    for r in report.accuracy:
        if Report._evaluation_name(r) != evaluation:
            continue
        a, t = r["accuracy"], r["trial"]
        extra = with_interval(a, "coco", "AP") if (a.get("coco") or {}).get("AP") is not None else "-"
        base = report.accuracy_of(t["model"], "base", t["runtime"], evaluation)
        gap = report.gap(a, base)
        rows.append([t["model"], t["variant"], t["runtime"], *(with_interval(a, "box", m) for m in METRICS),
                     *(with_interval(a, "pose", m) for m in METRICS), extra, str(a["images"]),
                     gap.describe() if gap else "-"])
    return rows


def latency_table(report: Report) -> list[list[str]]:
    """Variant rows x runtime@threads (machine) columns: mean / p50 / p99 ms (null: the harness's overhead)."""
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    configs: list[str] = []
    for r in report.latency:
        t, lat = r["trial"], r["latency"]
        config = report.config(r)
        configs.append(config)
        cells[(t["model"], t["variant"])][config] = f"{lat['mean_ms']:.2f} / {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f}"
    configs = list(dict.fromkeys(configs))
    rows = [["model", "variant", *configs]]
    for (model, variant), by_config in cells.items():
        rows.append([model, variant, *(by_config.get(c, "-") for c in configs)])
    return rows


def rounds_table(report: Report) -> list[list[str]]:
    """Per configuration: p50 of each round and their spread (flagged > 10 %), work per inference, achieved
    GOP/s and the fraction of the machine's peak (flagged beyond it), and warnings (int8 path mismatch)."""
    from posebench.denormals import has_denormals

    rows = [["model", "variant", "runtime@threads", "machine", "p50 per round (ms)", "spread", "GOP / inference",
             "achieved GOP/s", "% of peak", "notes"]]
    for r in report.latency:
        t = r["trial"]
        if t["runtime"] == "null":
            continue
        spread = r.get("spread")
        compute = r.get("compute") or {}
        ops = (r.get("artifact") or {}).get("ops") or {}
        notes = list(r.get("warnings", []))
        if r.get("noisy"):
            notes.insert(0, f"NOISY: rounds differ by {spread:.1%} (> {NOISY_SPREAD:.0%})")
        subnormal = (r.get("artifact") or {}).get("denormals")
        if has_denormals(subnormal):
            ftz = (r["trial"].get("options") or {}).get("flush_denormals")
            notes.insert(0, f"DENORMALS: {subnormal['activations_fraction']:.2%} of activations, "
                            f"{subnormal['weights_fraction']:.2%} of weights subnormal"
                            + (" (flushed to zero here)" if ftz else f"; try {t['runtime']}[flush_denormals=true]"))
        if compute.get("beyond_peak"):
            notes.insert(0, f"ABOVE PEAK ({compute['fraction_of_peak']:.0%}): less arithmetic than counted ran (zeros "
                            "skipped, fast-convolution algorithms) or the clock beats the estimate")
        rows.append([t["model"], t["variant"], f"{runtime_label(t)}@{t['threads']}", _machine(r),
                     " / ".join(f"{v:.2f}" for v in r.get("rounds", [])),
                     f"{spread:.1%}" if spread is not None else "1 round",
                     f"{ops['ops'] / 1e9:.2f}" + (f" ({ops['int8_ops'] / ops['ops']:.0%} int8)" if ops.get("int8_ops")
                                                 else "") if ops.get("ops") else "-",
                     f"{compute['gops']:.1f}" if compute else "-",
                     f"{compute['fraction_of_peak']:.0%}" if compute else "-", "; ".join(notes)])
    return rows


def e2e_table(report: Report) -> list[list[str]]:
    """End-to-end rows: each stage's p50 (pre-processing, inference, decode + NMS), the total's p50 / p90 / p99,
    and the total over the same configuration's model-mode p50 (what the pipeline adds)."""
    model_p50 = {(r["trial"]["model"], r["trial"]["variant"], report.config(r)): r["latency"]["p50_ms"]
                 for r in report.latency}
    rows = [["model", "variant", "runtime@threads", "pipeline", "pre p50", "infer p50", "post p50",
             "total p50", "p90", "p99", "x model mode", "frames from"]]
    for r in report.e2e:
        t, lat, st = r["trial"], r["latency"], r.get("stages") or {}
        mm = model_p50.get((t["model"], t["variant"], report.config(r)))
        pipeline = t.get("pipeline") or {}
        rows.append([t["model"], t["variant"], report.config(r), _pipeline_name(t),
                     *(f"{st[k]['p50_ms']:.2f}" if k in st else "-" for k in ("pre", "infer", "post")),
                     f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}", f"{lat['p99_ms']:.2f}",
                     f"{lat['p50_ms'] / mm:.2f}" if mm else "-", str(pipeline.get("source", "-"))])
    return rows


def peak_notes(report: Report) -> list[str]:
    """How each machine's peak was estimated (one line per machine)."""
    seen: dict[str, str] = {}
    for r in report.latency:
        basis = (r.get("compute") or {}).get("peak_basis")
        if basis:
            seen.setdefault(_machine(r) + f", {r['trial']['threads']} thread(s)", basis)
    return [f"{machine}: {basis}" for machine, basis in seen.items()]


def probe_lines(report: Report) -> list[str]:
    """The quietness probes of each study in the results, and whether the machine was noisy."""
    from posebench.probe import quietness

    lines = []
    for study in dict.fromkeys(p.get("study") for p in report.probes):
        noisy, text = quietness([p for p in report.probes if p.get("study") == study])
        lines.append(f"{'NOISY machine' if noisy else 'Quiet machine'} during study '{study}' "
                     f"({_machine(next(p for p in report.probes if p.get('study') == study))}): {text}.")
    return lines


def thesis_plausibility() -> list[list[str]]:
    """Each published thesis latency against the peak of its machine, with the arithmetic."""
    from posebench.report import thesis
    from posebench.roofline import thesis_peak

    rows = [["variant (thesis)", "configuration", "published ms", "work assumed (GOP)", "fastest possible ms",
             "x peak", "verdict"]]
    for variant, configs in thesis.LATENCY_MS.items():
        for config, ms in configs.items():
            work = thesis.work_gops(variant)
            peak = thesis_peak(config)
            int8 = "int8" in variant
            bound = work["ops"] / (peak.int8_gops if int8 else peak.fp32_gops) * 1e3
            ratio = bound / ms
            verdict_text = ("plausible" if ratio <= 1 else
                            "beyond peak: possible only with fast-convolution algorithms (<= 2.25x fewer multiplies)"
                            if ratio <= 2.25 else "beyond peak: impossible for one batch-1 inference")
            rows.append([variant, config, f"{ms:.3f}", f"{work['ops']:.2f} ({work['why']})", f"{bound:.3f}",
                         f"{ratio:.1f}x", verdict_text])
    return rows


def environments(report: Report) -> list[list[str]]:
    rows = [["machine", "CPU", "cores", "ISA", "key versions"]]
    seen = set()
    for r in report.records:
        env = r.get("environment")
        if not env or env.get("machine_id") in seen:
            continue
        seen.add(env.get("machine_id"))
        versions = env.get("versions", {})
        keep = ("torch", "onnxruntime", "openvino", "deepsparse", "ultralytics", "tensorrt")
        rows.append([env.get("machine_id", "?"), str(env.get("cpu_model")), str(env.get("usable_cores")),
                     " ".join(env.get("isa", [])), ", ".join(f"{k} {versions[k]}" for k in keep if k in versions)])
    return rows


def thesis_tables() -> tuple[list[list[str]], list[list[str]]]:
    from posebench.report import thesis

    acc = [["variant (thesis)", *(f"Box {LABELS[m]}" for m in METRICS), *(f"Pose {LABELS[m]}" for m in METRICS)]]
    acc += [[k, *(f"{v:.3f}" for v in vals)] for k, vals in thesis.ACCURACY.items()]
    configs = ["8-core", "15-core", "30-core", "GPU"]
    lat = [["variant (thesis)", *(f"{c} (ms)" for c in configs)]]
    lat += [[k, *(f"{v[c]:.3f}" if c in v else "-" for c in configs)] for k, v in thesis.LATENCY_MS.items()]
    return acc, lat


def _markdown_table(rows: list[list[str]]) -> str:
    if len(rows) < 2:
        return "_(no rows)_\n"
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return "\n".join(out) + "\n"


def thesis_beside(report: Report) -> list[list[str]]:
    """The thesis's Table 4.2 (8-core DeepSparse) beside this run's DeepSparse rows of the same variant names
    (base, int8, p50, p50-int8, ...), each with its model, input size and cores, and its speed-up over its own
    dense fp32 row: absolute times on different machines and models do not compare, speed-ups do."""
    from posebench.report import thesis

    measured: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for r in report.latency:
        t = r["trial"]
        if t["runtime"] == "deepsparse":
            measured[(t["model"], t["variant"], t["threads"], str(r.get("environment", {}).get("machine_id")))] = r
    rows = [["variant", "thesis: model, imgsz, cores", "thesis ms", "thesis x vs sml-base", "measured: model, imgsz, cores",
             "measured p50 ms", "measured x vs base", "DeepSparse artifact"]]
    base_ms = thesis.LATENCY_MS["sml-base"]["8-core"]
    for (model, variant, threads, machine), r in sorted(measured.items(),
                                                        key=lambda kv: (kv[0][3], kv[0][0], kv[0][2])):
        published = thesis.LATENCY_MS.get(f"sml-{variant}", {}).get("8-core")
        if published is None:
            continue
        base = measured.get((model, "base", threads, machine))
        p50 = r["latency"]["p50_ms"]
        size = "x".join(str(v) for v in r["trial"]["imgsz"])
        rows.append([variant, "YOLOv8s-pose, 512x512, 8 (AMD Genoa)", f"{published:.3f}", f"{base_ms / published:.2f}",
                     f"{model}, {size}, {threads} ({_machine(r)})", f"{p50:.2f}",
                     f"{base['latency']['p50_ms'] / p50:.2f}" if base else "-",
                     str((r.get("artifact") or {}).get("form") or "onnx")])
    return rows


def _html_table(rows: list[list[str]]) -> str:
    if len(rows) < 2:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build_report(paths: list[Path], out: Path, *, max_drop: float = 0.01, budget_ms: float | None = None,
                 evaluation: str | None = None, thesis: bool = False, metric: str = "map50",
                 prices: Path | None = None) -> tuple[Path, Path]:
    """Write OUT/report.md (PNGs beside it) and OUT/report.html (plots embedded); returns both paths."""
    for p in paths:
        if not Path(p).is_file():
            raise InvalidInputError(f"results file {p} does not exist")
    if not 0 <= max_drop < 1:
        raise InvalidInputError(f"--max-drop must be in [0, 1), got {max_drop}")
    report = Report(merge(paths), evaluation=evaluation, metric=metric, prices=load_prices(prices))
    out.mkdir(parents=True, exist_ok=True)
    figures = plots(report)
    sections: list[tuple[str, str, str]] = []  # (title, markdown, html)
    lines = verdict(report, max_drop=max_drop, budget_ms=budget_ms)
    few = sorted({r["accuracy"]["images"] for r in report.accuracy if Report._evaluation_name(r) == report.primary})
    if few and few[0] < 20:
        lines.append(f"Caution: the primary evaluation ({report.primary}) has only {few[0]} images; accuracy "
                     "differences of a few points are within its noise.")
    sections.append(("Verdict", "\n\n".join(lines) + "\n",
                     "".join(f"<p>{html.escape(l).replace('**', '')}</p>" for l in lines)))
    for name in report.evaluations:
        rows = accuracy_table(report, name)
        sections.append((f"Accuracy: {name}", _markdown_table(rows), _html_table(rows)))
    rows = latency_table(report)
    sections.append(("Latency (ms: mean / p50 / p99, batch 1)", _markdown_table(rows), _html_table(rows)))
    if report.e2e:
        rows = e2e_table(report)
        note = ("Frame in, poses out: decoded frames (uint8, the source's size) through letterbox, normalisation, the "
                "runtime, decode + NMS (conf 0.25, as predict) and back to frame pixels; each stage timed per frame. "
                "Pipeline: posebench's by pre-processing path (fused into the model, vectorised, reference), or "
                "'ultralytics' (its own predict around the same artifact, stages as it reports them). "
                "'x model mode' is the total over the same configuration's model-mode p50.")
        sections.append(("End to end (ms, batch 1)", f"{note}\n\n{_markdown_table(rows)}",
                         f"<p>{html.escape(note)}</p>{_html_table(rows)}"))
    rows = rounds_table(report)
    notes = probe_lines(report) + [f"Peak: {line}" for line in peak_notes(report)] + [
        f"Rounds: each trial's statistics are the median of its interleaved rounds; a spread over "
        f"{NOISY_SPREAD:.0%} is flagged NOISY. Work: multiply-accumulates x2 of every Conv/MatMul in the ONNX "
        "graph (element-wise ops left out); % of peak = fastest possible time at the peak / measured p50."]
    sections.append(("Noise and roofline", "\n\n".join(notes) + "\n\n" + _markdown_table(rows),
                     "".join(f"<p>{html.escape(n)}</p>" for n in notes) + _html_table(rows)))
    for key, (caption, png) in figures.items():
        (out / f"{key}.png").write_bytes(png)
        encoded = base64.b64encode(png).decode()
        sections.append((caption.split(" (")[0], f"![{caption}]({key}.png)\n\n{caption}\n",
                         f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>"))
    front = pareto_front(report.points)
    if front:
        rows = [["configuration", "mean ms", f"pose {LABELS[report.metric]}"]] + [[p.label, f"{p.mean_ms:.2f}", f"{p.accuracy:.3f}"]
                                                              for p in front]
        sections.append(("Pareto front", _markdown_table(rows), _html_table(rows)))
    if any(p.cost for p in report.points) or report.points:
        rows, notes = cost_table(report), cost_notes(report)
        sections.append(("Cost per frame", "\n\n".join(notes) + ("\n\n" + _markdown_table(rows) if len(rows) > 1
                                                                   else "\n"),
                         "".join(f"<p>{html.escape(n)}</p>" for n in notes) + (_html_table(rows) if len(rows) > 1
                                                                               else "")))
    if report.failed:
        rows = [["kind", "variant", "runtime", "status", "reason"]] + [
            [r["kind"], r["trial"]["variant"], r["trial"]["runtime"], r.get("status", ""), str(r.get("error", ""))[:300]]
            for r in report.failed]
        sections.append(("Skipped or failed trials", _markdown_table(rows), _html_table(rows)))
    rows = environments(report)
    sections.append(("Machines", _markdown_table(rows), _html_table(rows)))
    if thesis:
        acc, lat = thesis_tables()
        note = ("External reference, not measured here: the 2024 thesis's published numbers for YOLOv8s-pose "
                "(SparseML/DeepSparse on AMD Genoa, TensorRT on Jetson AGX Orin, COCO-pose val, imgsz 512).")
        sections.append(("Thesis reference (published, not measured here)",
                         f"{note}\n\n{_markdown_table(acc)}\n{_markdown_table(lat)}",
                         f"<p><em>{html.escape(note)}</em></p>{_html_table(acc)}{_html_table(lat)}"))
        beside = thesis_beside(report)
        if len(beside) > 1:
            note = ("The thesis's DeepSparse rows (Table 4.2, 8 cores) beside this run's DeepSparse rows of the same "
                    "names; compare the speed-ups over each side's own dense fp32 row, not the milliseconds.")
            sections.append(("Thesis Table 4.2 beside this run (DeepSparse)", f"{note}\n\n{_markdown_table(beside)}",
                             f"<p>{html.escape(note)}</p>{_html_table(beside)}"))
        plaus = thesis_plausibility()
        from posebench.roofline import thesis_peak

        how = ("Each published latency against the fastest its machine could run the model (work / peak). Peaks, "
               "generous on purpose: " + "; ".join(f"{c}: {thesis_peak(c).basis}" for c in
                                                  ("8-core", "15-core", "30-core", "GPU")) +
               ". Work: YOLOv8s-pose at 512x512 counted by posebench on its ONNX export; int8 variants at the int8 "
               "peak; pruned variants with their zeros skipped (the most DeepSparse could do).")
        sections.append(("Thesis latencies: plausible or beyond peak?", f"{how}\n\n{_markdown_table(plaus)}",
                         f"<p>{html.escape(how)}</p>{_html_table(plaus)}"))
    title = "posebench report"
    if report.synthetic:
        sections.insert(0, ("Synthetic records", "**These results include synthetic records** (made up for a test or "
                            "an example, not measured); their machines are marked [synthetic].\n",
                            "<p><strong>These results include synthetic records</strong> (made up for a test or an "
                            "example, not measured); their machines are marked [synthetic].</p>"))
    machine = f"Machine: {report.machines[0]}. " if len(report.machines) == 1 else \
        (f"Machines: {'; '.join(report.machines)}. " if report.machines else "")
    md = [f"# {title}", "", machine + f"Primary evaluation: {report.primary or 'none'}; accuracy drop allowed "
          f"{max_drop:.3f} pose {LABELS[report.metric]}" + (f"; latency budget {budget_ms:g} ms" if budget_ms else "")
          + ".", ""]
    md += [f"## {t}\n\n{m}" for t, m, _ in sections]
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text("\n".join(md))
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
             "figcaption{font-size:13px;color:#555}")
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, _, h in sections)
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
                         f"<style>{style}</style></head><body><h1>{title}</h1>"
                         f"<p>{html.escape(md[2])}</p>{body}</body></html>")
    return md_path, html_path
