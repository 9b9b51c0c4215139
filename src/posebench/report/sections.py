"""The report's tables and notes, each a list of rows (the first the header) or of sentences."""

from __future__ import annotations

import html
from collections import defaultdict

from posebench.record import ArtifactFacts, Identity, Record
from posebench.runtimes.base import runtime_class
from posebench.report.model import LABELS, METRICS, NOISY_SPREAD, Point, Report, machine_name
from posebench.tables import with_interval


def p90_of(report: Report, point: Point) -> float:
    for r in report.latency:
        t = r.identity
        if (t.model, t.variant, t.label, t.threads, machine_name(r)) == \
                (point.model, point.variant, point.runtime, point.threads, point.machine):
            p90 = r.latency_stats.p90_ms
            return point.p50_ms if p90 != p90 else p90  # NaN: a record without a p90
    return point.p50_ms


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def pipeline_name(identity: Identity) -> str:
    """'fused' / 'vectorised' / 'reference' (posebench's pipeline, by pre-processing path) or 'ultralytics'."""
    pipeline = identity.pipeline or {}
    return str(pipeline.get("preprocess") or pipeline.get("pipeline") or "-")


def config_of_record(report: Report, record: Record) -> str:
    return f"{report.config(record)}, {pipeline_name(record.identity)}"


# ---- tables ---------------------------------------------------------------------------------------------

def accuracy_table(report: Report, evaluation: str) -> list[list[str]]:
    gap_label = f"{LABELS[report.gap_metric.split('.')[1]]} vs base (paired, points)"
    header = ["model", "variant", "runtime", *(f"Box {LABELS[m]}" for m in METRICS),
              *(f"Pose {LABELS[m]}" for m in METRICS), "COCO AP / fidelity", "images", gap_label]
    rows = [header]
    for r in report.accuracy:
        if Report._evaluation_name(r) != evaluation:
            continue
        a, t = r.scores, r.identity
        extra = with_interval(a, "coco", "AP") if a.score("coco", "AP") is not None else "-"
        base = report.accuracy_of(t.model, "base", t.runtime, evaluation)
        gap = report.gap(r.accuracy, base)
        rows.append([t.model, t.variant, t.runtime, *(with_interval(a, "box", m) for m in METRICS),
                     *(with_interval(a, "pose", m) for m in METRICS), extra, str(a.images),
                     gap.describe() if gap else "-"])
    return rows


def latency_table(report: Report) -> list[list[str]]:
    """Variant rows x runtime@threads (machine) columns: mean / p50 / p99 ms (null: the harness's overhead)."""
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    configs: list[str] = []
    for r in report.latency:
        t, lat = r.identity, r.latency_stats
        config = report.config(r)
        configs.append(config)
        cells[(t.model, t.variant)][config] = f"{lat.mean_ms:.2f} / {lat.p50_ms:.2f} / {lat.p99_ms:.2f}"
    configs = list(dict.fromkeys(configs))
    rows = [["model", "variant", *configs]]
    for (model, variant), by_config in cells.items():
        rows.append([model, variant, *(by_config.get(c, "-") for c in configs)])
    return rows


def rounds_table(report: Report) -> list[list[str]]:
    """Per configuration: p50 of each round and their spread (flagged > 10 %), work per inference, achieved
    GOP/s and the fraction of the machine's peak (flagged beyond it), and warnings (int8 path mismatch)."""
    from posebench.machine.denormals import has_denormals

    rows = [["model", "variant", "runtime@threads", "machine", "p50 per round (ms)", "spread", "GOP / inference",
             "achieved GOP/s", "% of peak", "notes"]]
    for r in report.latency:
        t = r.identity
        if not runtime_class(t.runtime).runs_model:
            continue
        spread = r.spread
        compute, facts = r.roofline, r.artifact_facts
        notes = list(r.warnings)
        if spread is not None and spread > NOISY_SPREAD:
            notes.insert(0, f"NOISY: rounds differ by {spread:.1%} (> {NOISY_SPREAD:.0%})")
        subnormal = facts.denormals
        if has_denormals(subnormal):
            ftz = t.options.get("flush_denormals")
            notes.insert(0, f"DENORMALS: {subnormal['activations_fraction']:.2%} of activations, "
                            f"{subnormal['weights_fraction']:.2%} of weights subnormal"
                            + (" (flushed to zero here)" if ftz else f"; try {t.runtime}[flush_denormals=true]"))
        if compute is not None and compute.beyond_peak:
            notes.insert(0, f"ABOVE PEAK ({compute.fraction_of_peak:.0%}): less arithmetic than counted ran (zeros "
                            "skipped, fast-convolution algorithms) or the clock beats the estimate")
        rows.append([t.model, t.variant, f"{t.label}@{t.threads}", machine_name(r),
                     " / ".join(f"{v:.2f}" for v in r.rounds),
                     f"{spread:.1%}" if spread is not None else "1 round",
                     _ops_cell(facts), f"{compute.gops:.1f}" if compute else "-",
                     f"{compute.fraction_of_peak:.0%}" if compute else "-", "; ".join(notes)])
    return rows


