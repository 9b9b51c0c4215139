"""Latency tables for the terminal (rich) and for files (Markdown)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from posebench.evaluate.uncertainty import format_interval
from posebench.record import Accuracy, Record
from posebench.runtimes.base import runtime_class

COLUMNS = ("runtime", "threads", "mean ms", "p50 ms", "p90 ms", "p99 ms", "std ms", "runs", "vs torch", "status")


def _ms(value: float) -> str:
    return f"{value:.3f}" if value >= 1 else f"{value:.4g}"


def latency_rows(records: list[Record]) -> list[list[str]]:
    """One row per latency record; 'vs torch' is torch's mean at the same threads / this mean."""
    torch_mean = {r.identity.threads: r.latency_stats.mean_ms for r in records
                  if r.identity.runtime == "torch" and r.ok}
    rows = []
    for r in records:
        t = r.identity
        if not r.ok:
            rows.append([t.label, str(t.threads), *["-"] * 7, f"{r.status}: {r.error}"])
            continue
        lat = r.latency_stats
        ref = torch_mean.get(t.threads)
        speedup = f"{ref / lat.mean_ms:.2f}x" if ref and runtime_class(t.runtime).runs_model else "-"
        status = "ok" + (" (capped)" if lat.capped else "") + (" (warning: see below)" if r.warnings else "")
        rows.append([t.label, str(t.threads), _ms(lat.mean_ms), _ms(lat.p50_ms),
                     _ms(lat.p90_ms), _ms(lat.p99_ms), _ms(lat.std_ms), str(lat.count),
                     speedup, status])
    return rows


def title_of(records: list[Record]) -> str:
    if not records:
        return "latency"
    t, env = records[0].identity, records[0].environment or {}
    h, w = t.imgsz
    return (f"batch-1 latency: {t.model} ({t.variant}) at {h}x{w} on {env.get('cpu_model', '?')}, "
            f"{env.get('usable_cores', '?')} cores")


def print_table(title: str, columns: tuple[str, ...], rows: list[list[str]], *, left: tuple[str, ...],
                width: int = 140) -> None:
    """A rich table in the terminal; columns named in `left` are left-aligned, the rest right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=max(Console().width, width)).print(table)


def markdown_table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown section holding one table."""
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return lines + ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]


def print_latency_table(records: list[Record]) -> None:
    """Print the latency table to the terminal."""
    print_table(title_of(records), COLUMNS, latency_rows(records), left=("runtime", "status"))


def latency_markdown(records: list[Record]) -> str:
    """The same table as Markdown, with the protocol and environment underneath."""
    lines = markdown_table(title_of(records), COLUMNS, latency_rows(records))
    lines += [f"- warning ({r.identity.label}): {w}" for r in records for w in r.warnings]
    if records:
        p, env = records[0].protocol, records[0].environment
        lines += ["", f"Protocol: {p}", "",
                  f"Environment: {env['cpu_model']}, {env['usable_cores']} usable cores, ISA {', '.join(env['isa'])}; "
                  f"versions {env['versions']}"]
    return "\n".join(lines) + "\n"


ACCURACY_COLUMNS = ("runtime", "Box P", "Box R", "Box mAP50", "Box mAP50-95", "Pose P", "Pose R", "Pose mAP50",
                    "Pose mAP50-95", "COCO AP", "COCO AP50", "images", "s")


def with_interval(accuracy: Mapping[str, Any] | Accuracy, group: str, metric: str) -> str:
    """'0.504 [0.484, 0.525]': a metric of an accuracy payload with its 95 % bootstrap interval when it has one."""
    a = accuracy if isinstance(accuracy, Accuracy) else Accuracy(accuracy)
    value = a.score(group, metric)
    if value is None:
        raise KeyError(f"no {group} {metric} in this accuracy record")
    return format_interval(value, a.interval(group, metric))


def accuracy_rows(records: list[Record]) -> list[list[str]]:
    """One row per accuracy record, with the thesis's Table 4.1 columns plus COCO keypoint AP."""
    rows = []
    for r in records:
        label = f"{r.identity.label} ({r.identity.variant})" + (" (int8 warning)" if r.warnings else "")
        if not r.ok:
            rows.append([label, *["-"] * (len(ACCURACY_COLUMNS) - 2), f"error: {r.error}"])
            continue
        a = r.scores
        coco = a.group("coco")
        cells = [with_interval(a, group, metric) for group in ("box", "pose")
                 for metric in ("precision", "recall", "map50", "map50_95")]
        rows.append([label, *cells,
                     with_interval(a, "coco", "AP") if "AP" in coco else "-",
                     with_interval(a, "coco", "AP50") if "AP50" in coco else "-",
                     str(a.images), f"{a.wall_seconds:.1f}"])
    return rows


def accuracy_title(records: list[Record]) -> str:
    if not records:
        return "accuracy"
    t = records[0].identity
    return f"accuracy: {t.model} at {t.imgsz[0]}x{t.imgsz[1]} against {records[0].evaluated_against}"


def print_accuracy_table(records: list[Record]) -> None:
    """Print the accuracy table (thesis Table 4.1 layout) to the terminal."""
    print_table(accuracy_title(records), ACCURACY_COLUMNS, accuracy_rows(records), left=("runtime",), width=160)


def accuracy_markdown(records: list[Record]) -> str:
    return "\n".join(markdown_table(accuracy_title(records), ACCURACY_COLUMNS, accuracy_rows(records))) + "\n"
