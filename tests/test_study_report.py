"""Studies and reports: bad study files fail up front, a SIGKILLed study resumes with no duplicate and
no missing record, and the report has every table, plot and the verdict, merged across machines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from posebench.errors import EXIT_PARTIAL_FAILED
from posebench.study import Study, StudyError



@pytest.fixture(scope="module")
def assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def _study(tmp: Path, assets: Path, **overrides: str) -> Path:
    text = f"""name: tiny
models: [default]
variants:
  base: null
  p50: {REPO / 'recipes' / 'yolo-pose-oneshot-p50.yaml'}
runtimes: [onnxruntime, openvino]
threads: [1, 2]
imgsz: 160
latency: {{iters: 20, min_seconds: 0.3, warmup: 2, warmup_seconds: 0}}
evaluation:
  - name: fidelity
    reference: base
    source: {assets}
"""
    for key, value in overrides.items():
        text = text.replace(key, value)
    path = tmp / "study.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change,message", [
    (("runtimes:", "runtime:"), r"'runtime': unknown key \(did you mean \"runtimes\"\?\)"),
    (("[onnxruntime, openvino]", "[onnxruntime, openvinoo]"), r"'runtimes'.*Did you mean \"openvino\""),
    (("imgsz: 160", "imgsz: 150"), r"'imgsz'.*multiples of 32"),
    (("reference: base", "reference: nothing"), r"'evaluation\[0\]\.reference': 'nothing' is not a variant"),
    (("yolo-pose-oneshot-p50.yaml", "no-such-recipe.yaml"), r"'variants\.p50'.*does not exist"),
    (("threads: [1, 2]", "threads: [0]"), r"'threads': must be a list of positive"),
    (("threads: [1, 2]", "threads: [1]\ntargets: [avx2, avx2]"), r"'targets': must be a list of distinct"),
])
def test_broken_study_fails_up_front_naming_the_key(change, message, tmp_path, assets):
    path = _study(tmp_path, assets, **{change[0]: change[1]})
    with pytest.raises(StudyError, match=message):
        Study.load(path)


def test_one_name_for_batchnorm_re_calibration_and_the_old_one_still_read(tmp_path, assets):
    old = Study.load(_study(tmp_path, assets, **{"imgsz: 160": f"imgsz: 160\nbn_calibration: {assets}"}))
    new = Study.load(_study(tmp_path, assets, **{"imgsz: 160": f"imgsz: 160\nbn_recalibration: {assets}"}))
    assert old.bn_recalibration == new.bn_recalibration == assets
    with pytest.raises(StudyError, match="'bn_calibration': is the old name of 'bn_recalibration'"):
        Study.load(_study(tmp_path, assets, **{"imgsz: 160": f"imgsz: 160\nbn_calibration: {assets}\n"
                                                             f"bn_recalibration: {assets}"}))
    from posebench.cli import build_parser

    for flag in ("--bn-recalibration", "--bn-calibrate"):
        args = build_parser().parse_args(["compress", "--recipe", "r.yaml", "--out", "o", flag, str(assets)])
        assert args.bn_recalibration == assets


def test_a_variant_can_learn_from_inputs_of_its_own(tmp_path, assets):
    from posebench.study import build_variant

    p50 = REPO / "recipes" / "yolo-pose-oneshot-p50.yaml"
    own = (f"p50: {p50}\n  p50-bn: {{recipes: {p50}, bn_recalibration: {assets}}}\n"
           f"  p50-none: {{recipes: [{p50}], bn_recalibration: null, epochs: 0}}")
    study = Study.load(_study(tmp_path, assets, **{f"p50: {p50}": own, "imgsz: 160": f"imgsz: 160\nbn_recalibration: {assets}"}))
    assert study.variants["p50-bn"] == study.variants["p50-none"] == (p50,)
    assert study.inputs_of("p50")["bn_recalibration"] == study.inputs_of("p50-bn")["bn_recalibration"] == assets
    assert study.inputs_of("p50-none")["bn_recalibration"] is None and study.inputs_of("p50-none")["epochs"] == 0
    for change, message in ((f"{{recipes: {p50}, finetun: x}}", r"'variants\.p50-bn\.finetun': unknown key"),
                            (f"{{recipes: {p50}, finetune: nowhere.yaml}}", r"'variants\.p50-bn\.finetune'.*does not exist")):
        broken = _study(tmp_path, assets, **{f"p50: {p50}": f"p50-bn: {change}"})
        with pytest.raises(StudyError, match=message):
            Study.load(broken)
    # the variant's own input is what its build learns from: BatchNorm re-calibrated on one, not on the other
    built = {v: json.loads(next((tmp_path / v).glob("*/sparsity.json")).read_text())
             for v in ("p50-bn", "p50-none") if build_variant(study, "default", v, tmp_path / v, tmp_path / "cache")}
    assert built["p50-bn"]["bn_recalibration_images"] and not built["p50-none"]["bn_recalibration_images"]


def test_a_variant_can_start_from_a_shipped_model(tmp_path, assets):
    """`{model: NAME}`: the variant runs (and its recipes compress) a shipped channel-pruned model in place of the
    study's, so it is compared with the dense base on the same images; a bundle or a misspelt name is refused."""
    from posebench.models import shipped_models
    from posebench.study import build_variant

    p50 = REPO / "recipes" / "yolo-pose-oneshot-p50.yaml"
    name = sorted(shipped_models())[0]
    study = Study.load(_study(tmp_path, assets, **{f"p50: {p50}": f"pruned: {{model: {name}}}"}))
    assert study.start_of("default", "pruned") == name and study.start_of("default", "base") == "default"
    assert build_variant(study, "default", "pruned", tmp_path / "v", tmp_path / "cache") == name
    assert build_variant(study, "default", "base", tmp_path / "b", tmp_path / "cache") == "default"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    for change, message in ((f"{{model: {name}x}}", rf"'variants\.pruned\.model'.*Did you mean \"{name}\""),
                            (f"{{model: {bundle}}}", r"'variants\.pruned\.model'.*is a bundle"),
                            ("{model: 3}", r"'variants\.pruned\.model'.*must be a shipped model's name")):
        with pytest.raises(StudyError, match=message):
            Study.load(_study(tmp_path, assets, **{f"p50: {p50}": f"pruned: {change}"}))


