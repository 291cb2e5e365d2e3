"""Third-party emotion models emolens registers: HSEmotion's ONNX graphs, pinned to upstream commits.

Pure data, as the built-in specs in ``emolens.models`` are: declaring them imports nothing heavy.
"""

from __future__ import annotations

from .._registry import InputSpec, ModelSpec, WeightsFile
from ..labels import HSEMOTION8

__all__ = ["HSEMOTION_MODELS"]

# HSEmotion (A. Savchenko): EfficientNet/MobileFaceNet models trained on AffectNet, as ONNX graphs pinned to
# upstream commits. The git blob SHA-1s come from the upstream tree; the sha256s were published by third parties.
_HSEMOTION_LICENSE = (
    "code Apache-2.0 (github.com/av-savchenko/face-emotion-recognition); weights trained on AffectNet, whose "
    "license allows research use only"
)
_HSEMOTION_REPO = "https://raw.githubusercontent.com/av-savchenko/face-emotion-recognition"
_IMAGENET = InputSpec(size=224, color="rgb", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _hsemotion_file(name: str, commit: str, git_sha1: str, sha256: str, size: int | None) -> tuple[WeightsFile, ...]:
    url = f"{_HSEMOTION_REPO}/{commit}/models/affectnet_emotions/onnx/{name}"
    return (
        WeightsFile(name=name, sha256=sha256, urls=(url,), size=size, license=_HSEMOTION_LICENSE, git_sha1=git_sha1),
    )


HSEMOTION_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="hsemotion-b0-va",
        description=(
            "HSEmotion EfficientNet-B0 (A. Savchenko), 8 AffectNet classes with contempt, plus valence and "
            "arousal; ONNX, 16 MB, downloaded on first use (research-only weights: AffectNet license)"
        ),
        runtime="onnx",
        architecture="",
        labels=HSEMOTION8.labels,
        input=_IMAGENET,
        valence_arousal=True,
        weights=_hsemotion_file(
            "enet_b0_8_va_mtl.onnx",
            "af833487321c3efdcb1768a91a6c656a1986fdf6",
            "7ce9d6dd5b82b260bc19bfe7822a6ffa1abb6011",
            "c43e056ad388d4a8dc911832b8291435b2af537f967e5870ebd731574ec7e812",
            16_049_834,
        ),
        license=_HSEMOTION_LICENSE,
    ),
    ModelSpec(
        name="hsemotion-b2",
        description=(
            "HSEmotion EfficientNet-B2 (A. Savchenko), 8 AffectNet classes with contempt; ONNX, 31 MB, "
            "downloaded on first use (research-only weights: AffectNet license)"
        ),
        runtime="onnx",
        architecture="",
        labels=HSEMOTION8.labels,
        input=InputSpec(size=260, color="rgb", mean=_IMAGENET.mean, std=_IMAGENET.std),
        weights=_hsemotion_file(
            "enet_b2_8.onnx",
            "af833487321c3efdcb1768a91a6c656a1986fdf6",
            "a7cb612cbab1ce3d50dd52e57285fb2c7ea6d0d9",
            "180a9d4845b59393de4511598a0d1d34b705034691ea32959ce5009db7cf52b7",
            30_779_724,
        ),
        license=_HSEMOTION_LICENSE,
    ),
    ModelSpec(
        name="hsemotion-mbf-va",
        description=(
            "HSEmotion MobileFaceNet (A. Savchenko), 8 AffectNet classes with contempt, plus valence and arousal; "
            "ONNX, downloaded on first use (research-only weights: AffectNet license)"
        ),
        runtime="onnx",
        architecture="",
        labels=HSEMOTION8.labels,
        input=InputSpec(size=112, color="rgb", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        valence_arousal=True,
        weights=_hsemotion_file(
            "mbf_va_mtl.onnx",
            "592f8905139b9c1478ded23997c3dbe251bceee9",
            "194db927ec135679e5cd0a267c5605e2e9d68e7e",
            "0323ace52ea6dbe9aa4a909d20933f7b8629c3fb41249e338f4316abf2a4828c",
            None,
        ),
        license=_HSEMOTION_LICENSE,
    ),
)
