"""The plain answer: the fastest configuration within an accuracy drop, the most accurate within a latency
budget, the cheapest, and CPU against GPU; the Pareto front they come from."""

from __future__ import annotations

from posebench.evaluate.compare import within_words
from posebench.report.model import LABELS, Point, Report
from posebench.pareto import pareto


def pareto_front(points: list[Point], report: Report | None = None) -> list[Point]:
    """Configurations no other beats on both latency (lower) and pose mAP50 (higher). With the `report` the points
    come from, a slower configuration joins only when it is resolvably more accurate than the front's last one
    (paired interval on the same images above zero)."""
    return pareto(points, lambda p: p.mean_ms, lambda p: p.accuracy,
                  report.resolvably_better if report is not None else None)


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
