"""Cost per frame: a machine price table (YAML, user-editable) joined to each record's machine fingerprint.

CPU configurations are charged per vCPU-hour x threads, GPU configurations per GPU-hour (one batch-1
stream holds the whole GPU: an upper bound). See `prices.yaml` beside this module for the defaults, their
sources and dates. Throughput is 1000 / mean latency (ms) per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, read_yaml_file

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")
RULE_KEYS = {"name", "machine_id", "gpu", "cpu", "usd_per_vcpu_hour", "usd_per_gpu_hour", "source", "date", "note"}


@dataclass(frozen=True)
class PriceRule:
    """One row of the price table: which machines it matches and what they cost."""

    name: str
    source: str
    date: str
    machine_id: str | None = None
    gpu: str | None = None
    cpu: str | None = None
    usd_per_vcpu_hour: float | None = None
    usd_per_gpu_hour: float | None = None

    def matches(self, env: dict[str, Any], device: str) -> bool:
        if self.machine_id and env.get("machine_id") != self.machine_id:
            return False
        if self.gpu and not (device == "gpu" and any(self.gpu.lower() in g.lower() for g in gpu_names(env))):
            return False
        if self.cpu and self.cpu.lower() not in str(env.get("cpu_model", "")).lower():
            return False
        rate = self.usd_per_gpu_hour if device == "gpu" else self.usd_per_vcpu_hour
        return rate is not None


def gpu_names(env: dict[str, Any]) -> list[str]:
    return [str(g) for g in env.get("gpus") or []]


@dataclass(frozen=True)
class Cost:
    """What one configuration costs at its measured latency."""

    rule: PriceRule
    usd_per_hour: float  # the share of the machine the configuration holds
    frames_per_second: float
    usd_per_million_frames: float
    frames_per_dollar: float


def load_prices(path: str | Path | None = None) -> list[PriceRule]:
    """The price table at `path` (default: posebench's); a broken table is one clear error."""
    path = Path(path) if path else DEFAULT_PRICES
    raw = read_yaml_file(path, what="price table")
    rows = raw.get("machines") if isinstance(raw, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError(f"{path}: needs 'machines:', a list of price rules (see {DEFAULT_PRICES})")
    rules = []
    for n, row in enumerate(rows):
        where = f"{path}: machines[{n}]"
        if not isinstance(row, dict):
            raise InvalidInputError(f"{where}: must be a mapping")
        unknown = set(row) - RULE_KEYS
        if unknown:
            raise InvalidInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: "
                                    f"{', '.join(sorted(RULE_KEYS))})")
        rates = {k: row.get(k) for k in ("usd_per_vcpu_hour", "usd_per_gpu_hour")}
        if all(v is None for v in rates.values()):
            raise InvalidInputError(f"{where}: needs usd_per_vcpu_hour (CPU rows) or usd_per_gpu_hour (GPU rows)")
        for key, value in rates.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise InvalidInputError(f"{where}.{key}: must be a positive number of USD, got {value!r}")
        if not row.get("source"):
            raise InvalidInputError(f"{where}: say where the price comes from ('source') and when ('date')")
        rules.append(PriceRule(name=str(row.get("name") or f"rule {n}"), source=str(row["source"]),
                               date=str(row.get("date", "?")), machine_id=row.get("machine_id"),
                               gpu=row.get("gpu"), cpu=row.get("cpu"),
                               usd_per_vcpu_hour=rates["usd_per_vcpu_hour"],
                               usd_per_gpu_hour=rates["usd_per_gpu_hour"]))
    return rules


def price(rules: list[PriceRule], env: dict[str, Any], device: str, threads: int, mean_ms: float) -> Cost | None:
    """The cost of one configuration (None when no rule prices its machine or it has no latency)."""
    rule = next((r for r in rules if r.matches(env, device)), None)
    if rule is None or not mean_ms or mean_ms <= 0:
        return None
    per_hour = rule.usd_per_gpu_hour if device == "gpu" else rule.usd_per_vcpu_hour * max(int(threads), 1)
    fps = 1000.0 / mean_ms
    return Cost(rule=rule, usd_per_hour=per_hour, frames_per_second=fps,
                usd_per_million_frames=per_hour / (fps * 3600.0) * 1e6, frames_per_dollar=fps * 3600.0 / per_hour)
