"""A tiny message format for talking to worker processes over pipes.

A message is a little-endian uint32 header length, a JSON header, then the raw bytes of any
arrays the header describes. Raw bytes (not pickle) keep the two sides independent of each
other's numpy major version (the DeepSparse worker runs numpy<2). Standard library + numpy only.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

import numpy as np


def send(stream: BinaryIO, header: dict[str, Any], arrays: list[np.ndarray] = ()) -> None:
    """Write one message: `header` plus `arrays` (sent as C-contiguous raw bytes)."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = {**header, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]}
    blob = json.dumps(header).encode()
    stream.write(struct.pack("<I", len(blob)))
    stream.write(blob)
    for a in arrays:
        stream.write(memoryview(a).cast("B"))
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("worker pipe closed")
    return data


def receive(stream: BinaryIO) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message; raises EOFError when the other side has gone."""
    (size,) = struct.unpack("<I", _read_exact(stream, 4))
    header = json.loads(_read_exact(stream, size))
    arrays = []
    for spec in header.pop("arrays", []):
        dtype = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        raw = _read_exact(stream, count * dtype.itemsize)
        arrays.append(np.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).copy())
    return header, arrays
