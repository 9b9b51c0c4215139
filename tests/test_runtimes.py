"""One contract test per backend, run against every registered CPU runtime, with real artifacts."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import IMGSZ
from posebench.errors import ModelLoadError, RuntimeNotInstalledError, UnknownRuntimeError
from posebench.latency import LatencyProtocol
from posebench.measure import fixed_input
from posebench.runtimes import CPU_RUNTIMES, REGISTRY, backend_class, create_backend, parse_runtimes

REAL_RUNTIMES = [r for r in CPU_RUNTIMES if r != "null"]


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return fixed_input((1, 3, *IMGSZ))


@pytest.fixture(scope="module")
def torch_output(artifacts, batch) -> np.ndarray:
    with create_backend("torch", artifacts.get("pt", IMGSZ), threads=2) as backend:
        return backend.infer(batch)[0]


def test_torch_output_is_the_decoded_pose_tensor(torch_output):
    h, w = IMGSZ
    anchors = sum((h // s) * (w // s) for s in (8, 16, 32))
    assert torch_output.shape == (1, 4 + 1 + 17 * 3, anchors)
    assert torch_output.dtype == np.float32


@pytest.mark.parametrize("runtime", REAL_RUNTIMES)
@pytest.mark.parametrize("threads", [1, 2])
def test_runtime_matches_torch_fp32(runtime, threads, artifacts, batch, torch_output):
    artifact = artifacts.get(backend_class(runtime).artifact_format, IMGSZ)
    with create_backend(runtime, artifact, threads=threads) as backend:
        outputs = backend.infer(batch)
        info = backend.info()
    assert len(outputs) == 1 and outputs[0].shape == torch_output.shape
    relative = np.abs(outputs[0] - torch_output).max() / np.abs(torch_output).max()
    assert relative < 1e-3, f"{runtime}: max relative error {relative:.2e}"
    # scores live in [0, 1] next to pixel coordinates: check them on their own scale too
    assert np.abs(outputs[0][:, 4] - torch_output[:, 4]).max() < 1e-3
    assert info["runtime"] == runtime and info["threads"] == threads and info.get("version")


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_backend_measure_follows_protocol(runtime, artifacts, batch):
    artifact = artifacts.get(backend_class(runtime).artifact_format, IMGSZ)
    protocol = LatencyProtocol(iters=7, min_seconds=0.0, warmup_iters=2, warmup_seconds=0.0)
    with create_backend(runtime, artifact, threads=1) as backend:
        stats = backend.measure(batch, protocol)
    assert stats.count >= 7 and stats.warmup_count >= 2
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms


def test_null_backend_returns_preallocated_outputs(artifacts, batch, torch_output):
    with create_backend("null", artifacts.get("onnx", IMGSZ), threads=1) as backend:
        first, second = backend.infer(batch), backend.infer(batch)
    assert first[0] is second[0] and first[0].shape == torch_output.shape


def test_unknown_runtime_suggests_the_closest_name():
    with pytest.raises(UnknownRuntimeError, match='Did you mean "openvino"'):
        parse_runtimes("onnxruntime,openvno")
    assert parse_runtimes("all") == list(CPU_RUNTIMES)
    assert set(CPU_RUNTIMES) <= set(REGISTRY)


def test_missing_deepsparse_environment_says_how_to_install(artifacts, tmp_path):
    with pytest.raises(RuntimeNotInstalledError, match="deepsparse==1.8.0"):
        create_backend("deepsparse", artifacts.get("onnx", IMGSZ), threads=1,
                       options={"python": str(tmp_path / "no-such-env" / "bin" / "python")})


@pytest.mark.parametrize("runtime", REAL_RUNTIMES)
def test_corrupt_model_file_is_a_load_error(runtime, tmp_path):
    fmt = backend_class(runtime).artifact_format
    bad = tmp_path / {"pt": "bad.pt", "onnx": "bad.onnx", "openvino": "bad.xml"}[fmt]
    bad.write_bytes(b"this is not a model\x00\x01")
    with pytest.raises(ModelLoadError):
        create_backend(runtime, bad, threads=1)


def test_tensorrt_without_gpu_is_a_clear_error(artifacts):
    """TensorRT is unverified here (no GPU): without one, creating it must fail cleanly, never crash."""
    from posebench.errors import PosebenchError

    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present: see test_tensorrt_matches_torch")
    with pytest.raises(PosebenchError, match="tensorrt"):
        create_backend("tensorrt", artifacts.get("onnx", IMGSZ), threads=1)


def test_tensorrt_matches_torch(artifacts, batch, torch_output):
    """Runs only where a GPU and TensorRT exist (never on the development machine)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: the TensorRT backend is unverified on this machine")
    with create_backend("tensorrt", artifacts.get("onnx", IMGSZ), threads=1) as backend:
        output = backend.infer(batch)[0]
    assert np.abs(output - torch_output).max() / np.abs(torch_output).max() < 1e-3