def test_shipped_studies_parse():
    from conftest import SHARED_DATA

    for path in sorted((REPO / "studies").glob("*.yaml")):
        if "shared/data" in path.read_text() and not SHARED_DATA.is_dir():
            continue  # a study judged on the shared data: parsed where the data is (the development machine, CI)
        study = Study.load(path)
        assert study.variants and study.runtimes


def _trial_ids(store: Path) -> list[str]:
    return [json.loads(line)["trial_id"] for line in store.read_text().splitlines() if line.strip()
            and "trial_id" in line]


@pytest.mark.slow
def test_sigkill_mid_study_then_resume_loses_nothing_and_duplicates_nothing(tmp_path, assets):
    study = _study(tmp_path, assets)
    out = tmp_path / "out"
    store = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "posebench", "study", str(study), "--out", str(out)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and (not store.is_file() or len(_trial_ids(store)) < 3):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the study and its measurement children
    proc.wait()
    before = _trial_ids(store)
    assert 3 <= len(before) < 20, "the kill should land half-way"
    result = run_cli("study", str(study), "--out", str(out))
    assert result.returncode == 0, result.stderr
    keys = _trial_ids(store)
    expected = {f"default|{v}|latency|{rt}|{t}{r}" for v in ("base", "p50") for rt in ("onnxruntime", "openvino")
                for t in (1, 2) for r in ("", "|r2")} | {f"default|{v}|accuracy|fidelity|{rt}" for v in ("base", "p50")
                                    for rt in ("onnxruntime", "openvino")}
    assert len(keys) == len(set(keys)), "duplicate records after resume"
    assert set(keys) == expected, "missing or unexpected records"
    assert keys[:len(before)] == before  # what was measured before the kill is kept as it was
    records = [json.loads(line) for line in store.read_text().splitlines() if line.strip()]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    # two interleaved rounds: every configuration's round 1 was measured before any round 2
    latency = [r for r in records if r["kind"] == "latency"]
    first_r2 = next(i for i, r in enumerate(latency) if r["round"] == 2)
    assert {r["round"] for r in latency[:first_r2]} == {1} and {r["round"] for r in latency[first_r2:]} == {2}
    assert all(r["compute"]["gops"] > 0 and 0 < r["compute"]["fraction_of_peak"] for r in latency)
    probes = [r for r in records if r["kind"] == "probe"]
    assert {"before", "after"} <= {p["when"] for p in probes} and all(p["probe"]["gflops"] > 0 for p in probes)
    report = out / "report" / "report.html"
    assert report.is_file() and "report.html" in result.stdout
    text = report.read_text()
    priced = (out / "report" / "cost.png").is_file()  # cost per frame, where the price table knows this CPU
    assert text.count("data:image/png;base64,") == 4 + priced  # box, pose, latency, pareto (+ cost)
    assert priced == ("USD per million frames" in text)
    for needle in ("Verdict", "Accuracy: fidelity", "Latency (ms", "Pareto front", "Machines",
                   "fastest configuration within", "No GPU measurement", "Noise and roofline", "% of peak",
                   "during study &#x27;tiny&#x27;"):
        assert needle in text, needle
    # a re-run with nothing left to do writes nothing new
    again = run_cli("study", str(study), "--out", str(out))
    assert again.returncode == 0 and "0 new records" in again.stdout
    assert _trial_ids(store) == keys


