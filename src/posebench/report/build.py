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
from pathlib import Path

from posebench.errors import InvalidInputError
from posebench.report.cost import load_prices
from posebench.report.model import LABELS, NOISY_SPREAD, Report, shown_reason
from posebench.report.plots import plots
from posebench.report.sections import (accuracy_table, cost_notes, cost_table, e2e_table, environments, html_table,
                                       latency_table, markdown_table, peak_notes, probe_lines, rounds_table,
                                       thesis_beside, thesis_plausibility, thesis_tables)
from posebench.report.verdict import pareto_front, verdict
from posebench.results import merge


Section = tuple[str, str, str]  # (title, markdown, html)


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
    sections = [_verdict_section(report, max_drop, budget_ms), *_measurement_sections(report),
                *_figure_sections(figures, out), *_front_and_cost_sections(report), *_inventory_sections(report)]
    if thesis:
        sections += _thesis_sections(report)
    if report.synthetic:
        sections.insert(0, ("Synthetic records", "**These results include synthetic records** (made up for a test or "
                            "an example, not measured); their machines are marked [synthetic].\n",
                            "<p><strong>These results include synthetic records</strong> (made up for a test or an "
                            "example, not measured); their machines are marked [synthetic].</p>"))
    machine = f"Machine: {report.machines[0]}. " if len(report.machines) == 1 else \
        (f"Machines: {'; '.join(report.machines)}. " if report.machines else "")
    summary = (machine + f"Primary evaluation: {report.primary or 'none'}; accuracy drop allowed {max_drop:.3f} pose "
               f"{LABELS[report.metric]}" + (f"; latency budget {budget_ms:g} ms" if budget_ms else "") + ".")
    return _write(out, "posebench report", summary, sections)


def _verdict_section(report: Report, max_drop: float, budget_ms: float | None) -> Section:
    lines = verdict(report, max_drop=max_drop, budget_ms=budget_ms)
    few = sorted({r.scores.images for r in report.accuracy if Report._evaluation_name(r) == report.primary})
    if few and few[0] < 20:
        lines.append(f"Caution: the primary evaluation ({report.primary}) has only {few[0]} images; accuracy "
                     "differences of a few points are within its noise.")
    return ("Verdict", "\n\n".join(lines) + "\n",
            "".join(f"<p>{html.escape(line).replace('**', '')}</p>" for line in lines))


def _measurement_sections(report: Report) -> list[Section]:
    """Accuracy per evaluation, latency, end to end, and the rounds with their noise and roofline."""
    sections: list[Section] = []
    for name in report.evaluations:
        rows = accuracy_table(report, name)
        sections.append((f"Accuracy: {name}", markdown_table(rows), html_table(rows)))
    rows = latency_table(report)
    sections.append(("Latency (ms: mean / p50 / p99, batch 1)", markdown_table(rows), html_table(rows)))
    if report.e2e:
        rows = e2e_table(report)
        note = ("Frame in, poses out: decoded frames (uint8, the source's size) through letterbox, normalisation, the "
                "runtime, decode + NMS (conf 0.25, as predict) and back to frame pixels; each stage timed per frame. "
                "Pipeline: posebench's by pre-processing path (fused into the model, vectorised, reference), or "
                "'ultralytics' (its own predict around the same artifact, stages as it reports them). "
                "'x model mode' is the total over the same configuration's model-mode p50.")
        sections.append(("End to end (ms, batch 1)", f"{note}\n\n{markdown_table(rows)}",
                         f"<p>{html.escape(note)}</p>{html_table(rows)}"))
    rows = rounds_table(report)
    notes = probe_lines(report) + [f"Peak: {line}" for line in peak_notes(report)] + [
        f"Rounds: each trial's statistics are the median of its interleaved rounds; a spread over "
        f"{NOISY_SPREAD:.0%} is flagged NOISY. Work: multiply-accumulates x2 of every Conv/MatMul in the ONNX "
        "graph (element-wise ops left out); % of peak = fastest possible time at the peak / measured p50."]
    sections.append(("Noise and roofline", "\n\n".join(notes) + "\n\n" + markdown_table(rows),
                     "".join(f"<p>{html.escape(n)}</p>" for n in notes) + html_table(rows)))
    return sections


