"""Build emotion networks from specs, load their weights safely, and run batched inference.

Weights are read with safetensors (never pickle) after checking their SHA-256.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._device import cpu_info
from .._registry import ModelSpec, resolve
from ..errors import EmolensError, InvalidOptionError, WeightsError

__all__ = [
    "NetworkWeights",
    "autocast_for",
    "build_model",
    "build_network",
    "build_partial",
    "calibrated_softmax",
    "cpu_has_native_bf16",
    "fuse_for_inference",
    "load_state",
    "network_shape",
    "predict_logits",
    "prepare_for_inference",
    "read_temperatures",
    "save_state",
    "temperatures_in",
]


#: Parameters (and buffers) a network may have: about 9x the largest bundled model (`large` v3, 10.9M). A card is a
#: few hundred bytes, and options such as ``widths`` decide what building its network allocates (4 bytes each,
#: before any weights are read): checked on a weightless copy first.
MAX_PARAMETERS = 100_000_000
#: The dtypes a floating-point tensor of a weights file may have (integer buffers, such as BatchNorm's step
#: count, keep theirs).
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


def network_shape(spec: ModelSpec) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """The dtype and shape of every tensor of the spec's network, from a copy on the meta device (no memory);
    InvalidOptionError past :data:`MAX_PARAMETERS` or for options the architecture refuses. An architecture
    that cannot be built on the meta device (a plug-in's builder may read files) is built for real instead."""
    try:  # bad options are reported from here, never built for real (an ensemble's huge but valid first member
        with torch.device("meta"):  # would be, before its second member's error)
            skeleton = build_network(spec)
    except EmolensError:
        raise
    except Exception:  # a builder that needs real tensors (a plug-in's may read files)
        skeleton = build_network(spec)
    state = skeleton.state_dict()
    count = sum(tensor.numel() for tensor in state.values())
    if count > MAX_PARAMETERS:
        raise InvalidOptionError(
            f"model {spec.name!r}: architecture {spec.architecture!r} with options {_brief(spec.options)} has "
            f"{count:,} parameters, more than the {MAX_PARAMETERS:,} emolens builds; check the options",
            option="options",
        )
    return {name: (tensor.dtype, tuple(tensor.shape)) for name, tensor in state.items()}


def build_network(spec: ModelSpec) -> nn.Module:
    """An untrained network of the spec's registered architecture, with its options, labels and input; a
    builder's TypeError or ValueError (an option of the wrong type or range) as InvalidOptionError.
    Its size is not bounded here: :func:`network_shape` measures it first, as :func:`_build` does."""
    from . import ARCHITECTURES

    architecture = ARCHITECTURES.get(spec.architecture)
    options: dict[str, Any] = dict(spec.options)
    try:
        network: nn.Module = resolve(architecture.builder)(
            num_classes=len(spec.labels), input_size=spec.input.size, in_channels=spec.input.channels, **options
        )
    except EmolensError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # not RuntimeError: out of memory is not an option
        raise InvalidOptionError(
            f"model {spec.name!r}: architecture {spec.architecture!r} cannot be built with options "
            f"{_brief(spec.options)} ({type(exc).__name__}: {str(exc)[:200]}); check the options",
            option="options",
        ) from None
    return network


def _brief(options: Mapping[str, Any]) -> str:
    text = json.dumps(dict(options), default=str)
    return text if len(text) <= 200 else text[:200] + "..."


#: Weights to build a network with: a safetensors file (already hash-checked by its resolver), or a state
#: dict in memory (a checkpoint's last-epoch EMA weights).
NetworkWeights = str | Path | Mapping[str, torch.Tensor]


def build_model(spec: ModelSpec, weights: NetworkWeights | None = None) -> nn.Module:
    """The one joiner of an architecture and its weights: the spec's network with ``weights`` loaded.

    Every name must match in name and shape (WeightsError saying which do not). The network is in
    training layout (BatchNorm unfolded); :func:`prepare_for_inference` makes it ready to run.
    Models loaded for analysis go through :func:`emolens.load_model`, which resolves and verifies the
    weights before calling this.
    """
    network, _ = _build(spec, weights, strict=True)
    return network


def build_partial(spec: ModelSpec, weights: NetworkWeights) -> tuple[nn.Module, list[str]]:
    """The spec's network with the tensors of ``weights`` that fit it, and the names of those that did not.

    For fine-tuning a model for other labels (``emolens train --init``): the output layer starts fresh.
    """
    return _build(spec, weights, strict=False)


def _build(spec: ModelSpec, weights: NetworkWeights | None, *, strict: bool) -> tuple[nn.Module, list[str]]:
    try:
        shape = network_shape(spec)
    except InvalidOptionError as exc:
        if not strict or weights is None:  # options of a run being trained: the user's own
            raise
        # a model's card names the options: not the request's fault (serve answers 503, not 422)
        name = Path(weights).name if not isinstance(weights, Mapping) else spec.name
        raise WeightsError(f"{exc} (they come from the model's card: export it again)", filename=name) from None
    if weights is not None and not isinstance(weights, Mapping):  # a file: checked before the network is built
        _check_file_tensors(Path(weights), shape, strict=strict)
    network = build_network(spec)
    if weights is None:
        return network, []
    if isinstance(weights, Mapping):
        return network, _load_tensors(network, dict(weights), strict=strict, source="the state dict")
    return network, load_state(network, weights, strict=strict)


def _check_file_tensors(path: Path, shape: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], *, strict: bool) -> None:
    """A weights file's header against the network it is for: readable, floating point where the network is,
    and (``strict``) the same names and shapes; WeightsError otherwise, before either is allocated."""
    with _safetensors_errors(path):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            declared = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
            tensors = {name: (piece.get_dtype(), tuple(piece.get_shape())) for name, piece in declared.items()}
    for name, (dtype, _) in tensors.items():
        expected = shape.get(name)
        if expected is not None and expected[0].is_floating_point and dtype not in _FLOAT_DTYPES:
            raise WeightsError(
                f"weights file {path.name} stores {name!r} as {dtype}, not as floating point: it was not written by "
                "`emolens export` (export the model again)",
                filename=path.name,
            )
    if strict:
        missing = sorted(name for name in shape if tensors.get(name, (None, None))[1] != shape[name][1])
        unexpected = sorted(set(tensors) - set(shape))
        if missing or unexpected:
            raise WeightsError(
                f"weights file {path.name} does not fit this architecture (missing or reshaped: "
                f"{', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(unexpected[:5]) or 'none'}): check the "
                "model's architecture options and labels",
                filename=path.name,
            )


