"""Build emotion networks from specs, load their weights safely, and run batched inference.

Weights are read with safetensors (never pickle) after checking their SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._registry import ModelSpec, resolve

__all__ = ["autocast_for", "build_network", "load_state", "predict_logits", "read_temperature", "save_state"]


def build_network(spec: ModelSpec) -> nn.Module:
    """An untrained network with the spec's architecture."""
    options: dict[str, Any] = dict(spec.options)
    network: nn.Module = resolve(spec.builder)(num_classes=len(spec.labels), input_size=spec.input_size, **options)
    return network


def save_state(
    network: nn.Module, path: str | Path, *, half: bool = False, metadata: Mapping[str, str] | None = None
) -> None:
    """Write the network's weights as safetensors (fp16 storage with ``half=True``)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(path), metadata=dict(metadata or {}))


def load_state(network: nn.Module, path: str | Path) -> None:
    """Load safetensors weights into ``network`` (converted to its dtypes); strict key match."""
    from safetensors.torch import load_file

    reference = network.state_dict()
    state = load_file(str(path))
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    network.load_state_dict(state, strict=True)


def read_temperature(path: str | Path) -> float:
    """The calibration temperature stored in a weights file's metadata (1.0 when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    temperature = float(metadata.get("temperature", 1.0))
    return temperature if temperature > 0 else 1.0


def autocast_for(device: torch.device, enabled: bool = True) -> Any:
    """bf16 autocast on CPU (2-3x faster with AVX-512 BF16) and CUDA; a no-op elsewhere."""
    if enabled and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def predict_logits(network: nn.Module, batch: torch.Tensor, *, tta: bool = False, amp: bool = True) -> torch.Tensor:
    """Float32 logits for a standardised batch; ``tta`` averages with the horizontal mirror."""
    device = next(network.parameters()).device
    batch = batch.to(device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast_for(device, amp):
        if tta:
            both = network(torch.cat([batch, batch.flip(-1)]))
            logits: torch.Tensor = (both[: len(batch)].float() + both[len(batch) :].float()) / 2
        else:
            logits = network(batch).float()
    return logits