def _figure_sections(figures: dict[str, tuple[str, bytes]], out: Path) -> list[Section]:
    """Each plot written beside report.md and embedded in the HTML."""
    sections: list[Section] = []
    for key, (caption, png) in figures.items():
        (out / f"{key}.png").write_bytes(png)
        encoded = base64.b64encode(png).decode()
        sections.append((caption.split(" (")[0], f"![{caption}]({key}.png)\n\n{caption}\n",
                         f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>"))
    return sections


def _front_and_cost_sections(report: Report) -> list[Section]:
    sections: list[Section] = []
    front = pareto_front(report.points, report)
    if front:
        rows = [["configuration", "mean ms", f"pose {LABELS[report.metric]}", "95 % interval",
                 "minus the previous row (paired)"]]
        for n, p in enumerate(front):
            step = report.gap(p.scored, front[n - 1].scored) if n else None
            rows.append([p.label, f"{p.mean_ms:.2f}", f"{p.accuracy:.3f}",
                         f"[{p.interval[0]:.3f}, {p.interval[1]:.3f}]" if p.interval else "-",
                         step.describe() if step else "-"])
        note = ("Each row is faster than the next; a slower configuration is on the front only when it is resolvably "
                "more accurate than the row before it (paired interval on the same images above zero).")
        sections.append(("Pareto front", f"{note}\n\n{markdown_table(rows)}",
                         f"<p>{html.escape(note)}</p>{html_table(rows)}"))
    if any(p.cost for p in report.points) or report.points:
        rows, notes = cost_table(report), cost_notes(report)
        sections.append(("Cost per frame", "\n\n".join(notes) + ("\n\n" + markdown_table(rows) if len(rows) > 1
                                                                   else "\n"),
                         "".join(f"<p>{html.escape(n)}</p>" for n in notes) + (html_table(rows) if len(rows) > 1
                                                                               else "")))
    return sections


def _inventory_sections(report: Report) -> list[Section]:
    """What did not run, and the machines that did."""
    sections: list[Section] = []
    if report.failed:
        rows = [["kind", "variant", "runtime", "status", "reason"]] + [
            [r.kind, r.identity.variant, r.identity.runtime, r.status, shown_reason(r.error or "")[:300]]
            for r in report.failed]
        sections.append(("Skipped or failed trials", markdown_table(rows), html_table(rows)))
    rows = environments(report)
    sections.append(("Machines", markdown_table(rows), html_table(rows)))
    return sections


def _thesis_sections(report: Report) -> list[Section]:
    """The 2024 thesis's published numbers, beside this run's DeepSparse rows, and against their machines' peaks."""
    from posebench.machine.roofline import thesis_peak

    acc, lat = thesis_tables()
    note = ("External reference, not measured here: the 2024 thesis's published numbers for YOLOv8s-pose "
            "(SparseML/DeepSparse on AMD Genoa, TensorRT on Jetson AGX Orin, COCO-pose val, imgsz 512).")
    sections: list[Section] = [("Thesis reference (published, not measured here)",
                                f"{note}\n\n{markdown_table(acc)}\n{markdown_table(lat)}",
                                f"<p><em>{html.escape(note)}</em></p>{html_table(acc)}{html_table(lat)}")]
    beside = thesis_beside(report)
    if len(beside) > 1:
        note = ("The thesis's DeepSparse rows (Table 4.2, 8 cores) beside this run's DeepSparse rows of the same "
                "names; compare the speed-ups over each side's own dense fp32 row, not the milliseconds.")
        sections.append(("Thesis Table 4.2 beside this run (DeepSparse)", f"{note}\n\n{markdown_table(beside)}",
                         f"<p>{html.escape(note)}</p>{html_table(beside)}"))
    plaus = thesis_plausibility()
    how = ("Each published latency against the fastest its machine could run the model (work / peak). Peaks, "
           "generous on purpose: " + "; ".join(f"{c}: {thesis_peak(c).basis}" for c in
                                              ("8-core", "15-core", "30-core", "GPU")) +
           ". Work: YOLOv8s-pose at 512x512 counted by posebench on its ONNX export; int8 variants at the int8 "
           "peak; pruned variants with their zeros skipped (the most DeepSparse could do).")
    sections.append(("Thesis latencies: plausible or beyond peak?", f"{how}\n\n{markdown_table(plaus)}",
                     f"<p>{html.escape(how)}</p>{html_table(plaus)}"))
    return sections


def _write(out: Path, title: str, summary: str, sections: list[Section]) -> tuple[Path, Path]:
    """report.md and report.html: the title, one summary line, then each section."""
    md = [f"# {title}", "", summary, ""]
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
                         f"<p>{html.escape(summary)}</p>{body}</body></html>")
    return md_path, html_path
