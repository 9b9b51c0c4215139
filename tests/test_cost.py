"""Cost per frame: a real CPU study merged with a small synthetic GPU store (labelled synthetic in the report);
the report prices each configuration from the price table, and the verdict names the cheapest configuration
under a latency budget within the accuracy tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from posebench.errors import InvalidInputError
from posebench.report.cost import load_prices, price

PRICES = """machines:
  - name: test GPU
    gpu: H100
    usd_per_gpu_hour: 4.0
    source: test
    date: 2026-11
  - name: test CPU
    cpu: ""
    usd_per_vcpu_hour: 0.05
    source: test
    date: 2026-11
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path, float]:
    """A measured CPU store (onnxruntime, 1 thread, fidelity on the shipped images) and a synthetic GPU store
    made from it: 'tensorrt' on an H100, 10x faster. Returns both paths and the CPU mean latency."""
    import ultralytics

    tmp = tmp_path_factory.mktemp("cost")
    assets = Path(ultralytics.__file__).parent / "assets"
    study = tmp / "study.yaml"
    study.write_text(f"""name: cost
models: [default]
variants: {{base: null}}
runtimes: [onnxruntime]
threads: [1]
imgsz: 320
latency: {{iters: 10, min_seconds: 0.2, warmup: 2, warmup_seconds: 0, probe: false}}
evaluation:
  - name: fidelity
    reference: base
    source: {assets}
""")
    out = tmp / "cpu"
    result = run_cli("study", str(study), "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    gpu = tmp / "gpu.jsonl"
    with open(gpu, "w") as fh:
        for r in records:
            if r["kind"] != "latency":
                continue
            r = json.loads(json.dumps(r))
            r["id"], r["synthetic"] = "synthetic-" + r["id"], True
            r["trial"]["runtime"] = "tensorrt"
            r["trial_id"] = "synthetic-" + r["trial_id"]
            r["environment"].update(machine_id="gpubox000000", cpu_model="Some Xeon", gpus=["NVIDIA H100 80GB HBM3"])
            r["backend"] = {**(r.get("backend") or {}), "device": "gpu"}
            for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms"):
                r["latency"][k] /= 10
            fh.write(json.dumps(r) + "\n")
    cpu_mean = [r for r in records if r["kind"] == "latency"]
    return out / "results.jsonl", gpu, sorted(r["latency"]["mean_ms"] for r in cpu_mean)[len(cpu_mean) // 2]


@pytest.mark.slow
def test_report_prices_every_configuration_and_names_the_cheapest_under_a_budget(stores, tmp_path):
    cpu, gpu, cpu_ms = stores
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    result = run_cli("report", str(cpu), str(gpu), "--out", str(tmp_path / "all"), "--prices", str(prices),
                     "--max-drop", "0.5")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "all" / "report.md").read_text()
    assert "These results include synthetic records" in md and "[synthetic]" in md
    section = md.split("## Cost per frame")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| base")]
    assert len(rows) == 2 and {r[2] for r in rows} == {"test GPU", "test CPU"}
    for r in rows:  # USD per million frames = USD/h / (frames/s x 3600) x 1e6, with frames/s = 1000 / mean ms
        per_hour, fps, per_million = float(r[3]), float(r[4]), float(r[5])
        assert per_hour == (4.0 if r[2] == "test GPU" else 0.05)
        # the table rounds to the cent (and fps to a tenth): on a fast machine the GPU row is ~0.2 USD, where a cent is 2 %
        assert per_million == pytest.approx(per_hour / (fps * 3600) * 1e6, rel=0.02, abs=0.006)
    assert (tmp_path / "all" / "cost.png").stat().st_size > 10_000
    # a 10x faster GPU at 80x the price per hour: the CPU is cheaper per frame...
    cheapest = next(line for line in md.splitlines() if line.startswith("Cheapest configuration"))
    assert "onnxruntime @1" in cheapest or "onnxruntime@1" in cheapest.replace(" ", ""), cheapest
    # ...until the budget is one only the GPU meets
    budget = cpu_ms / 2
    result = run_cli("report", str(cpu), str(gpu), "--out", str(tmp_path / "fast"), "--prices", str(prices),
                     "--max-drop", "0.5", "--budget-ms", f"{budget:.4f}")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "fast" / "report.md").read_text()
    cheapest = next(line for line in md.splitlines() if line.startswith("Cheapest configuration"))
    assert "tensorrt" in cheapest and "[synthetic]" in cheapest, cheapest


def test_default_price_table_loads_with_sources_and_prices_cpu_and_gpu_rows():
    rules = load_prices()
    assert rules and all(r.source and r.date for r in rules)
    h100 = price(rules, {"gpus": ["NVIDIA H100 80GB HBM3"], "cpu_model": "Intel Xeon"}, "gpu", 1, 2.0)
    epyc = price(rules, {"cpu_model": "AMD EPYC 9R14"}, "cpu", 2, 50.0)
    assert h100 and "H100" in h100.rule.name and epyc and "EPYC" in epyc.rule.name
    assert epyc.usd_per_hour == pytest.approx(2 * epyc.rule.usd_per_vcpu_hour)
    assert price(rules, {"cpu_model": "Unknown CPU"}, "cpu", 1, 10.0) is None


@pytest.mark.parametrize("text,message", [
    ("machines: []", "needs 'machines:'"),
    ("machines:\n  - {name: x, cpu: EPYC, source: s}", "needs usd_per_vcpu_hour"),
    ("machines:\n  - {name: x, cpu: EPYC, usd_per_vcpu_hour: -1, source: s}", "positive number"),
    ("machines:\n  - {name: x, cpu: EPYC, usd_per_vcpu_hour: 1}", "'source'"),
    ("machines:\n  - {name: x, cpus: EPYC, usd_per_vcpu_hour: 1, source: s}", "unknown key"),
])
def test_a_broken_price_table_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        load_prices(path)
