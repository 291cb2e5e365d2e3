"""Validate a torch device name up front, so a bad one is a typed error naming the valid choices."""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidOptionError

__all__ = ["check_device_name", "resolve_device"]

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
