"""The one loading path: any model source -> spec and verified weights -> a ready EmotionModel.

A model source is a registered name (``"default"``), an exported model's card (``.json``) or its
weights file with the card beside it (``.safetensors``/``.onnx``), a run folder of ``emolens
train`` (its best epoch), or an :class:`EmotionModel` (used as it is). Weights are fetched and
their SHA-256 checked before anything is built; cards name only registered architectures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .._device import resolve_device
from .._registry import TTA_MARGIN, ModelSpec, weights_identity
from ..errors import InvalidOptionError, ModelError
from ..weights import fetch, sha256_of
from . import check_precision
from ._classifier import EmotionModel, OnnxRuntime, Runtime, TorchRuntime
from ._network import read_temperatures
from ._run import RunFolder
from ._source import model_spec

__all__ = ["ModelSource", "int8_spec", "load_model", "resolve_model"]

ModelSource = str | Path | EmotionModel


def resolve_model(source: str | Path) -> tuple[ModelSpec, Path | None]:
    """(spec, local weights path) for a model source, the weights fetched and hash-checked.

    A run folder's weights are the training run's own output and carry no recorded hash; every
    other file is checked against its SHA-256 before it is used. ``None`` for a spec without weights.
    """
    text = str(source)
    if Path(text).is_dir():
        run = RunFolder(text)
        return run.spec(), run.best_weights
    spec = model_spec(text)
    return spec, fetch(spec.weights[0]) if spec.weights else None


def _runtime(spec: ModelSpec, weights: Path | None, device: torch.device, precision: str) -> Runtime:
    if spec.runtime == "onnx":
        if weights is None:
            raise ModelError(f"ONNX model {spec.name!r} has no weights file", component=spec.name)
        return OnnxRuntime(spec, weights, device)
    return TorchRuntime.load(spec, weights, device, amp=precision == "auto")


def _fastest_model(source: str | Path, device: torch.device, tta: bool | None) -> EmotionModel:
    """The model at ``"auto"`` or as its int8 graph, whichever this host ran faster (see ``_fastest``)."""
    import importlib.util

    from ._fastest import pick_fastest

    def torch_model() -> EmotionModel:
        return load_model(source, device=device, tta=tta)

    if Path(str(source)).is_dir() or device.type != "cpu":
        return torch_model()  # a run folder or a GPU: no int8 graph to weigh against
    spec = model_spec(source)
    if not spec.int8 or importlib.util.find_spec("onnxruntime") is None:
        return torch_model()
    graph = _int8_of(spec)
    candidates = {"auto": torch_model, "int8": lambda: _int8_model(graph, device, tta)}
    # Both mirror the faces the first pass is unsure of under flip TTA: a choice made with TTA off, or
    # under another margin, is measured again. The noise crops timed are all unsure, the worst case.
    setting = f"flip TTA margin {TTA_MARGIN}" if (spec.tta if tta is None else tta) else "no TTA"
    listed = spec.identity if tta in (None, spec.tta) else f"{spec.identity} ({setting})"
    return pick_fastest(listed, f"{spec.identity} vs {graph.identity} ({setting})", candidates)[1]


def int8_spec(source: str | Path) -> ModelSpec:
    """The spec of a model's int8 ONNX graph (its ``identity`` is what int8 results record as ``model_id``).

    Raises InvalidOptionError, naming the models that have one, when the model has none.
    """
    return _int8_of(model_spec(source))


def _int8_of(spec: ModelSpec) -> ModelSpec:
    """:func:`int8_spec` of a spec already resolved."""
    if not spec.int8:
        from . import MODELS

        having = [s.name for s in MODELS.specs() if s.int8]
        raise InvalidOptionError(
            f"model {spec.name!r} has no int8 graph; models with one: {', '.join(having)}", option="precision"
        )
    return dataclasses.replace(spec, runtime="onnx", architecture="", weights=spec.int8, options={})


def _int8_model(graph: ModelSpec, device: torch.device, tta: bool | None) -> EmotionModel:
    """A model's int8 ONNX graph (:func:`int8_spec`): the network's logits, around which the model's flip TTA
    and the calibration in the graph's metadata (its float model's, written by ``tools.quantize``) run as for
    the torch model."""
    runtime = OnnxRuntime(graph, fetch(graph.weights[0]), device, precision="int8")
    return EmotionModel(graph, runtime, device=device, tta=tta, temperatures=runtime.temperatures)


def load_model(
    source: ModelSource, *, device: str | torch.device = "cpu", tta: bool | None = None, precision: str = "auto"
) -> EmotionModel:
    """An EmotionModel from any model source: registered name, card or weights path, run folder or instance.

    The weights are fetched (downloaded once and cached, or bundled) and verified before the model
    is built; the calibration stored with the weights is applied. ``tta=None`` keeps the model's
    default (flip test-time augmentation for ``default`` and ``large``). ``precision`` is ``"auto"``
    (bf16 where the device has it natively), ``"float32"``, ``"int8"`` or ``"fastest"`` (see :data:`PRECISIONS`);
    the model's :attr:`~EmotionModel.precision` says what runs.
    """
    check_precision(precision)
    if isinstance(source, EmotionModel):
        return source
    if not isinstance(source, (str, Path)):
        raise InvalidOptionError(
            f"model must be a registered name, a card or weights path, a run folder or an EmotionModel, not "
            f"{type(source).__name__} {source!r:.40}",
            option="model",
        )
    if not str(source).strip():
        raise InvalidOptionError(
            "model is empty; give a registered name such as 'default' (see `emolens models`), a card or weights "
            "path, or a run folder",
            option="model",
        )
    torch_device = resolve_device(device)
    if precision == "fastest":
        return _fastest_model(source, torch_device, tta)
    if precision == "int8":
        return _int8_model(_int8_of(model_spec(source)), torch_device, tta)
    spec, weights = resolve_model(source)
    runtime = _runtime(spec, weights, torch_device, precision)
    temperatures = runtime.temperatures if isinstance(runtime, OnnxRuntime) else None
    identity = spec.identity
    if Path(str(source)).is_dir() and weights is not None:  # a run's own output: its hash is recorded nowhere
        identity = weights_identity(f"{spec.name}.safetensors", sha256_of(weights))
    elif weights is not None and spec.runtime == "torch":
        temperatures = read_temperatures(weights, len(spec.labels))
    return EmotionModel(
        spec,
        runtime,
        device=torch_device,
        tta=tta,
        temperatures=temperatures,
        identity=identity,
    )
