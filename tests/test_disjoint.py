"""Data discipline: a learning set that shares an image with the judging set is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_here
from posebench.errors import InvalidInputError
from posebench.evaluate.disjoint import check_disjoint


def _dataset(root, names: list[str], payload: dict[str, bytes] | None = None):
    import cv2

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for name in names:
        path = root / "images" / "val" / f"{name}.jpg"
        if payload and name in payload:
            path.write_bytes(payload[name])
        else:
            rng = np.random.default_rng(int(name) if name.isdigit() else len(name))  # distinct pixels per name
            cv2.imwrite(str(path), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    yaml = root / "data.yaml"
    yaml.write_text("train: images/val\nval: images/val\nkpt_shape: [17, 3]\nnames: {0: person}\n")
    return yaml


def test_disjoint_sets_pass_and_a_shared_image_is_refused(tmp_path):
    judge = _dataset(tmp_path / "judge", ["000000000139", "000000000785"])
    learn = _dataset(tmp_path / "learn", ["000000000001", "000000000002"])
    check_disjoint(learn, judge)  # nothing shared
    renamed = (tmp_path / "judge" / "images" / "val" / "000000000785.jpg").read_bytes()
    same_name = _dataset(tmp_path / "same-name", ["000000000785", "000000000003"])  # re-encoded copy: same name
    same_bytes = _dataset(tmp_path / "same-bytes", ["copy", "other"], payload={"copy": renamed})
    for learn in (same_name, same_bytes):
        with pytest.raises(InvalidInputError, match="shares 1 image.*judging set") as info:
            check_disjoint(learn, judge, what="recovery")
        assert "\n" not in str(info.value) and ("000000000785" in str(info.value))


def test_compress_refuses_a_calibration_set_that_overlaps_the_judge(tmp_path):
    judge = _dataset(tmp_path / "judge", ["000000000139", "000000000785"])
    result = run_here("compress", "--recipe", "recipes/int8-ptq.yaml", "--calib", str(judge), "--judge", str(judge),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning" not in line]
    assert len(lines) == 1 and "shares 2 image(s) with the judging set" in lines[0], result.stderr


def test_a_study_that_calibrates_on_its_judge_fails_up_front(tmp_path):
    from posebench.study import Study, StudyError

    judge = _dataset(tmp_path / "judge", ["000000000139"])
    study = tmp_path / "s.yaml"
    study.write_text(f"name: s\nmodels: [default]\nvariants: {{base: null}}\nruntimes: [onnxruntime]\n"
                     f"calibration: {judge}\nevaluation:\n  - name: j\n    data: {judge}\n")
    with pytest.raises(StudyError, match="'calibration': the calibration set .* shares 1 image"):
        Study.load(study)
