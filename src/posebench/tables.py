"""Latency tables for the terminal (rich) and for files (Markdown)."""

from __future__ import annotations

from typing import Any

COLUMNS = ("runtime", "threads", "mean ms", "p50 ms", "p90 ms", "p99 ms", "std ms", "runs", "vs torch", "status")


def _ms(value: float) -> str:
    return f"{value:.3f}" if value >= 1 else f"{value:.4g}"


def latency_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per latency record; 'vs torch' is torch's mean at the same threads / this mean."""
    torch_mean = {r["trial"]["threads"]: r["latency"]["mean_ms"] for r in records
                  if r["trial"]["runtime"] == "torch" and r.get("status") == "ok"}
    rows = []
    for r in records:
        t = r["trial"]
        if r.get("status") != "ok":
            rows.append([t["runtime"], str(t["threads"]), *["-"] * 7, "error: " + str(r.get("error", ""))])
            continue
        lat = r["latency"]
        ref = torch_mean.get(t["threads"])
        speedup = f"{ref / lat['mean_ms']:.2f}x" if ref and t["runtime"] != "null" else "-"
        status = "ok" + (" (capped)" if lat.get("capped") else "")
        rows.append([t["runtime"], str(t["threads"]), _ms(lat['mean_ms']), _ms(lat['p50_ms']),
                     _ms(lat['p90_ms']), _ms(lat['p99_ms']), _ms(lat['std_ms']), str(lat["count"]),
                     speedup, status])
    return rows


def title_of(records: list[dict[str, Any]]) -> str:
    if not records:
        return "latency"
    t, env = records[0]["trial"], records[0].get("environment", {})
    h, w = t["imgsz"]
    return (f"batch-1 latency: {t['model']} ({t['variant']}) at {h}x{w} on {env.get('cpu_model', '?')}, "
            f"{env.get('usable_cores', '?')} cores")


def print_latency_table(records: list[dict[str, Any]]) -> None:
    """Print the latency table to the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title_of(records))
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("runtime", "status") else "right",
                         overflow="fold")
    for row in latency_rows(records):
        table.add_row(*row)
    Console(width=max(Console().width, 140)).print(table)


def latency_markdown(records: list[dict[str, Any]]) -> str:
    """The same table as Markdown, with the protocol and environment underneath."""
    lines = [f"## {title_of(records)}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in latency_rows(records)]
    if records:
        p, env = records[0]["protocol"], records[0]["environment"]
        lines += ["", f"Protocol: {p}", "",
                  f"Environment: {env['cpu_model']}, {env['usable_cores']} usable cores, ISA {', '.join(env['isa'])}; "
                  f"versions {env['versions']}"]
    return "\n".join(lines) + "\n"