@pytest.mark.slow
def test_report_merges_machines_and_answers_under_a_budget(tmp_path, assets):
    study = _study(tmp_path, assets, **{"threads: [1, 2]": "threads: [2]",
                                        "runtimes: [onnxruntime, openvino]": "runtimes: [onnxruntime, deepsparse]"})
    out = tmp_path / "out"
    assert run_cli("study", str(study), "--out", str(out)).returncode == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    other = tmp_path / "laptop.jsonl"
    with open(other, "w") as fh:
        for r in records:  # the same study "measured on another machine", twice as slow
            r = json.loads(json.dumps(r))
            r["id"] = "laptop-" + r["id"]
            r["environment"].update(machine_id="laptop000000", cpu_model="Laptop CPU", usable_cores=4)
            if r["kind"] == "latency":
                for k in ("mean_ms", "p50_ms", "p99_ms"):  # its second round was disturbed: 3x slower again
                    r["latency"][k] *= 2 * (3.0 if r["round"] == 2 else 1.0)
            fh.write(json.dumps(r) + "\n")
    result = run_cli("report", str(out / "results.jsonl"), str(other), "--out", str(tmp_path / "rep"),
                     "--budget-ms", "100000", "--max-drop", "0.5", "--thesis")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "laptop000000" in md and "Laptop CPU, 4 cores" in md
    assert "Most accurate within 100000 ms" in md
    assert "Thesis reference (published, not measured here)" in md and "sml-p55-int8" in md
    rounds = md.split("## Noise and roofline")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in rounds.splitlines() if line.startswith("| yolo11n-pose")]
    assert len(rows) == 8  # base and p50 on two runtimes and two machines
    for row in rows:
        spread = float(row[5].rstrip("%")) / 100
        if abs(spread - 0.10) > 0.0005:  # the table rounds to 0.1 %: at "10.0%" either side of the line is right
            assert ("NOISY" in row[9]) == (spread > 0.10), row  # flagged exactly when the rounds differ by > 10 %
        if "Laptop" in row[3]:  # its second round was disturbed (3x): always flagged
            assert "NOISY" in row[9], row
    beside = md.split("## Thesis Table 4.2 beside this run (DeepSparse)")[1].split("\n## ")[0]
    beside_rows = [line.split(" | ") for line in beside.splitlines() if line.startswith(("| base", "| p50"))]
    assert len(beside_rows) == 4  # base and p50 (the thesis's sml-base, sml-p50) on each machine
    for row in beside_rows:
        assert row[1] == "YOLOv8s-pose, 512x512, 8 (AMD Genoa)" and row[4].startswith("yolo11n-pose, 160x160, 2 (")
        assert row[3] == ("1.00" if row[0] == "| base" else "1.21")  # 2.759 / 2.272 ms
        assert float(row[6]) > 0 and (row[0] != "| base" or row[6] == "1.00")
    plausibility = md.split("## Thesis latencies: plausible or beyond peak?")[1]
    sml_base_8 = next(line for line in plausibility.splitlines() if line.startswith("| sml-base | 8-core"))
    assert "beyond peak: impossible" in sml_base_8 and "19.32" in sml_base_8  # 19.3 GOP in 2.759 ms on 8 cores
    assert "| trt-int8 | GPU | 0.371 |" in plausibility and "plausible" in plausibility.split("| trt-int8 | GPU")[1]
    fastest = md.split("fastest configuration within")[1].split("\n")[0]
    assert "Laptop" not in fastest  # the faster machine wins
    for png in ("accuracy-box.png", "accuracy-pose.png", "latency.png", "pareto.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 5000


def test_report_bad_input(tmp_path):
    result = run_cli("report", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path))
    assert result.returncode == 2 and "does not exist" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run_cli("report", str(empty), "--out", str(tmp_path))
    assert result.returncode == 2 and "no successful latency or accuracy record" in result.stderr


