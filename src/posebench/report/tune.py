"""The report of `posebench tune`: what won, why, and what it costs in accuracy (OUT/tune.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posebench.machine.environment import ran_as


def _acc(row: dict[str, Any]) -> str:
    return " / ".join("-" if v is None else f"{v:.4f}" for v in row["accuracy"].values())


def shown(path: str | None, out: str | None = None) -> str:
    """A path as a report names it: relative to the tune's output folder when inside it, else to the working
    folder; never a machine's absolute path."""
    import os

    if not path:
        return "?"
    if out and os.path.abspath(path).startswith(os.path.abspath(out) + os.sep):
        return os.path.relpath(path, out)
    return os.path.relpath(path)


def _gap(d: dict[str, Any] | None, tolerance: float | None) -> str:
    """'-0.0031 [-0.0102, +0.0040]: not resolved' from a Difference's dict."""
    from posebench.evaluate.uncertainty import Difference

    if not d:
        return "-"
    diff = Difference.from_dict(d)
    text = f"{diff.estimate:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]"
    if tolerance is None:
        return text + ("" if diff.resolved else ", not resolved")
    state = {True: "within" + ("" if diff.resolved else " (sign not resolved)"), False: "below the floor",
             None: "not resolved"}[diff.within(tolerance)]
    return f"{text}: {state}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def tune_markdown(summary: dict[str, Any]) -> str:
    """Markdown of a tune summary (`posebench.tune.tune`)."""
    metrics = " / ".join(["fidelity"] + (["pose mAP50-95"] if summary.get("labels") else []))
    lines = _question_lines(summary, metrics) + _verdict_lines(summary, metrics) + _judged_lines(summary) + \
        _candidate_lines(summary, metrics)
    return "\n".join(lines)


def _question_lines(summary: dict[str, Any], metrics: str) -> list[str]:
    """The title, the machine, the goal, and what each part of the footage was used for."""
    env = summary["environment"]
    calibration = summary["calibration"]
    ref = summary["reference"]
    lines = [f"# posebench tune: {summary['model']} for {shown(summary['footage'])}", "",
             f"Machine: {env.get('cpu_model')} ({ran_as(env)}), {env.get('usable_cores')} usable cores.",
             "", "## Question and data", "",
             ("Goal: the fastest deployment whose accuracy is within "
              f"{summary['goal']['tolerance']:g} of the reference's" if "tolerance" in summary["goal"] else
              f"Goal: the most accurate deployment with a model-mode p50 under {summary['goal']['budget_ms']:g} ms") +
             f" ({metrics}). The reference is Ultralytics' own `yolo export format=openvino int8=True` of the "
             "unpruned model at 640x640, in the race on every run"
             + (f", scored and timed on {ref['runtime']} (as Ultralytics runs OpenVINO on this CPU)"
                if ref.get("runtime") else "") + ".",
             f"- Footage: {summary['frames']} frames of {summary['frame_hw'][1]}x{summary['frame_hw'][0]}. Frames "
             f"0-{summary['eval_from'] - 1} (every {calibration['stride']})"
             + (f" and the images of {', '.join(shown(e) for e in calibration['extra'])}" if calibration["extra"] else "")
             + " calibrate int8 and train pruned models; frames "
             f"{summary['eval_from']}-{summary['frames'] - 1} judge and nothing is fitted on them.",
             "- Fidelity: COCO keypoint AP of the candidate's poses against the dense fp32 model's at 640x640 on "
             "the judging frames (1.0 = the same poses)." +
             (f" Labels: pose mAP50-95 on {shown(summary['labels'])}." if summary.get("labels") else ""),
             f"- Reference accuracy: {' / '.join(f'{k} {v:.4f}' for k, v in ref['accuracy'].items())}; floor: "
             + (", ".join(f"{k} {v:.4f}" for k, v in summary["floor"].items()) or "none (latency budget)") + ".",
             "- Latency: model-mode p50 at batch 1, every candidate in a fresh process, coarse then fine rounds "
             "interleaved; 'x ref' is the reference's p50 over the candidate's within the same round (median).", ""]
    return lines


def _verdict_lines(summary: dict[str, Any], metrics: str) -> list[str]:
    """The winner, how sure the images are of it, and how to deploy it."""
    ref = summary["reference"]
    lines: list[str] = []
    winner = summary.get("winner")
    lines += ["## Verdict", ""]
    if winner:
        cost = {k: (ref["accuracy"].get(k) or 0) - (v or 0) for k, v in winner["accuracy"].items()}
        lines += [f"**{winner['candidate']} on {winner['runtime']} @ {winner['threads']} threads**: p50 "
                  f"{winner['p50_ms']:.2f} ms, **{winner['x_vs_reference']:.2f}x** the reference's speed; "
                  f"{metrics} {_acc(winner)} ("
                  + ", ".join(f"{abs(c):.4f} {'below' if c > 0 else 'above'} the reference" for c in cost.values())
                  + ").", ""]
        tolerance = summary["goal"].get("tolerance")
        if winner.get("comparison") and tolerance is not None:
            lines += ["Paired with the reference on the same frames / images (95 % bootstrap interval of the "
                      "difference): " + "; ".join(f"{name} {_gap(d, tolerance)}" for name, d in
                                                   winner["comparison"].items()) + ".", ""]
        if summary.get("faster_unresolved"):
            lines += ["Faster, but not resolved (their intervals reach below the floor, so these frames cannot say "
                      f"whether they are within {tolerance:g}): " + ", ".join(summary["faster_unresolved"]) + ".", ""]
        lines += [
                  f"Why: it is the {'fastest' if 'tolerance' in summary['goal'] else 'most accurate'} candidate "
                  "that meets the goal in the fine rounds. Deploy it: "
                  f"`posebench bench --model {shown(winner.get('deployment'), summary.get('out'))} "
                  f"--runtime {winner['runtime']} "
                  f"--threads {winner['threads']}` (a bundle: its input size comes with it).", ""]
    else:
        lines += ["No candidate meets the goal: see the table for the closest ones.", ""]
    return lines