@contextlib.contextmanager
def _safetensors_errors(path: Path) -> Iterator[None]:
    """safetensors' own errors (a truncated file, overlapping tensors, a header of absurd size) as WeightsError."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as exc:
        raise WeightsError(
            f"weights file {path.name} is not a readable safetensors file ({str(exc)[:200]}): export the model again",
            filename=path.name,
        ) from None


def save_state(
    network: nn.Module, path: str | Path, *, half: bool = False, metadata: Mapping[str, str] | None = None
) -> None:
    """Write the network's weights as safetensors (fp16 storage with ``half=True``).

    The same weights and metadata always give the same bytes (and SHA-256): see ``_sorted_header``.
    The file is replaced atomically, so it is never seen half written.
    """
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    blob = _sorted_header(save(state, metadata=dict(metadata or {})))
    partial = Path(f"{path}.partial")
    partial.write_bytes(blob)
    partial.replace(path)  # atomic: a run killed while saving keeps its previous best weights


def _sorted_header(blob: bytes) -> bytes:
    """A safetensors file with the keys of its JSON header sorted.

    safetensors writes metadata entries in hash-map order, which differs from process to process;
    sorted, an export is byte-for-byte reproducible. Tensor offsets are relative to the data that
    follows the header, so only the header (padded to 8 bytes, as the format asks) changes.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]


def load_state(network: nn.Module, path: str | Path, *, strict: bool = True) -> list[str]:
    """Load safetensors weights into ``network`` (converted to its dtypes).

    ``strict``: every key must match in name and shape (a mismatch raises WeightsError). Otherwise
    the tensors of another shape or missing from the file are left as they are (fine-tuning a
    model for other labels: the last layer starts fresh); their names are returned.
    """
    from safetensors.torch import load_file

    with _safetensors_errors(Path(path)):
        state = load_file(str(path))
    return _load_tensors(network, state, strict=strict, source=f"weights file {Path(path).name}")


def _load_tensors(network: nn.Module, state: dict[str, torch.Tensor], *, strict: bool, source: str) -> list[str]:
    reference = network.state_dict()
    fitting = {
        k: v.to(reference[k].dtype) for k, v in state.items() if k in reference and v.shape == reference[k].shape
    }
    left = sorted(set(reference) - set(fitting))
    if strict and (left or len(fitting) != len(state)):
        unexpected = sorted(set(state) - set(fitting))
        raise WeightsError(
            f"{source} does not fit this architecture (missing or reshaped: "
            f"{', '.join(left[:5]) or 'none'}; unexpected: {', '.join(unexpected[:5]) or 'none'}): check the "
            "model's architecture options and labels",
            filename=source.removeprefix("weights file "),
        )
    network.load_state_dict(fitting, strict=False)
    return left


