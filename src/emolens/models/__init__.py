"""Emotion models: built-in specs, the model and architecture registries.

Declaring a spec imports nothing heavy; the architecture module is imported when a model is built.
emolens' own weights ship inside the wheel (``emolens/models/weights``) and are hash-checked at load.
Model cards and specs name architectures by their registered name (``"vgg"``), never by an import
path, so reading a card can only ever build an architecture registered in this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._device import CpuInfo, cpu_info
from .._lazy import lazy_attributes
from .._registry import TTA_MARGIN, ArchitectureSpec, InputSpec, ModelSpec, Registry, WeightsFile
from ..errors import InvalidOptionError
from ._card import ModelCard, is_card_path, spec_from_card
from ._card_record import (
    CalibrationRecord,
    CardMetrics,
    MeasuredRecord,
    PriorShift,
    SplitMetrics,
    TrainingRecord,
    VoteMetrics,
)
from ._hsemotion_specs import HSEMOTION_MODELS
from ._run import RunFolder, last_epoch_weights, pinned_entries, run_spec
from ._source import model_spec, model_versions, pinned_spec

if TYPE_CHECKING:
    from ._classifier import EmotionModel, ModelOutput, OnnxRuntime, Runtime, TorchRuntime
    from ._fastest import fastest_choices
    from ._load import ModelSource, int8_spec, load_model, resolve_model
    from ._network import (
        NetworkWeights,
        autocast_for,
        build_model,
        build_partial,
        cpu_has_native_bf16,
        network_shape,
        predict_logits,
        prepare_for_inference,
        read_temperatures,
        save_state,
    )
    from ._onnx_export import export_onnx
    from ._preprocess import normalize, preprocess, resize_crop, resize_square, to_gray_square

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_ARCHITECTURES",
    "BUILTIN_MODELS",
    "HSEMOTION_MODELS",
    "MODELS",
    "PRECISIONS",
    "PREVIOUS_MODELS",
    "RELEASE_URL",
    "TTA_MARGIN",
    "CalibrationRecord",
    "CardMetrics",
    "CpuInfo",
    "EmotionModel",
    "MeasuredRecord",
    "ModelCard",
    "ModelOutput",
    "ModelSource",
    "NetworkWeights",
    "OnnxRuntime",
    "PriorShift",
    "RunFolder",
    "Runtime",
    "SplitMetrics",
    "TorchRuntime",
    "TrainingRecord",
    "VoteMetrics",
    "autocast_for",
    "build_model",
    "build_partial",
    "check_precision",
    "cpu_has_native_bf16",
    "cpu_info",
    "export_onnx",
    "fastest_choices",
    "int8_spec",
    "is_card_path",
    "last_epoch_weights",
    "load_model",
    "model_spec",
    "model_versions",
    "network_shape",
    "normalize",
    "pinned_entries",
    "pinned_spec",
    "predict_logits",
    "prepare_for_inference",
    "preprocess",
    "read_temperatures",
    "released_weights",
    "resize_crop",
    "resize_square",
    "resolve_model",
    "run_spec",
    "save_state",
    "spec_from_card",
    "to_gray_square",
]


# Building, loading, running and saving networks imports torch: resolved on first use (PEP 562).
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "._classifier": ["EmotionModel", "ModelOutput", "OnnxRuntime", "Runtime", "TorchRuntime"],
        "._load": ["ModelSource", "int8_spec", "load_model", "resolve_model"],
        "._fastest": ["fastest_choices"],
        "._onnx_export": ["export_onnx"],
        "._network": [
            "NetworkWeights",
            "autocast_for",
            "build_model",
            "build_partial",
            "cpu_has_native_bf16",
            "network_shape",
            "predict_logits",
            "prepare_for_inference",
            "read_temperatures",
            "save_state",
        ],
        "._preprocess": ["normalize", "preprocess", "resize_crop", "resize_square", "to_gray_square"],
    },
    __all__,
)


#: ``precision=`` of :func:`load_model`: ``"auto"`` runs emolens' torch models in bf16 where the device
#: computes it natively (CUDA, CPUs with AVX-512 BF16 or AMX) and float32 elsewhere; ``"float32"`` always
#: runs float32 (the same answers on every host, to float rounding; slower where bf16 is native);
#: ``"int8"`` runs the model's int8 ONNX graph (``ModelSpec.int8``: ``default`` and ``fast``) on onnxruntime;
#: ``"fastest"`` measures ``"auto"`` against ``"int8"`` (where the model has it and onnxruntime is installed)
#: once per host and model, remembers the choice in the weights cache, and runs the faster.
PRECISIONS = ("auto", "float32", "int8", "fastest")


def check_precision(precision: object) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else InvalidOptionError naming them."""
    if precision not in PRECISIONS:
        raise InvalidOptionError(
            f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r:.40}", option="precision"
        )
    return str(precision)