@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_study_goes_on_and_can_be_retried(tmp_path, assets):
    gradual = REPO / "recipes" / "yolo-pose-p50.yaml"  # needs fine-tuning data the study does not give
    study = _study(tmp_path, assets, **{"runtimes: [onnxruntime, openvino]": "runtimes: [onnxruntime]",
                                        "threads: [1, 2]": "threads: [1]",
                                        "variants:\n": f"variants:\n  broken: {gradual}\n"})
    out = tmp_path / "out"
    first = run_cli("study", str(study), "--out", str(out))
    assert first.returncode == EXIT_PARTIAL_FAILED, first.stderr  # some trials ran, the broken variant's crashed
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    records = [r for r in records if r["kind"] != "probe"]
    broken = [r for r in records if r["trial"]["variant"] == "broken"]
    assert broken and all(r["status"] == "error" and "fine-tuning needs data" in r["error"] for r in broken)
    assert all(r["status"] == "ok" for r in records if r["trial"]["variant"] != "broken")
    again = run_cli("study", str(study), "--out", str(out))
    assert "0 new records" in again.stdout
    retry = run_cli("study", str(study), "--out", str(out), "--retry-failed")
    assert f"{len(broken)} new records ({len(broken)} failed or skipped)" in retry.stdout


def test_trials_differing_only_in_a_runtime_option_keep_separate_records(tmp_path):
    """onnxruntime with and without flush-to-zero: two trials, two ids, two rows in a merged report."""
    from test_cli import FAST

    a, b = tmp_path / "a", tmp_path / "b"
    for out, spec in ((a, "onnxruntime"), (b, "onnxruntime[flush_denormals=true]")):
        result = run_cli("bench", "--runtime", spec, "--threads", "1", "--imgsz", "96", "--out", str(out), *FAST)
        assert result.returncode == 0, result.stderr
    plain, ftz = (json.loads((d / "results.jsonl").read_text()) for d in (a, b))
    assert plain["trial_id"] != ftz["trial_id"]
    assert "options" not in plain["trial"] and ftz["trial"]["options"] == {"flush_denormals": True}
    assert ftz["backend"]["flush_denormals"] is True and plain["backend"]["flush_denormals"] is False
    result = run_cli("report", str(a / "results.jsonl"), str(b / "results.jsonl"), "--out", str(tmp_path / "rep"))
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    latency = md.split("## Latency")[1].split("\n## ")[0]
    assert "onnxruntime@1" in latency and "onnxruntime[flush_denormals=true]@1" in latency
