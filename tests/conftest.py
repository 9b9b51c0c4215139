"""Shared fixtures: a real model (the embedded yolo11n-pose), its real artifacts, small inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The labelled data lives beside the project (../shared/data), never inside it.
SHARED_DATA = Path(os.environ.get("POSEBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
IMGSZ = (160, 224)
DATA_FIXTURES = {"coco_pose_mini", "mini", "coco_pose_val"}  # tests using these need ../shared/data  # small and rectangular: tests stay fast and (height, width) order is exercised


def run_cli(*args: str, timeout: float = 600) -> "subprocess.CompletedProcess[str]":
    """Run `posebench ARGS` as a user types it, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "posebench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def run_here(*args: str) -> "subprocess.CompletedProcess[str]":
    """`posebench ARGS` in this process (for input that fails before any work: no interpreter to start), its
    output and exit status as `run_cli` gives them; the handlers `main` installs are put back."""
    import contextlib
    import io
    import signal
    import warnings

    from posebench.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler, formatwarning = signal.getsignal(signal.SIGTERM), warnings.formatwarning
    try:
        with contextlib.chdir(REPO), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
        warnings.formatwarning = formatwarning
    return subprocess.CompletedProcess(["posebench", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def default_source():
    from posebench.models import resolve_model

    return resolve_model(None)


@pytest.fixture(scope="session")
def artifacts(default_source, cache_dir):
    from posebench.export import ArtifactStore

    return ArtifactStore(default_source, cache_dir)


@pytest.fixture(scope="session")
def coco_pose_mini() -> Path:
    path = SHARED_DATA / "coco-pose-mini"
    if not (path / "coco-pose-mini.yaml").is_file():
        pytest.skip(f"labelled data not found at {path}: it ships only beside the project on the development "
                    "machine and in CI (set POSEBENCH_SHARED_DATA to its folder to run these tests)")
    return path


@pytest.fixture(scope="session")
def coco_pose_val(tmp_path_factory) -> Path:
    """A writable copy of the 750-image judging set (Ultralytics writes label caches beside the data)."""
    import shutil

    path = SHARED_DATA / "coco-pose-val"
    if not (path / "coco-pose-val.yaml").is_file():
        pytest.skip(f"the judging set was not found at {path}: it ships only beside the project on the development "
                    "machine and in CI (set POSEBENCH_SHARED_DATA to its folder to run these tests)")
    root = tmp_path_factory.mktemp("data") / "coco-pose-val"
    shutil.copytree(path, root)
    return root


@pytest.fixture(scope="module")
def mini(coco_pose_mini, tmp_path_factory) -> Path:
    """A writable copy (Ultralytics writes label caches beside the data), with a val+train2017 YAML."""
    import shutil

    root = tmp_path_factory.mktemp("data") / "coco-pose-mini"
    shutil.copytree(coco_pose_mini, root)
    text = (root / "coco-pose-mini.yaml").read_text()
    (root / "both.yaml").write_text(text.replace("val: images/val", "val: [images/val, images/train2017]"))
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tiers: a test that uses the shared data is marked `data` (slow and train are marked where they are
    defined); `make test-fast` runs what is in none of the three."""
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)
