"""Validate a torch device name up front, so a bad one is a typed error naming the valid choices."""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path
from typing import Any, NamedTuple

from .errors import InvalidOptionError

__all__ = ["CpuInfo", "check_device_name", "cpu_info", "resolve_device"]

_DEVICE_NAME = re.compile(r"cpu(:0)?|cuda(:\d+)?")


def check_device_name(device: object) -> str:
    """``device`` if it is spelled as a device emolens runs on ("cpu", "cuda", "cuda:N"), without importing
    torch or looking for a GPU: for processes that only hand the name to workers (a Ray driver may have no GPU)."""
    if not isinstance(device, str) or not _DEVICE_NAME.fullmatch(device):
        raise InvalidOptionError(f"unknown device {device!r:.40}; use 'cpu' or 'cuda' (or 'cuda:N')", option="device")
    return device


def resolve_device(device: Any) -> Any:
    """The ``torch.device`` for ``device`` ("cpu", "cuda", "cuda:N"), checked against this machine."""
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidOptionError(
            f"unknown device {device!r}; use 'cpu' or 'cuda' (or 'cuda:N')", option="device"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidOptionError(
                f"device {str(device)!r} asked for, but this machine has no CUDA GPU (or torch was built without "
                "CUDA); use 'cpu'",
                option="device",
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InvalidOptionError(
                f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)", option="device"
            )
    elif resolved.type == "cpu" and resolved.index not in (None, 0):
        raise InvalidOptionError(
            f"device {str(device)!r}: there is one CPU device; use 'cpu' (torch uses every core)", option="device"
        )
    elif resolved.type != "cpu":
        raise InvalidOptionError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda'", option="device")
    return resolved


#: CPU features that decide which precision runs fast (native bf16, int8 dot products, matrix units).
MATRIX_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


class CpuInfo(NamedTuple):
    """This machine's CPU model name and which of :data:`MATRIX_FEATURES` it has."""

    name: str
    features: frozenset[str]

    def describe(self) -> str:
        """``AMD EPYC (avx2, avx512f, ...)``: for benchmark tables and remembered timings."""
        return f"{self.name} ({', '.join(f for f in MATRIX_FEATURES if f in self.features) or 'no AVX2'})"


@functools.cache
def cpu_info() -> CpuInfo:
    """The CPU, read once from /proc/cpuinfo (elsewhere: the platform's name and no known features)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return CpuInfo(platform.processor() or platform.machine(), frozenset())
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}
    flags = set(fields.get("flags", "").split())
    return CpuInfo(fields.get("model name", platform.machine()), frozenset(f for f in MATRIX_FEATURES if f in flags))
