"""EmotionModel: a model's spec, runtime and calibration, ready to classify face crops.

Two runtimes sit behind one interface: emolens' own torch networks (a registered architecture with
safetensors weights) and ONNX graphs (onnxruntime). Build models with
:func:`emolens.load_model`, which resolves, fetches, verifies and loads them; this module only runs them.
"""

from __future__ import annotations

import copy
import numbers
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .._registry import TTA_MARGIN, ModelSpec
from ..errors import InvalidOptionError, MissingDependencyError, ModelError
from ._network import (
    build_model,
    calibrated_softmax,
    cpu_has_native_bf16,
    predict_logits,
    prepare_for_inference,
    temperatures_in,
)
from ._preprocess import preprocess

__all__ = ["EmotionModel", "ModelOutput", "OnnxRuntime", "Runtime", "TorchRuntime"]


@dataclass(frozen=True)
class ModelOutput:
    """A model's answer for a batch of crops: probabilities (N, K) in the model's label order, and
    valence and arousal (N,) in [-1, 1] when the model predicts them (else ``None``)."""

    probabilities: np.ndarray
    valence: np.ndarray | None = None
    arousal: np.ndarray | None = None


class Runtime(Protocol):
    """Runs a model's graph: a normalised batch (N, C, H, W) -> raw outputs (N, D) float32."""

    def forward(self, batch: torch.Tensor, *, tta: bool) -> torch.Tensor: ...


#: The layers whose weights bf16 autocast casts on every call: the bf16 copy holds them cast once.
_AUTOCAST_LAYERS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)


class TorchRuntime:
    """A torch network that takes a normalised batch: emolens' own (BatchNorm folded), or one being trained.

    With ``bf16_copy`` (as :meth:`load` builds emolens' models) on a CPU that computes bf16 natively, inference
    runs on a copy of the network whose convolution and linear layers hold their weights in bf16 already,
    under the same autocast: the same logits, bit for bit, without casting those weights on every call (a
    cost that matters most for the few faces of one photo). The copy is made on first use and again when a
    parameter or buffer of ``network`` is replaced or changed in place (changes through ``.data`` are not
    seen). ``network`` stays the float32 master; forward hooks belong on :attr:`inference_network`.
    """

    def __init__(self, network: torch.nn.Module, *, amp: bool = True, bf16_copy: bool = False) -> None:
        self.network = network
        self.amp = amp  # bf16 autocast where the device computes bf16 natively (see autocast_for)
        self.bf16_copy = bf16_copy
        self._bf16: tuple[tuple[tuple[int, int], ...], torch.nn.Module] | None = None  # (weights key, copy)
        self._bf16_lock = threading.Lock()

    @classmethod
    def load(cls, spec: ModelSpec, weights: Path | None, device: torch.device, *, amp: bool = True) -> TorchRuntime:
        """The spec's network with its (verified) weights, prepared for inference on ``device``."""
        return cls(prepare_for_inference(build_model(spec, weights), device), amp=amp, bf16_copy=True)

    def forward(self, batch: torch.Tensor, *, tta: bool) -> torch.Tensor:
        return predict_logits(self.inference_network, batch, tta=tta, amp=self.amp)

    @property
    def inference_network(self) -> torch.nn.Module:
        """The module that answers: ``network``, or its copy with bf16 weights (see the class), in step with it."""
        if not self.bf16_copy or self.network.training or self.precision != "bfloat16" or self._device().type != "cpu":
            return self.network  # float32, a GPU (autocast as before), or a network being trained
        key = _weights_key(self.network)
        cached = self._bf16
        if cached is None or cached[0] != key:
            with self._bf16_lock:
                cached = self._bf16
                if cached is None or cached[0] != key:
                    cached = (key, _with_bf16_weights(self.network))
                    self._bf16 = cached
        return cached[1]

    def _device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def precision(self) -> str:
        """``"bfloat16"`` where the device computes it natively and ``amp`` is on, else ``"float32"``."""
        device = self._device()
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return "bfloat16" if self.amp and native else "float32"


def _weights_key(network: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """What changes when a parameter or buffer is replaced (its storage) or changed in place (its version;
    inference tensors keep none)."""
    tensors = (*network.parameters(), *network.buffers())
    return tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for t in tensors)