def _ops_cell(facts: ArtifactFacts) -> str:
    """'8.71 (93 % int8)': operations per inference in billions, and the int8 share."""
    if not facts.ops:
        return "-"
    return f"{facts.ops / 1e9:.2f}" + (f" ({facts.int8_ops / facts.ops:.0%} int8)" if facts.int8_ops else "")


def e2e_table(report: Report) -> list[list[str]]:
    """End-to-end rows: each stage's p50 (pre-processing, inference, decode + NMS), the total's p50 / p90 / p99,
    and the total over the same configuration's model-mode p50 (what the pipeline adds)."""
    model_p50 = {(r.identity.model, r.identity.variant, report.config(r)): r.latency_stats.p50_ms
                 for r in report.latency}
    rows = [["model", "variant", "runtime@threads", "pipeline", "pre p50", "infer p50", "post p50",
             "total p50", "p90", "p99", "x model mode", "frames from"]]
    for r in report.e2e:
        t, lat, st = r.identity, r.latency_stats, r.extra.get("stages") or {}
        mm = model_p50.get((t.model, t.variant, report.config(r)))
        pipeline = t.pipeline or {}
        rows.append([t.model, t.variant, report.config(r), pipeline_name(t),
                     *(f"{st[k]['p50_ms']:.2f}" if k in st else "-" for k in ("pre", "infer", "post")),
                     f"{lat.p50_ms:.2f}", f"{lat.p90_ms:.2f}", f"{lat.p99_ms:.2f}",
                     f"{lat.p50_ms / mm:.2f}" if mm else "-", str(pipeline.get("source", "-"))])
    return rows


def peak_notes(report: Report) -> list[str]:
    """How each machine's peak was estimated (one line per machine)."""
    seen: dict[str, str] = {}
    for r in report.latency:
        basis = r.roofline.peak_basis if r.roofline else None
        if basis:
            seen.setdefault(machine_name(r) + f", {r.identity.threads} thread(s)", basis)
    return [f"{machine}: {basis}" for machine, basis in seen.items()]


def probe_lines(report: Report) -> list[str]:
    """The quietness probes of each study in the results, and whether the machine was noisy."""
    from posebench.machine.probe import quietness

    lines = []
    for study in dict.fromkeys(p.study for p in report.probes):
        noisy, text = quietness([p.to_json() for p in report.probes if p.study == study])
        lines.append(f"{'NOISY machine' if noisy else 'Quiet machine'} during study '{study}' "
                     f"({machine_name(next(p for p in report.probes if p.study == study))}): {text}.")
    return lines


def thesis_plausibility() -> list[list[str]]:
    """Each published thesis latency against the peak of its machine, with the arithmetic."""
    from posebench.machine.roofline import thesis_peak
    from posebench.report import thesis

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
        env = r.environment
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


def markdown_table(rows: list[list[str]]) -> str:
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

    measured: dict[tuple[str, str, int, str], Record] = {}
    for r in report.latency:
        t = r.identity
        if t.runtime == "deepsparse":
            measured[(t.model, t.variant, t.threads, str((r.environment or {}).get("machine_id")))] = r
    rows = [["variant", "thesis: model, imgsz, cores", "thesis ms", "thesis x vs sml-base", "measured: model, imgsz, cores",
             "measured p50 ms", "measured x vs base", "DeepSparse artifact"]]
    base_ms = thesis.LATENCY_MS["sml-base"]["8-core"]
    for (model, variant, threads, machine), r in sorted(measured.items(),
                                                        key=lambda kv: (kv[0][3], kv[0][0], kv[0][2])):
        published = thesis.LATENCY_MS.get(f"sml-{variant}", {}).get("8-core")
        if published is None:
            continue
        base = measured.get((model, "base", threads, machine))
        p50 = r.latency_stats.p50_ms
        size = "x".join(str(v) for v in r.identity.imgsz)
        rows.append([variant, "YOLOv8s-pose, 512x512, 8 (AMD Genoa)", f"{published:.3f}", f"{base_ms / published:.2f}",
                     f"{model}, {size}, {threads} ({machine_name(r)})", f"{p50:.2f}",
                     f"{base.latency_stats.p50_ms / p50:.2f}" if base else "-",
                     str(r.artifact_facts.form or "onnx")])
    return rows


def html_table(rows: list[list[str]]) -> str:
    if len(rows) < 2:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
