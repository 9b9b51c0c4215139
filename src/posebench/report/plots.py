"""The report's figures (the thesis's 4.1-4.7): bars per metric and configuration, accuracy against latency
with the Pareto front, as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

from posebench.record import Accuracy
from posebench.report.model import LABELS, METRICS, Point, Report
from posebench.report.sections import config_of_record, p90_of, slug
from posebench.report.verdict import pareto_front


def png_bytes(fig: Any) -> bytes:
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

    several = len(report.machines) > 1
    out: dict[str, tuple[str, bytes]] = {}
    if report.primary:
        out.update(_accuracy_plots(report, plt))
    if report.points:
        out["latency"] = _latency_plot(report, plt, several)
        out.update(_pareto_plots(report, plt))
    if any(p.cost for p in report.points):
        out["cost"] = _cost_plot(report, plt)
    if report.e2e:
        out["e2e-stages"] = _e2e_plot(report, plt, several)
    return out


def _config_of(p: Point, several: bool) -> str:
    return f"{p.runtime}@{p.threads}" + (f" ({p.machine})" if several else "")


def _accuracy_plots(report: Report, plt: Any) -> dict[str, tuple[str, bytes]]:
    """Box and pose P, R, mAP50, mAP50-95 per variant, with 95 % whiskers (thesis Figures 4.1-4.4)."""
    out: dict[str, tuple[str, bytes]] = {}
    variants = report.variants()
    for kind in ("box", "pose"):
        fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), sharey=True)
        for ax, metric in zip(axes, METRICS):
            values, names, low, high = [], [], [], []
            for model, variant in variants:
                acc = report.accuracy_of(model, variant, None, report.primary)
                if acc:
                    values.append(Accuracy(acc).score(kind, metric))
                    names.append(variant if len({m for m, _ in variants}) == 1 else f"{model}\n{variant}")
                    ci = Accuracy(acc).interval(kind, metric)  # mAP50, mAP50-95 only
                    low.append(max(values[-1] - ci[0], 0) if ci else 0)
                    high.append(max(ci[1] - values[-1], 0) if ci else 0)
            ax.bar(range(len(values)), values, color="#4C72B0")
            if any(low) or any(high):  # 95 % whiskers (bootstrap over images)
                ax.errorbar(range(len(values)), values, yerr=[low, high], fmt="none", ecolor="#222",
                            elinewidth=1, capsize=3)
            ax.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=8)
            ax.set_title(f"{kind} {LABELS[metric]}")
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"{kind} accuracy per variant ({report.primary})", y=1.04)
        out[f"accuracy-{kind}"] = (f"Box and pose P, R, mAP50, mAP50-95 per variant (thesis Figures 4.1-4.4): "
                                   f"{kind}, evaluation {report.primary}; whiskers: 95 % bootstrap intervals "
                                   "over images (mAP50 and mAP50-95).", png_bytes(fig))
    return out


def _latency_plot(report: Report, plt: Any, several: bool) -> tuple[str, bytes]:
    """p50 per variant and configuration, a whisker to p99 and a tick at p90 (thesis Figure 4.5)."""
    configs = list(dict.fromkeys(_config_of(p, several) for p in report.points))
    names = list(dict.fromkeys(f"{p.model}/{p.variant}" for p in report.points))
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 1.2), 4.2))
    width = 0.8 / max(len(configs), 1)
    for ci, config in enumerate(configs):
        xs, ys, up90, up99 = [], [], [], []
        for ni, name in enumerate(names):
            match = [p for p in report.points if f"{p.model}/{p.variant}" == name and _config_of(p, several) == config]
            if match:
                xs.append(ni + ci * width - 0.4 + width / 2)
                ys.append(match[-1].p50_ms)
                up99.append(match[-1].p99_ms)
                up90.append(p90_of(report, match[-1]))
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
    return ("Latency per variant and configuration, p50 with its p90 and p99 (thesis Figure 4.5).",
            png_bytes(fig))


def _pareto_plots(report: Report, plt: Any) -> dict[str, tuple[str, bytes]]:
    """Per model: accuracy against latency with intervals and the resolvable Pareto front (Figures 4.6-4.7)."""
    out: dict[str, tuple[str, bytes]] = {}
    scored = [p for p in report.points if p.accuracy is not None]
    for model in dict.fromkeys(p.model for p in scored):  # one chart per model: models do not share an axis
        mine = [p for p in scored if p.model == model]
        fig, ax = plt.subplots(figsize=(8.5, 5))
        for runtime in dict.fromkeys(p.runtime for p in mine):
            theirs = [p for p in mine if p.runtime == runtime]
            dots = ax.scatter([p.mean_ms for p in theirs], [p.accuracy for p in theirs], label=runtime, s=36)
            ranged = [p for p in theirs if p.interval]
            if ranged:  # the accuracy's 95 % interval as a vertical bar through each point
                ax.errorbar([p.mean_ms for p in ranged], [p.accuracy for p in ranged],
                            yerr=[[max(p.accuracy - p.interval[0], 0) for p in ranged],
                                  [max(p.interval[1] - p.accuracy, 0) for p in ranged]],
                            fmt="none", ecolor=dots.get_facecolor()[0], elinewidth=0.9, capsize=2, alpha=0.7)
        front = pareto_front(mine, report)
        for n, p in enumerate(front):  # label the front only, alternating above and below: no overlaps
            ax.annotate(f"{p.variant} / {p.runtime}@{p.threads}", (p.mean_ms, p.accuracy), fontsize=7,
                        xytext=(5, 8 if n % 2 else -12), textcoords="offset points")
        ax.plot([p.mean_ms for p in front], [p.accuracy for p in front], "k--", lw=1, label="Pareto front")
        ax.set_xlabel("batch-1 latency, mean (ms)")
        ax.set_ylabel(f"pose {LABELS[report.metric]} ({report.primary})")
        ax.set_title(f"{model}: pose {LABELS[report.metric]} against latency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", borderaxespad=0)
        key = "pareto" if len({p.model for p in scored}) == 1 else f"pareto-{slug(model)}"
        out[key] = (f"{model}: pose {LABELS[report.metric]} against latency with 95 % intervals; the dashed "
                    "Pareto front steps to a slower configuration only where it is resolvably more accurate "
                    "(paired interval above zero) (thesis Figures 4.6-4.7).", png_bytes(fig))
    return out


def _cost_plot(report: Report, plt: Any) -> tuple[str, bytes]:
    """Latency against the price of a million frames, per configuration."""
    priced = [p for p in report.points if p.cost]
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
    return ("Latency against cost per million frames, per configuration (prices: see Cost per frame).",
            png_bytes(fig))


def _e2e_plot(report: Report, plt: Any, several: bool) -> tuple[str, bytes]:
    """Where a frame's time goes: pre-processing, inference, decode + NMS, per configuration."""
    rows = [(f"{r.identity.model}/{r.identity.variant}\n{config_of_record(report, r)}", r.extra.get("stages") or {})
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
    return ("End to end, frame in and poses out: time per stage (mean), per configuration.",
            png_bytes(fig))