BUILTIN_ARCHITECTURES: tuple[ArchitectureSpec, ...] = (
    ArchitectureSpec(
        name="vgg",
        builder="emolens.models._vgg:VGGNet",
        description="VGG-style CNN: stages of 3x3 conv + BatchNorm + ReLU and max-pooling, then a 2-layer classifier",
    ),
    ArchitectureSpec(
        name="mbconv",
        builder="emolens.models._mbconv:MBConvNet",
        description=(
            "EfficientNet-Lite-style CNN: inverted-residual blocks with depthwise convs and ReLU6, no "
            "squeeze-excitation; starts from ImageNet weights (python -m tools.imagenet_init)"
        ),
    ),
    ArchitectureSpec(
        name="resnet",
        builder="emolens.models._resnet:FaceResNet",
        description=(
            "ResNet-style CNN laid out as dlib's face-recognition network (29 convs, 5.6M params); starts from "
            "dlib's face-recognition weights (python -m tools.face_init)"
        ),
    ),
    ArchitectureSpec(
        name="ensemble",
        builder="emolens.models._ensemble:EnsembleNet",
        description=(
            "the mean probability of 2-8 members of registered architectures, each at its own input size "
            "(python -m tools.ensemble builds one from exported cards)"
        ),
    ),
)

ARCHITECTURES: Registry[ArchitectureSpec] = Registry(
    "architecture", BUILTIN_ARCHITECTURES, entry_point_group="emolens.architectures"
)

_FER2013_LICENSE = "weights: MIT (emolens); trained on FER2013 (research use under the challenge's terms)"
_FERPLUS_LICENSE = (
    "weights: MIT (emolens); trained on FER2013 images (research use under the challenge's terms) with the "
    "FER+ crowd votes (MIT, Microsoft)"
)
# The architectures of the bundled models: each is trained once per label source.
_DEFAULT_OPTIONS = {"widths": (32, 64, 128, 256, 512), "convs_per_stage": (1, 2, 2, 2, 1), "hidden": 512}
_LARGE_OPTIONS = {"widths": (64, 128, 256, 512), "convs_per_stage": (2, 2, 2, 2), "hidden": 256}
_FAST_OPTIONS = {"widths": (16, 32, 64, 128, 256), "convs_per_stage": (1, 1, 2, 2, 1), "dropout": 0.25}
_DEFAULT_TEXT = "VGG-style CNN (a full-resolution stem conv, then 4 stages of 64-512 channels; 2.6M params)"
_LARGE_TEXT = "Wide VGG-style CNN (4 stages of 64-512 channels, 2 convs each; 5.9M params)"
_FAST_TEXT = "Small VGG-style CNN (5 stages, 16-256 channels, 0.65M params)"
#: large since v3: two networks that differ in kind, their probabilities averaged (the ``ensemble`` architecture).
_LITE1_OPTIONS = {"depth": 1.1, "stem_stride": 2, "dropout": 0.2}
_LARGE_ENSEMBLE_OPTIONS = {
    "members": (
        {"architecture": "mbconv", "options": _LITE1_OPTIONS, "input_size": 96},
        {"architecture": "vgg", "options": _LARGE_OPTIONS, "input_size": 64},
    )
}
_LARGE_ENSEMBLE_TEXT = (
    "Two networks whose probabilities are averaged: an EfficientNet-Lite1-style CNN fine-tuned from ImageNet "
    "weights (96x96 crops, 4.1M params) and a wide VGG-style CNN (64x64 crops, 6.8M params)"
)


def _int8(name: str, sha256: str) -> tuple[WeightsFile, ...]:
    """An int8 ONNX graph of bundled weights (``python -m tools.quantize``), shipped in the wheel."""
    return (WeightsFile(name=name, sha256=sha256, bundled=True, license=_FERPLUS_LICENSE),)


