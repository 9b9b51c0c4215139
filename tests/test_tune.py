"""`posebench tune`: candidate sizes, the footage split, and one real search (tiny sizes, quick protocols)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from posebench.errors import InvalidInputError
from posebench.models import resolve_model
from posebench.report.tune import write_tune_report
from posebench.tune import Candidate, TunePlan, Tuner, candidate_sizes, footage_split


def test_candidate_sizes_follow_the_footage_aspect_ratio():
    landscape = candidate_sizes((720, 1280))
    assert landscape[:2] == ((640, 640), (384, 640))  # 16:9 at 640: 360 rows, padded to the stride
    assert (352, 576) in landscape and (256, 448) in landscape and (256, 256) in landscape
    assert all(h % 32 == 0 and w % 32 == 0 and h <= w for h, w in landscape)
    assert (640, 480) in candidate_sizes((640, 480), 640) or (480, 640) in candidate_sizes((480, 640), 640)
    assert (640, 384) in candidate_sizes((1280, 720))  # portrait footage: tall inputs
    assert set(candidate_sizes((500, 500))) == {(s, s) for s in (640, 576, 512, 448, 384, 320, 256)}


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """A short 16:9 video made from the images that ship with Ultralytics (people in every frame)."""
    from posebench.evaluate.validate import iter_frames
    from ultralytics.utils import ASSETS

    images = [image for _, image in iter_frames(Path(ASSETS))]
    path = tmp_path_factory.mktemp("footage") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (448, 252))
    for n in range(8):
        image = images[n % len(images)]
        shift = np.roll(image, 12 * n, axis=1)  # a little motion
        writer.write(cv2.resize(shift, (448, 252)))
    writer.release()
    return path


def test_footage_split_keeps_judging_frames_out(footage, tmp_path):
    assert footage_split(footage, None) == (8, 6, (252, 448))
    assert footage_split(footage, 3)[1] == 3
    with pytest.raises(InvalidInputError, match="first judging frame"):
        footage_split(footage, 8)
    with pytest.raises(InvalidInputError, match="does not exist"):
        TunePlan(source=resolve_model(None), footage=tmp_path / "none.avi", out=tmp_path)
    with pytest.raises(InvalidInputError, match="precisions"):
        TunePlan(source=resolve_model(None), footage=footage, out=tmp_path, precisions=("int4",))


@pytest.mark.slow
def test_tune_finds_a_deployment_and_resumes(footage, tmp_path):
    """A real search: 2 sizes x (fp32, Ultralytics int8) on OpenVINO, the reference at the native 160x160."""
    from posebench.latency import LatencyProtocol

    out = tmp_path / "tune"
    plan = TunePlan(source=resolve_model(None), footage=footage, out=out, runtimes=("openvino",), threads=(1,),
                    sizes=((160, 160), (96, 160)), precisions=("fp32", "int8-ultralytics"), native=(160, 160),
                    eval_from=5, tolerance=1.0,  # any accuracy passes: the test is the machinery, not a verdict
                    coarse=LatencyProtocol(iters=5, min_seconds=0.05, warmup_iters=2, warmup_seconds=0.0),
                    fine=LatencyProtocol(iters=5, min_seconds=0.05, warmup_iters=2, warmup_seconds=0.0),
                    finalists=1)
    summary = Tuner(plan).run()
    write_tune_report(out, summary)
    rows = {r["candidate"]: r for r in summary["rows"]}
    assert set(rows) == {"160x160-fp32", "96x160-fp32", "160x160-int8-ultralytics", "96x160-int8-ultralytics"}
    assert rows["160x160-fp32"]["accuracy"]["fidelity"] == pytest.approx(1.0)  # the dense model judges itself
    assert rows["160x160-int8-ultralytics"]["reference"] and summary["reference"]["candidate"] == "160x160-int8-ultralytics"
    assert 0 < summary["reference"]["accuracy"]["fidelity"] <= 1.0
    calibration = json.loads((out / "calibration" / "frames.json").read_text())
    assert calibration["frames_before"] == 5 and len(list((out / "calibration" / "images").iterdir())) == 5
    fine = [r for r in summary["rows"] if r["stage"] == "fine"]
    assert len(fine) == 2  # the fastest candidate and the reference
    assert all(len(r["rounds_p50_ms"]) == plan.fine_rounds for r in fine)
    reference = rows["160x160-int8-ultralytics"]
    assert reference["x_vs_reference"] == pytest.approx(1.0)
    winner = summary["winner"]
    assert winner and not winner["reference"] and winner["stage"] == "fine"
    assert any(r["pareto"] for r in fine)
    # the winner is a deployment the other commands take, at its own size
    from posebench.export import ArtifactStore

    deployed = resolve_model(winner["deployment"])
    assert deployed.kind in ("bundle", "artifact")
    assert tuple(ArtifactStore(deployed, tmp_path / "c").fixed_imgsz()) == tuple(winner["imgsz"])
    report = (out / "tune.md").read_text()
    assert not re.search(r"(^|[\s`(])/(tmp|work|root|home)/", report)  # relative paths, never a machine's own
    assert winner["candidate"] in report and "Verdict" in report and "(reference)" in report
    assert (out / "tune-pareto.png").read_bytes()[:4] == b"\x89PNG" and "tune-pareto.png" in report
    # resumable: a second run measures nothing again
    lines = (out / "results.jsonl").read_text().count("\n")
    again = Tuner(plan).run()
    assert (out / "results.jsonl").read_text().count("\n") == lines
    assert again["winner"]["candidate"] == winner["candidate"]
    # under a latency budget: the most accurate candidate within it (the dense model at its own size), or none
    from dataclasses import replace

    def fine_records() -> list[dict]:
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        return [r for r in rows if r.get("kind") == "latency" and "|fine|" in r["trial_id"]]

    before = len(fine_records())
    generous = Tuner(replace(plan, budget_ms=1e6, tolerance=0.01)).run()
    assert generous["winner"]["candidate"] == "160x160-fp32" and generous["floor"] == {}
    # another line-up in the fine rounds: the reference is timed again beside it, never compared across runs
    new = fine_records()[before:]
    assert sorted({r["trial"]["variant"] for r in new}) == ["160x160-fp32", "160x160-int8-ultralytics"]
    assert len(new) == 2 * plan.fine_rounds
    assert Tuner(replace(plan, budget_ms=1e-6)).run()["winner"] is None


@pytest.mark.slow
def test_the_reference_runs_as_ultralytics_runs_it(footage, tmp_path):
    """On a CPU with bf16 arithmetic Ultralytics' OpenVINO runs float parts in bf16: the reference is scored and
    timed on its own OpenVINO spec, and every candidate's ratio is taken against it; fidelity's dense reference
    stays in full precision."""
    from posebench.latency import LatencyProtocol
    from posebench.tune import default_runtimes, ultralytics_openvino

    assert ultralytics_openvino(["avx2", "avx512_bf16"]) == "openvino[inference_precision=bf16]"
    assert ultralytics_openvino(["avx2", "fma"]) == "openvino"
    assert default_runtimes(["amx_bf16"]) == ("openvino", "openvino[inference_precision=bf16]")
    assert default_runtimes(["avx2"]) == ("openvino",)
    with pytest.raises(InvalidInputError, match="runs on openvino"):
        TunePlan(source=resolve_model(None), footage=footage, out=tmp_path / "x", reference_runtime="onnxruntime")
    spec = "openvino[flush_denormals=true]"  # a spec every CPU runs, away from the candidates' plain openvino
    quick = LatencyProtocol(iters=5, min_seconds=0.05, warmup_iters=2, warmup_seconds=0.0)
    plan = TunePlan(source=resolve_model(None), footage=footage, out=tmp_path / "tune", runtimes=("openvino",),
                    threads=(1,), sizes=((96, 160),), precisions=("fp32",), native=(160, 160), eval_from=5,
                    tolerance=1.0, coarse=quick, fine=quick, finalists=1, reference_runtime=spec)
    summary = Tuner(plan).run()
    write_tune_report(plan.out, summary)
    assert summary["reference"]["runtime"] == spec
    rows = {(r["candidate"], r["runtime"]) for r in summary["rows"]}
    assert rows == {("96x160-fp32", "openvino"), ("160x160-int8-ultralytics", spec)}
    records = [json.loads(line) for line in (plan.out / "results.jsonl").read_text().splitlines()]
    ref_latency = [r for r in records if r.get("kind") == "latency" and r["trial"]["variant"].endswith("ultralytics")]
    assert ref_latency and all(r["trial"]["options"] == {"flush_denormals": True} for r in ref_latency)
    accuracy = [r for r in records if r.get("kind") == "accuracy"]
    assert accuracy and all(r["evaluation"]["reference_runtime"] == "openvino" for r in accuracy)
    winner = summary["winner"]
    assert winner["candidate"] == "96x160-fp32" and winner["x_vs_reference"] > 0
    assert spec in (plan.out / "tune.md").read_text()


def test_tune_cli_refuses_bad_input(footage, tmp_path):
    result = run_cli("tune", "--source", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = run_cli("tune", "--source", str(footage), "--macs", "1,x", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "--macs" in result.stderr
    result = run_cli("tune", "--source", str(footage), "--macs", "0.01", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "fraction of the MACs kept" in result.stderr
    result = run_cli("tune", "--source", str(footage), "--sizes", "100", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "multiples of 32" in result.stderr


def test_each_int8_precision_builds_with_its_ignored_scope():
    from posebench.tune_build import candidate_recipes

    presets = {}
    for precision in ("int8", "int8-coarse", "int8-fast"):
        [(label, recipe)] = candidate_recipes(Candidate((384, 640), precision), calibration_images=16, recovery_epochs=3)
        q = recipe.quantization()
        presets[label] = (q.ignored_preset, q.bias_correction)
    assert presets == {"int8": ("yolo-pose-float-head", "fast"), "int8-coarse": ("yolo-pose-float-coarse", "full"),
                       "int8-fast": ("yolo-pose-float-kpt-out", "fast")}


def test_candidate_recipes_are_recipes_a_file_could_hold():
    """Built as objects, each recipe says the same once written and read back (what OUT/recipes/ shows)."""
    from posebench.compress.recipe import Recipe
    from posebench.tune_build import candidate_recipes

    steps = candidate_recipes(Candidate((384, 640), "int8-ultralytics", 0.75), calibration_images=16, recovery_epochs=2)
    assert [label for label, _ in steps] == ["m75", "int8-ultralytics"]
    for _, recipe in steps:
        assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    pruning = steps[0][1]
    assert pruning.channel_pruning().macs == 0.75 and pruning.finetune.epochs == 2 and pruning.distillation.enabled
    assert pruning.distillation.task == 0.0  # distillation only: the footage has no labels


def test_candidate_names_are_unique():
    names = {Candidate((384, 640)).name, Candidate((384, 640), "int8").name, Candidate((384, 640), "int8", 0.75).name,
             Candidate((640, 640), "int8-ultralytics").name}
    assert names == {"384x640-fp32", "384x640-int8", "384x640-m75-int8", "640x640-int8-ultralytics"}


@pytest.mark.slow
def test_tune_through_the_cli(footage, tmp_path):
    """The command a user types: a tiny search ends with the winner and the report's path."""
    out = tmp_path / "cli"
    result = run_cli("tune", "--source", str(footage), "--sizes", "96x160", "--precisions", "fp32",
                     "--native-imgsz", "160", "--threads", "1", "--eval-from", "5", "--tolerance", "1", "--quick",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "winner: 96x160-fp32" in result.stdout and f"report: {out / 'tune.md'}" in result.stdout
    summary = json.loads((out / "tune.json").read_text())
    assert summary["reference"]["candidate"] == "160x160-int8-ultralytics" and summary["sizes"] == [[96, 160]]
    result = run_cli("tune", "--source", str(footage), "--sizes", "96x160", "--precisions", "fp32",
                     "--native-imgsz", "160", "--threads", "1", "--eval-from", "5", "--budget-ms", "0.000001",
                     "--quick", "--out", str(out))
    assert result.returncode == 7 and "no candidate meets the goal" in result.stdout  # nothing new measured


@pytest.mark.slow
def test_tune_judges_its_winner_on_labels_it_never_chose_on(footage, mini, tmp_path):
    """--judge scores the winner, the fp32 model at the winner's size and the reference on labels nothing was
    chosen on, with intervals and paired differences; a choosing set that overlaps the judge is refused."""
    from posebench.latency import LatencyProtocol

    quick = LatencyProtocol(iters=5, min_seconds=0.05, warmup_iters=2, warmup_seconds=0.0)
    judge = mini / "coco-pose-mini.yaml"
    plan = TunePlan(source=resolve_model(None), footage=footage, out=tmp_path / "tune", runtimes=("openvino",),
                    threads=(1,), sizes=((96, 160),), precisions=("fp32",), native=(160, 160), eval_from=5,
                    tolerance=1.0, coarse=quick, fine=quick, finalists=1, judge=judge)
    summary = Tuner(plan).run()
    write_tune_report(plan.out, summary)
    judged = summary["judged"]
    assert set(judged["scores"]) == {"winner", "fp32 at the winner's size", "reference"}
    assert all(s["images"] == 12 and s["interval"][0] <= s["map50_95"] <= s["interval"][1]
               for s in judged["scores"].values())
    # the winner is the fp32 model at 96x160: the same record, so no difference is made up for it
    assert judged["scores"]["winner"]["candidate"] == "96x160-fp32" and "fp32 at the winner's size" not in \
        judged["differences"]
    ref = judged["differences"]["reference"]
    assert ref["interval"][0] <= ref["difference"] <= ref["interval"][1]
    assert "## Judged on" in (plan.out / "tune.md").read_text()
    with pytest.raises(InvalidInputError, match="shares .* image"):
        TunePlan(source=resolve_model(None), footage=footage, out=tmp_path, data=judge, judge=judge)


def test_a_shipped_model_is_a_candidate_of_its_own(footage, tmp_path):
    """--models puts a shipped checkpoint in the search: its own name, read back from a summary row; an unknown name
    is refused before anything runs."""
    from posebench.models import shipped_models

    name = sorted(shipped_models())[0]
    c = Candidate((384, 640), "int8", 1.0, name)
    assert c.name == f"384x640-{name}-int8" and c.compressed and not Candidate((384, 640)).compressed
    assert Candidate.of_row({"imgsz": [384, 640], "precision": "int8", "macs": 1.0, "start": name}) == c
    assert Candidate.of_row({"imgsz": [384, 640], "precision": "fp32", "macs": 1.0}) == Candidate((384, 640))
    with pytest.raises(InvalidInputError, match="not shipped"):
        TunePlan(source=resolve_model(None), footage=footage, out=tmp_path, models=("no-such-model",))


def _row(name, p50, fidelity, within=True, reference=False):  # a fine-round row as the tune summary holds it
    return {"candidate": name, "runtime": "openvino", "p50_ms": p50, "accuracy": {"fidelity": fidelity},
            "within": within, "reference": reference}


def test_the_winner_is_the_fastest_resolved_candidate_above_the_floor():
    from posebench.tune import choose_winner

    rows = [_row("dense", 20.0, 1.0, reference=True),  # the reference never wins
            _row("int8", 10.0, 0.97), _row("pruned", 8.0, 0.96),
            _row("too-lossy", 5.0, 0.80),  # below the floor
            _row("straddles", 6.0, 0.955, within=None)]  # its interval straddles the tolerance: not resolved
    winner, faster = choose_winner(rows, {"fidelity": 0.95}, None)
    assert winner["candidate"] == "pruned"
    assert [r["candidate"] for r in faster] == ["straddles"]  # said in the summary, not chosen
    winner, faster = choose_winner([r for r in rows if r["candidate"] in ("dense", "straddles")], {"fidelity": 0.95},
                                   None)
    assert winner["candidate"] == "straddles" and faster == []  # unresolved wins only when nothing resolved is left
    assert choose_winner([rows[0], rows[3]], {"fidelity": 0.95}, None) == (None, [])


def test_under_a_budget_the_winner_is_the_most_accurate_that_fits():
    from posebench.tune import choose_winner

    rows = [_row("dense", 20.0, 1.0, reference=True), _row("int8", 10.0, 0.97), _row("pruned", 8.0, 0.96),
            _row("twin", 9.0, 0.97)]
    assert choose_winner(rows, {"fidelity": 0.9}, 12.0)[0]["candidate"] == "twin"  # same accuracy: the faster
    assert choose_winner(rows, {"fidelity": 0.9}, 8.5)[0]["candidate"] == "pruned"
    assert choose_winner(rows, {"fidelity": 0.9}, 5.0)[0] is None