def _judged_lines(summary: dict[str, Any]) -> list[str]:
    """The winner judged on labels nothing was chosen on (when the plan named them)."""
    lines: list[str] = []
    judged = summary.get("judged")
    if judged:
        lines += [f"## Judged on {shown(judged['data'])} (pose mAP50-95, 95 % intervals; nothing was chosen on it)", "",
                  "| deployment | candidate | runtime | pose mAP50-95 | images |", "|---|---|---|---|---|"]
        for name, sc in judged["scores"].items():
            interval = sc.get("interval")
            value = f"{sc['map50_95']:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
            lines.append(f"| {name} | {sc['candidate']} | {sc['runtime']} | {value} | {sc['images']} |")
        lines.append("")
        for name, d in judged["differences"].items():
            lines.append(f"- winner minus {name} (paired, same images): {_gap(d, None)}"
                         + (", resolved" if d and d["resolved"] else ""))
        lines.append("")
    return lines


def _candidate_lines(summary: dict[str, Any], metrics: str) -> list[str]:
    """The plot and every candidate's row."""
    lines: list[str] = []
    if summary.get("plot"):
        lines += [f"![p50 against accuracy, Pareto front dashed]({summary['plot']})", ""]
    lines += ["## Candidates", "",
              f"| candidate | runtime | threads | {metrics} | vs reference (paired) | p50 ms | x ref | rounds spread | "
              "stage | Pareto |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted(summary["rows"], key=lambda r: (r.get("p50_ms") is None, r.get("p50_ms") or 0, r["candidate"]))
    for r in rows:
        name = r["candidate"] + (" (reference)" if r["reference"] else "")
        stage = r["stage"] if r["stage"] != "dropped" else f"dropped: {r.get('dropped') or '-'}"
        x = "-" if r.get("x_vs_reference") is None else f"{r['x_vs_reference']:.2f}"
        spread = "-" if r.get("spread") is None else f"{r['spread']:.0%}"
        gaps = "; ".join(_gap(d, summary["goal"].get("tolerance")) for d in (r.get("comparison") or {}).values()
                         if d) or "-"
        lines.append(f"| {name} | {r['runtime']} | {r['threads']} | {_acc(r)} | {gaps} | {_ms(r.get('p50_ms'))} | {x} | "
                     f"{spread} | {stage} | {'yes' if r.get('pareto') else ''} |")
    lines += ["", "Sizes tried: " + ", ".join(f"{h}x{w}" for h, w in summary["sizes"]) + ". A size whose fp32 "
              "accuracy is already under the floor is dropped before any compression is built at it.", ""]
    return lines


def tune_plot(summary: dict[str, Any]) -> bytes | None:
    """PNG: every timed candidate's p50 against its (worst) accuracy, the Pareto front dashed, the reference and
    the winner marked; None when nothing was timed."""
    timed = [r for r in summary["rows"] if r.get("p50_ms") is not None and any(v is not None for v in r["accuracy"].values())]
    if not timed:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def worst(row: dict[str, Any]) -> float:
        return min(v for v in row["accuracy"].values() if v is not None)

    fig, ax = plt.subplots(figsize=(8.5, 5))
    for precision in dict.fromkeys(r["precision"] for r in timed):
        mine = [r for r in timed if r["precision"] == precision]
        ax.scatter([r["p50_ms"] for r in mine], [worst(r) for r in mine], s=36, label=precision)
    front = sorted((r for r in timed if r.get("pareto")), key=lambda r: r["p50_ms"])
    ax.plot([r["p50_ms"] for r in front], [worst(r) for r in front], "k--", lw=1, label="Pareto front (fine rounds)")
    for r in timed:
        if r.get("pareto") or r["reference"]:
            ax.annotate(r["candidate"] + (" (reference)" if r["reference"] else ""), (r["p50_ms"], worst(r)),
                        fontsize=7, xytext=(4, -10), textcoords="offset points")
    winner = summary.get("winner")
    if winner:
        ax.scatter([winner["p50_ms"]], [worst(winner)], s=160, facecolors="none", edgecolors="red", label="winner")
    for name, value in summary.get("floor", {}).items():
        ax.axhline(value, color="grey", lw=0.8, ls=":", label=f"{name} floor")
    ax.set_xlabel(f"model-mode p50 (ms), batch 1, {timed[0]['runtime']}@{timed[0]['threads']}")
    ax.set_ylabel("accuracy (fidelity" + (" / pose mAP50-95, the lower" if summary.get("labels") else "") + ")")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_tune_report(out: Path, summary: dict[str, Any]) -> Path:
    """OUT/tune.md and OUT/tune-pareto.png from a tune summary (the plot named in OUT/tune.json); returns tune.md."""
    png = tune_plot(summary)
    if png:
        (out / "tune-pareto.png").write_bytes(png)
        summary["plot"] = "tune-pareto.png"
    (out / "tune.json").write_text(json.dumps(summary, indent=2))
    (out / "tune.md").write_text(tune_markdown(summary))
    return out / "tune.md"