def _bundled(name: str, sha256: str, license: str = _FER2013_LICENSE) -> tuple[WeightsFile, ...]:
    """Weights that emolens trained and ships inside the wheel."""
    return (WeightsFile(name=name, sha256=sha256, bundled=True, license=license),)


_FER2013_LARGE = ModelSpec(
    name="fer2013-large",
    description=f"{_LARGE_TEXT} trained by emolens on FER2013's original labels; about 4x slower than default.",
    options=_LARGE_OPTIONS,
    weights=_bundled(
        "emolens-vgg-large-v1.safetensors", "0d0b14e4fcb7cc14dc994eb0e19953b28dcc3ac93da1b2c062937e0781c5ff6e"
    ),
    version="v1",
    license=_FER2013_LICENSE,
    tta=True,
)

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="default",
        description=(
            f"{_DEFAULT_TEXT} trained by emolens on the FER+ crowd votes (ten people per image): its answers "
            "agree with what people name."
        ),
        options=_DEFAULT_OPTIONS,
        weights=_bundled(
            "emolens-consensus-default-v5.safetensors",
            "1bf7de45b8de761d034140d0af2512ba1685e694bc65f41a289f73f18acd57e3",
            _FERPLUS_LICENSE,
        ),
        version="v5",
        license=_FERPLUS_LICENSE,
        tta=True,
        int8=_int8(
            "emolens-consensus-default-v5-int8.onnx",
            "001def9b288554e9f9d612847ebb973de95a96bf2b2986a590ca8ea70146d90f",
        ),
    ),
    ModelSpec(
        name="fast",
        description=(
            f"{_FAST_TEXT} trained by emolens on the FER+ crowd votes, distilled from the consensus large and a "
            "network fine-tuned from ImageNet weights: for video and edge use."
        ),
        options=_FAST_OPTIONS,
        weights=_bundled(
            "emolens-consensus-fast-v4.safetensors",
            "b13ac66ea7410e455625e8823622c24de201da30d5a4f96e4ac8713e85b94d36",
            _FERPLUS_LICENSE,
        ),
        version="v4",
        license=_FERPLUS_LICENSE,
        int8=_int8(
            "emolens-consensus-fast-v4-int8.onnx",
            "1b991d535f8afece4d772856d5f4203834c6c2eb8e8945c19251bedba5e7d92a",
        ),
    ),
    ModelSpec(
        name="large",
        description=(
            f"{_LARGE_ENSEMBLE_TEXT}, both trained by emolens on the FER+ crowd votes: the most accurate model "
            "and the slowest; the teacher for distilling smaller ones."
        ),
        architecture="ensemble",
        options=_LARGE_ENSEMBLE_OPTIONS,
        input=InputSpec(size=96),
        weights=_bundled(
            "emolens-consensus-large-v3.safetensors",
            "7fd1d68c4310cd0487ec5f671a3f961adeea7e0c6717c5ab10a5b824143161c5",
            _FERPLUS_LICENSE,
        ),
        version="v3",
        license=_FERPLUS_LICENSE,
        tta=True,
    ),
    ModelSpec(
        name="fer2013-default",
        description=(
            f"{_DEFAULT_TEXT} distilled by emolens on FER2013's original labels from the large model: the previous "
            "default, for comparison with papers and FER2013 leaderboards."
        ),
        options=_DEFAULT_OPTIONS,
        weights=_bundled(
            "emolens-vgg-wide-v3.safetensors", "778a398bf52002a976a7f8b4dcd083a19199815aa93757156453505e740ac074"
        ),
        version="v3",
        license=_FER2013_LICENSE,
        tta=True,
    ),
    ModelSpec(
        name="fer2013-fast",
        description=f"{_FAST_TEXT} distilled by emolens on FER2013's original labels: the previous fast model.",
        options=_FAST_OPTIONS,
        weights=_bundled(
            "emolens-vgg-fast-v2.safetensors", "95c60bfd5bbc12aaf43911d8f9fc5acc5c1a8682ea61cbecdad31446a3983d24"
        ),
        version="v2",
        license=_FER2013_LICENSE,
    ),
    _FER2013_LARGE,
)

