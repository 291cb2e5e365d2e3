"""ONNX Runtime sessions with emolens' settings: one home for them, used by ONNX models and the YuNet detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["onnx_session"]


def onnx_session(graph: Path | bytes, *, feature: str, cuda: bool = False) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``graph`` (a file or its bytes), on the CPU or, with ``cuda``
    where onnxruntime has it, on the GPU.

    As many threads as torch uses (``torch.set_num_threads``, which ``emolens batch`` workers set), idle
    threads asleep instead of spinning (so the pool never holds the cores while torch or OpenCV run between
    two calls; benchmarks/threads.py compares both), and only errors logged. Raises
    :class:`~emolens.errors.MissingDependencyError` naming ``feature`` when onnxruntime is not installed; the
    caller turns onnxruntime's own errors for a malformed graph into its typed error.
    """
    import torch

    from ._optional import require

    ort = require("onnxruntime", extra="onnx", feature=feature)
    providers = ["CPUExecutionProvider"]
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings on stderr for users
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(graph) if isinstance(graph, Path) else graph
    return ort.InferenceSession(source, sess_options=options, providers=providers)
