"""Export: every way posebench gets a runnable artifact of a model, and the one type they all return.

- `artifact`: `Artifact` (path + metadata) and the metadata sidecar / ONNX helpers every artifact shares;
- `fp32`: posebench's own exports of a checkpoint (.pt, ONNX, OpenVINO IR; the reduced-precision artifacts made
  from them live in `posebench.compress.quantized_artifacts`, beside the quantization they run);
- `peer`: Ultralytics' own export (`yolo export ...`), as a user gets it;
- `imported`: an artifact a user already has (ONNX, OpenVINO IR, TensorRT engine), its layout read from it;
- `bundle`: the set of artifacts `posebench compress` writes for a variant;
- `store`: `ArtifactStore`, the artifacts of one model source by format and input size, built and cached.
Ultralytics itself is reached only through `posebench.ultralytics_adapter`.
"""

from posebench.export.artifact import (DEFAULT_CACHE, FORMATS, Artifact, meta_path, onnx_weight_sparsity,
                                       parse_imgsz, read_metadata, write_metadata)
from posebench.export.store import ArtifactStore

__all__ = ["DEFAULT_CACHE", "FORMATS", "Artifact", "ArtifactStore", "meta_path", "onnx_weight_sparsity",
           "parse_imgsz", "read_metadata", "write_metadata"]