# Earlier releases of the built-in models stay obtainable, so answers can be reproduced after an upgrade.
#: Where the weights of releases that have left the wheel are published (a file is fetched by its name and hash).
RELEASE_URL = "https://github.com/emolens/emolens/releases/download/weights"


def released_weights(name: str, sha256: str, size: int, license: str = _FERPLUS_LICENSE) -> tuple[WeightsFile, ...]:
    """Weights of an earlier release that no longer ship in the wheel: downloaded from :data:`RELEASE_URL`."""
    return (WeightsFile(name=name, sha256=sha256, urls=(f"{RELEASE_URL}/{name}",), size=size, license=license),)


def _previous(
    name: str,
    version: str,
    weights: tuple[WeightsFile, ...],
    input_spec: InputSpec | None = None,
    network: tuple[str, Mapping[str, Any]] | None = None,
) -> ModelSpec:
    """``<name>@<version>``: today's spec of ``name`` with that release's weights, and its input and network
    (architecture, options) where they differed from today's."""
    current = next(spec for spec in BUILTIN_MODELS if spec.name == name)
    architecture, options = network if network is not None else (current.architecture, current.options)
    return replace(
        current,
        name=f"{name}@{version}",
        version=version,
        weights=weights,
        input=input_spec if input_spec is not None else current.input,
        architecture=architecture,
        options=options,
        int8=(),  # the int8 graph is the current release's
        description=f"{name} as released in {version} (pinned: its answers do not change when {name} does)",
    )


#: Earlier versions of built-in models, named ``<name>@<version>`` (``model="default@v2"``). The release
#: before the current one ships in the wheel; older ones are downloaded by hash (:func:`released_weights`).
#: A version whose input size differs from today's gives its own :class:`InputSpec` here.
PREVIOUS_MODELS: tuple[ModelSpec, ...] = (
    _previous(
        "default",
        "v2",
        released_weights(
            "emolens-consensus-default-v2.safetensors",
            "238c8bc93ff3f69a4cb2c31b7b0ad02a260d70017223ca2f9a887fc0a7f2f4ea",
            10_465_980,
        ),
    ),
    _previous(
        "default",
        "v3",
        released_weights(
            "emolens-consensus-default-v3.safetensors",
            "8447c42cc85351b0480bcf3c5f91ccb9de0ed6e20b0e9524c5314ed9fdd6dfbc",
            10_465_980,
        ),
    ),
    _previous(
        "default",
        "v4",
        _bundled(
            "emolens-consensus-default-v4.safetensors",
            "7ede1c68c5db82ca4654c34086d923bfc1137b472f579b61f731b6f09b05d699",
            _FERPLUS_LICENSE,
        ),
    ),
    _previous(
        "large",
        "v1",
        released_weights(
            "emolens-consensus-large-v1.safetensors",
            "8a12316dcb92494654f2fd092128bb1bdc1560948b4e1fc1f28d1d672c36553f",
            11_750_574,
        ),
        input_spec=InputSpec(size=48),  # v1 read 48x48 crops, v2 64x64 ones, v3 is an ensemble
        network=("vgg", _LARGE_OPTIONS),
    ),
    _previous(
        "large",
        "v2",
        _bundled(
            "emolens-consensus-large-v2.safetensors",
            "68037ed42ea8c396054c0dfff54272689697e4a5ccfdf28dcbe993456bf51c90",
            _FERPLUS_LICENSE,
        ),
        input_spec=InputSpec(size=64),
        network=("vgg", _LARGE_OPTIONS),
    ),
    _previous(
        "fast",
        "v2",
        released_weights(
            "emolens-consensus-fast-v2.safetensors",
            "80e9eeaece97092c3a6576637474420c4bfe1c57ee6afef773c74d7bb1736f33",
            2_594_580,
        ),
    ),
    _previous(
        "fast",
        "v3",
        _bundled(
            "emolens-consensus-fast-v3.safetensors",
            "4f37d464944b55ba43cb595b07e53b16e1494712adde3b34ab804712f98a5f77",
            _FERPLUS_LICENSE,
        ),
    ),
)

MODELS: Registry[ModelSpec] = Registry(
    "model", (*BUILTIN_MODELS, *HSEMOTION_MODELS), entry_point_group="emolens.models"
)
