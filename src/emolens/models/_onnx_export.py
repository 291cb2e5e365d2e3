"""Export an emolens model as an ONNX graph with a card, for deployment where emolens does not run.

The graph takes the model's normalised input batch (N, C, size, size) and returns calibrated
log-probabilities (N, K): flip test-time augmentation (where the model runs it) and the per-class
temperatures are inside the graph, so ``softmax(output)`` (or ``argmax``) is the model's answer in any
language. The card beside it (``<name>.json``) says how to prepare a face crop (``input``: size,
colour, normalisation) and names the labels; emolens itself loads it like any ONNX model card.

``logits_only=True`` writes the network alone (its raw logits, no TTA, no calibration) for a runtime
that applies both around it: emolens' int8 graphs (``python -m tools.quantize``), which then mirror only
the faces the first pass is unsure of, as the torch model does.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from .._checks import check_file_stem
from ..errors import InvalidOptionError
from ._card import ModelCard
from ._classifier import EmotionModel, TorchRuntime
from ._load import ModelSource, load_model

__all__ = ["OPSET", "export_onnx"]

#: The ONNX opset the graphs are written with (onnxruntime >= 1.16 runs it).
OPSET = 17


class _Deployable(nn.Module):
    """The network with its TTA and calibration folded in: normalised batch -> calibrated log-probabilities."""

    def __init__(self, network: nn.Module, temperatures: tuple[float, ...], tta: bool) -> None:
        super().__init__()
        self.network = network
        self.tta = tta
        self.temperatures: torch.Tensor
        self.register_buffer("temperatures", torch.tensor(temperatures, dtype=torch.float32))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.network(batch)
        if self.tta:
            logits = (logits + self.network(torch.flip(batch, dims=[3]))) / 2
        scale = self.temperatures[logits.argmax(dim=1)]
        return torch.log_softmax(logits / scale[:, None], dim=1)


def export_onnx(source: ModelSource, out_dir: str | Path, name: str, *, logits_only: bool = False) -> ModelCard:
    """Write ``<out_dir>/<name>.onnx`` and its card ``<name>.json`` (+ ``.md``) from an emolens (torch) model.

    ``source`` is anything :func:`emolens.load_model` takes. The exported card loads in emolens as an
    ONNX model (``model="<out_dir>/<name>.json"``) and answers as the source model does in float32.
    ``logits_only``: the graph returns the network's raw logits; its card keeps the model's TTA setting
    (emolens mirrors the unsure faces around the graph), and it answers uncalibrated unless the caller
    stores the model's temperatures in its metadata (as ``tools.quantize`` does for the int8 graphs).
    The source model is left as it was (the network is copied to the CPU in float32 for the export).
    """
    name = check_file_stem("name", name)
    model = load_model(source)
    if not isinstance(model.runtime, TorchRuntime):
        raise InvalidOptionError(
            f"model {model.name!r} is already an ONNX graph ({model.spec.runtime}); use its file as it is",
            option="model",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graph = out / f"{name}.onnx"
    _write_graph(model, graph, logits_only=logits_only)
    from ..weights import sha256_of

    card = ModelCard(
        name=name,
        labels=model.labels,
        weights_file=graph.name,
        weights_sha256=sha256_of(graph),
        architecture="",
        runtime="onnx",
        input=model.spec.input,
        valence_arousal=model.spec.valence_arousal and logits_only,  # raw outputs keep the two extra columns
        tta=model.tta and logits_only,  # otherwise inside the graph
        weights_license=model.spec.license,
        description=_description(model, logits_only=logits_only),
    )
    card.write(out / f"{name}.json")
    return card


def _description(model: EmotionModel, *, logits_only: bool) -> str:
    size, channels = model.input_size, model.spec.input.channels
    crops = f"input {model.spec.input.describe()} face crops (N, {channels}, {size}, {size})"
    if logits_only:
        tta = "; emolens runs flip TTA around it" if model.tta else ""
        return (
            f"{model.name} ({model.identity}) exported to ONNX, the network alone: {crops}; output the raw "
            f"logits over the labels, without the model's calibration{tta}."
        )
    tta = " with flip TTA on every face inside the graph" if model.tta else ""
    return (
        f"{model.name} ({model.identity}) exported to ONNX by `emolens export --onnx`: {crops}; output calibrated "
        f"log-probabilities over the labels{tta}: softmax gives the probabilities."
    )


def _write_graph(model: EmotionModel, path: Path, *, logits_only: bool) -> None:
    """Trace the model's network (float32, on the CPU) into an ONNX file with a dynamic batch axis."""
    network = copy.deepcopy(model.network).float().cpu()
    deployable: nn.Module = network if logits_only else _Deployable(network, model.temperatures, model.tta)
    deployable.eval()
    example = torch.zeros(2, model.spec.input.channels, model.input_size, model.input_size)
    partial = path.with_suffix(".onnx.partial")
    output = "logits" if logits_only else "log_probabilities"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(
            deployable,
            (example,),
            str(partial),
            input_names=["input"],
            output_names=[output],
            dynamic_axes={"input": {0: "N"}, output: {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )
    partial.replace(path)