def _with_bf16_weights(network: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``network`` without gradients whose convolution and linear layers hold bf16 weights: the
    casts autocast makes on every call, made once (everything else stays as autocast sees it)."""
    copied = copy.deepcopy(network)
    for parameter in copied.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    for module in copied.modules():
        if isinstance(module, _AUTOCAST_LAYERS):
            module.to(torch.bfloat16)
    return copied


class OnnxRuntime:
    """An ONNX graph run by onnxruntime on the CPU (or CUDA, when asked for and available)."""

    def __init__(self, spec: ModelSpec, weights: Path, device: torch.device, *, precision: str = "float32") -> None:
        from .._onnx import onnx_session

        #: what the graph computes in: ``"float32"``, or ``"int8"`` for emolens' quantized graphs
        self.precision = precision
        try:
            self.session = onnx_session(weights, feature=f"the ONNX model {spec.name!r}", cuda=device.type == "cuda")
        except MissingDependencyError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types for malformed graphs
            raise ModelError(
                f"cannot load ONNX model {spec.name!r} from {weights.name}: {exc}", component=spec.name
            ) from None
        self.name = spec.name
        #: the calibration in the graph's metadata (``temperatures``, as emolens' int8 graphs carry it), else all 1
        self.temperatures = temperatures_in(
            self.session.get_modelmeta().custom_metadata_map, len(spec.labels), weights.name
        )
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        self.width = len(spec.labels) + (2 if spec.valence_arousal else 0)
        _check_graph_input(spec, list(graph_input.shape), weights.name)

    def forward(self, batch: torch.Tensor, *, tta: bool) -> torch.Tensor:
        x = batch.float().cpu().numpy()
        if tta:
            x = np.concatenate([x, x[..., ::-1]])
        try:
            answers = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail ...)
            raise ModelError(f"the ONNX model {self.name!r} failed: {exc}", component=self.name) from None
        outputs = np.concatenate([np.asarray(o, np.float32).reshape(len(x), -1) for o in answers], axis=1)
        if outputs.shape[1] != self.width:
            raise ModelError(
                f"the ONNX model returned {outputs.shape[1]} values per face, its spec declares {self.width}: "
                "check the spec's labels and valence_arousal",
                component=self.name,
            )
        if tta:
            half = len(outputs) // 2
            outputs = (outputs[:half] + outputs[half:]) / 2
        return torch.from_numpy(outputs)


def _check_graph_input(spec: ModelSpec, shape: list[object], file: str) -> None:
    """ModelError when the graph's fixed input dimensions disagree with the spec's channels and size (a card
    edited to "rgb" or another size): said at load, not as onnxruntime's own error on the first face."""
    expected = [None, 3 if spec.input.color == "rgb" else 1, spec.input.size, spec.input.size]
    fixed = [dim if isinstance(dim, int) and dim > 0 else None for dim in shape]
    if not fixed:  # a graph that declares no input shape: nothing to compare
        return
    if len(fixed) != 4 or any(f is not None and e is not None and f != e for f, e in zip(fixed, expected, strict=True)):
        shown = "x".join("?" if dim is None else str(dim) for dim in fixed)
        raise ModelError(
            f"the ONNX graph {file} takes input {shown}, but the model's card says {spec.input.color} "
            f"{spec.input.size}x{spec.input.size} (N x {expected[1]} x {spec.input.size} x {spec.input.size}): "
            "fix the card's input, or export the model again",
            component=spec.name,
        )


def _checked_margin(value: object) -> float:
    """``tta_margin`` as a float in [0, 1] (numpy numbers too), or InvalidOptionError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) <= 1:
        raise InvalidOptionError(
            f"tta_margin must be a number from 0 to 1 (1 mirrors every face), not {value!r}", option="tta_margin"
        )
    return float(value)


class EmotionModel:
    """Classifies uint8 face crops (gray or BGR, any size) into probabilities over the model's labels.

    Probabilities are calibrated with the temperatures stored with the weights (one per predicted
    class). Safe to share between threads: inference holds no per-call state.
    Build one with :func:`emolens.load_model`.
    """

    def __init__(
        self,
        spec: ModelSpec,
        runtime: Runtime,
        *,
        device: torch.device,
        tta: bool | None = None,
        temperatures: tuple[float, ...] | None = None,
        identity: str | None = None,
        tta_margin: float = TTA_MARGIN,
    ) -> None:
        margin = _checked_margin(tta_margin)
        self.spec = spec
        self.name = spec.name
        #: Which weights answer: ``<weights file stem>@<sha256 prefix>`` (results record it as ``model_id``).
        self.identity = spec.identity if identity is None else identity
        self.runtime = runtime
        self.device = device
        self.tta = spec.tta if tta is None else tta
        self.temperatures = temperatures or (1.0,) * len(spec.labels)
        #: With ``tta``: a face is mirrored when its two most likely labels are less than this apart (see
        #: :data:`TTA_MARGIN`); ``1.0`` mirrors every face.
        self.tta_margin = margin

    def with_options(
        self,
        *,
        tta: bool | None = None,
        temperatures: tuple[float, ...] | None = None,
        tta_margin: float | None = None,
    ) -> EmotionModel:
        """The same model (sharing its runtime) with another TTA setting or calibration.

        ``temperatures=()`` runs it uncalibrated (every temperature 1); ``tta_margin=1.0`` mirrors every face
        under flip TTA, not only the uncertain ones (see :data:`TTA_MARGIN`).
        """
        return EmotionModel(
            self.spec,
            self.runtime,
            device=self.device,
            tta=self.tta if tta is None else tta,
            temperatures=self.temperatures if temperatures is None else temperatures,
            identity=self.identity,
            tta_margin=self.tta_margin if tta_margin is None else tta_margin,
        )

    @classmethod
    def from_network(
        cls, spec: ModelSpec, network: torch.nn.Module, *, tta: bool | None = None, identity: str | None = None
    ) -> EmotionModel:
        """An uncalibrated model around a torch network as it is (not copied, not folded): a network being
        trained or exported is measured by the same code as ``analyze()`` runs."""
        device = next(network.parameters()).device
        return cls(spec, TorchRuntime(network), device=device, tta=tta, identity=identity)

    def __repr__(self) -> str:
        tta = f"{self.tta}, tta_margin={self.tta_margin}" if self.tta else "False"
        return f"EmotionModel({self.name!r}, runtime={self.spec.runtime!r}, labels={len(self.labels)}, tta={tta})"

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def precision(self) -> str:
        """What computes the answers: ``"bfloat16"``/``"float32"`` (torch), ``"float32"``/``"int8"`` (ONNX graphs)."""
        if isinstance(self.runtime, (TorchRuntime, OnnxRuntime)):
            return self.runtime.precision
        return "unknown"  # a user's own Runtime

    @property
    def input_size(self) -> int:
        return self.spec.input.size

    @property
    def network(self) -> torch.nn.Module:
        """The torch network (torch runtime only)."""
        if not isinstance(self.runtime, TorchRuntime):
            raise InvalidOptionError(
                f"model {self.name!r} runs on {self.spec.runtime}, not a torch network", option="runtime"
            )
        return self.runtime.network

    def predict(self, crops: Sequence[np.ndarray], *, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, len(labels)) as float64 rows summing to 1; (0, len(labels)) for no crops."""
        return self.predict_output(crops, batch_size=batch_size).probabilities

    def predict_output(self, crops: Sequence[np.ndarray], *, batch_size: int = 256) -> ModelOutput:
        """Probabilities and, for models that have them, valence and arousal."""
        k = len(self.labels)
        if len(crops) == 0:
            empty = np.zeros(0) if self.spec.valence_arousal else None
            return ModelOutput(np.zeros((0, k)), empty, empty)
        probabilities, extra = [], []
        for start in range(0, len(crops), batch_size):
            batch = preprocess(crops[start : start + batch_size], self.spec.input)
            raw = self._logits(batch)
            probabilities.append(calibrated_softmax(raw[:, :k], self.temperatures).cpu().numpy())
            extra.append(raw[:, k:].cpu().numpy())
        result = np.concatenate(probabilities)
        if not np.isfinite(result).all():
            raise ModelError(
                f"model {self.name!r} produced non-finite outputs; its weights may be broken", component=self.name
            )
        if not self.spec.valence_arousal:
            return ModelOutput(result)
        va = np.clip(np.concatenate(extra).astype(np.float64), -1.0, 1.0)
        return ModelOutput(result, va[:, 0], va[:, 1])

    def _logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The runtime's raw outputs; under flip TTA averaged with the mirror image's for the faces whose
        first answer is unsure (all of them at ``tta_margin`` 1, in one call as before)."""
        k = len(self.labels)
        if not self.tta or self.tta_margin >= 1 or k < 2:
            return self.runtime.forward(batch, tta=self.tta).float()
        raw = self.runtime.forward(batch, tta=False).float().clone()  # a plain tensor: rows are replaced below
        top = torch.softmax(raw[:, :k], dim=1).topk(2, dim=1).values
        unsure = torch.nonzero(top[:, 0] - top[:, 1] < self.tta_margin).flatten()
        if len(unsure):
            mirrored = self.runtime.forward(batch[unsure.to(batch.device)].flip(-1), tta=False).float()
            raw[unsure] = (raw[unsure] + mirrored) / 2
        return raw