def read_temperatures(path: str | Path, classes: int) -> tuple[float, ...]:
    """The calibration in a weights file's metadata: a temperature per predicted class (all 1.0 when absent).

    ``emolens export`` writes ``temperatures`` (a JSON list); files from before per-class calibration
    have one ``temperature`` for every class. A value that is not ``classes`` positive numbers raises
    :class:`~emolens.errors.WeightsError` rather than silently running uncalibrated.
    """
    from safetensors import safe_open

    with _safetensors_errors(Path(path)), safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return temperatures_in(metadata, classes, Path(path).name)


def temperatures_in(metadata: Mapping[str, str], classes: int, file_name: str) -> tuple[float, ...]:
    """:func:`read_temperatures` of a file's metadata already read (a safetensors header, an ONNX graph's
    ``metadata_props``: emolens' int8 graphs carry their model's calibration there)."""
    key = "temperatures" if "temperatures" in metadata else "temperature"
    if key not in metadata:
        return (1.0,) * classes
    try:
        value = json.loads(metadata[key])
        temperatures = tuple(float(t) for t in value) if key == "temperatures" else (float(value),) * classes
    except (TypeError, ValueError):
        temperatures = ()
    if len(temperatures) != classes or not all(_MIN_TEMPERATURE <= t <= 1 / _MIN_TEMPERATURE for t in temperatures):
        raise WeightsError(
            f"weights file {file_name} has a malformed calibration in its metadata ({key}="
            f"{metadata[key]!r:.200}; expected {classes} numbers from {_MIN_TEMPERATURE} to {1 / _MIN_TEMPERATURE:g}): "
            "export the model again with "
            "`emolens export`, or remove that metadata entry to use the weights uncalibrated",
            filename=file_name,
        )
    return temperatures


#: Calibration temperatures are near 1 (0.5-3 measured); far outside, a division makes the logits inf.
_MIN_TEMPERATURE = 0.01


def calibrated_softmax(logits: torch.Tensor, temperatures: tuple[float, ...]) -> torch.Tensor:
    """Float64 probabilities with each row's logits divided by the temperature of its predicted class."""
    logits = logits.double()
    scale = torch.tensor(temperatures, dtype=torch.float64, device=logits.device)[logits.argmax(dim=1)]
    return torch.softmax(logits / scale[:, None], dim=1)


def fuse_for_inference(network: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a Conv2d/Linear in a Sequential into that layer.

    Inference-only (the network must be in eval mode): the outputs are the same up to float
    rounding, and CPU inference is about 15 % faster. Works for any registered architecture.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    for module in list(network.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        fused: list[nn.Module] = []
        i = 0
        while i < len(layers):
            layer, following = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
                fused.append(fuse_conv_bn_eval(layer, following))
                i += 2
            elif isinstance(layer, nn.Linear) and isinstance(following, nn.BatchNorm1d):
                fused.append(fuse_linear_bn_eval(layer, following))
                i += 2
            else:
                fused.append(layer)
                i += 1
        if len(fused) != len(layers):
            for name in list(module._modules):
                del module._modules[name]
            for index, layer in enumerate(fused):
                module.add_module(str(index), layer)
    return network


def prepare_for_inference(network: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Eval mode, BatchNorm folded, on ``device``, channels-last: how every emolens model runs."""
    network = fuse_for_inference(network.eval()).to(device)
    prepared: nn.Module = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return prepared


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX).

    Without it, PyTorch emulates bf16 on the CPU, which is several times *slower* than float32
    (measured 6x for training on an AVX2-only CPU), so emolens runs float32 there.
    """
    return bool({"avx512_bf16", "amx_bf16"} & cpu_info().features)


def autocast_for(device: torch.device, enabled: bool = True) -> Any:
    """bf16 autocast on CUDA, and on CPUs with native bf16 (2-3x faster there); a no-op elsewhere."""
    if enabled and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def predict_logits(network: nn.Module, batch: torch.Tensor, *, tta: bool = False, amp: bool = True) -> torch.Tensor:
    """Float32 logits for a standardised batch; ``tta`` averages with the horizontal mirror.

    Always in inference mode: a network in training mode (one being trained, or its EMA copy) is switched
    to ``eval()`` for the call and back after it, so BatchNorm uses its running statistics and never
    updates them from the data being measured.
    """
    device = next(network.parameters()).device
    batch = batch.to(device).contiguous(memory_format=torch.channels_last)
    training = network.training
    if training:
        network.eval()
    try:
        with torch.inference_mode(), autocast_for(device, amp):
            if tta:
                both = network(torch.cat([batch, batch.flip(-1)]))
                logits: torch.Tensor = (both[: len(batch)].float() + both[len(batch) :].float()) / 2
            else:
                logits = network(batch).float()
    finally:
        if training:
            network.train()
    return logits
