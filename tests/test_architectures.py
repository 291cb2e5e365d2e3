"""Every built-in architecture: builds for its sizes, fuses for inference without changing its answer, saves
and loads through the one joiner, exports to ONNX, and refuses bad options with InvalidOptionError."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from emolens.errors import InvalidOptionError
from emolens.labels import FER2013
from emolens.models import (
    BUILTIN_ARCHITECTURES,
    InputSpec,
    ModelSpec,
    build_model,
    network_shape,
    prepare_for_inference,
    save_state,
)

NAMES = [spec.name for spec in BUILTIN_ARCHITECTURES]
#: The options each architecture is tested with beside its defaults (a small VGG keeps the test fast).
OPTIONS: dict[str, dict[str, object]] = {
    "vgg": {"widths": [8, 16, 32], "hidden": 16},
    "mbconv": {"depth": 0.5},
    "resnet": {"widths": [8, 16, 32], "blocks": [1, 2, 1]},  # 31 px at least: the tests' 48 has odd sides inside
}
#: Two small members at other sizes than the ensemble's input, so every test also resizes.
OPTIONS["ensemble"] = {
    "members": [
        {"architecture": "vgg", "options": OPTIONS["vgg"], "input_size": 40},
        {"architecture": "mbconv", "options": OPTIONS["mbconv"], "input_size": 56},
    ]
}
_VGG_MEMBER = {"architecture": "vgg", "options": OPTIONS["vgg"], "input_size": 48}
BAD_OPTIONS: dict[str, list[dict[str, object]]] = {
    "vgg": [{"widths": [0, 8]}, {"convs_per_stage": [1, 2, 3, 4, 5, 6]}, {"dropout": 1.5}],
    "mbconv": [{"depth": 5}, {"width": 0.1}, {"stem_stride": 3}, {"dropout": -0.1}, {"no_such_option": 1}],
    "resnet": [
        {"widths": [0, 8]},
        {"blocks": [1]},
        {"widths": [8, 16, 32], "blocks": [1, 1, 17]},
        {"widths": [8] * 11, "blocks": [1] * 11},  # halves any crop to nothing
        {"dropout": 1.5},
        {"no_such_option": 1},
    ],
    "ensemble": [
        {},  # no members
        {"members": [_VGG_MEMBER]},  # one is not an ensemble
        {"members": [_VGG_MEMBER] * 9},
        {"members": [_VGG_MEMBER, {**_VGG_MEMBER, "architecture": "ensemble"}]},
        {"members": [_VGG_MEMBER, {**_VGG_MEMBER, "architecture": "no-such-architecture"}]},
        {"members": [_VGG_MEMBER, {**_VGG_MEMBER, "input_size": 4}]},
        {"members": [_VGG_MEMBER, {**_VGG_MEMBER, "options": {"widths": [0]}}]},
        {"members": [_VGG_MEMBER, {**_VGG_MEMBER, "code": "import os"}]},
        {"members": "vgg,mbconv"},
    ],
}


def _spec(name: str, size: int, **options: object) -> ModelSpec:
    return ModelSpec(
        name=f"test-{name}",
        description="",
        architecture=name,
        labels=FER2013.labels,
        input=InputSpec(size=size),
        options=options,
    )


def test_every_built_in_architecture_has_test_options() -> None:
    assert set(NAMES) == set(OPTIONS) == set(BAD_OPTIONS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [48, 64, 96])
def test_builds_and_fuses_without_changing_the_answer(name: str, size: int) -> None:
    torch.manual_seed(0)
    network = build_model(_spec(name, size, **OPTIONS[name]))
    # BatchNorm with statistics of its own, so fusing has something to fold
    network.train()
    with torch.no_grad():
        for _ in range(3):
            network(torch.randn(16, 1, size, size))
    network.eval()
    crops = torch.randn(5, 1, size, size)
    with torch.no_grad():
        expected = network(crops)
        fused = prepare_for_inference(network, "cpu")(crops)
    assert expected.shape == (5, len(FER2013.labels))
    assert torch.allclose(expected, fused, atol=1e-4), (expected - fused).abs().max()


@pytest.mark.parametrize("name", NAMES)
def test_weights_round_trip_through_the_one_joiner(name: str, tmp_path: Path) -> None:
    spec = _spec(name, 48, **OPTIONS[name])
    network = build_model(spec).eval()
    path = tmp_path / "weights.safetensors"
    save_state(network, path)
    again = build_model(spec, path).eval()
    crops = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(network(crops), again(crops))
    shapes = network_shape(spec)
    assert {k: tuple(v.shape) for k, v in network.state_dict().items()} == {k: v[1] for k, v in shapes.items()}


@pytest.mark.parametrize(("name", "options"), [(name, bad) for name in NAMES for bad in BAD_OPTIONS[name]])
def test_bad_options_are_refused_by_name(name: str, options: dict[str, object]) -> None:
    with pytest.raises(InvalidOptionError, match=r"cannot be built|parameters|stages"):
        network_shape(_spec(name, 48, **options))


def test_mbconv_refuses_crops_too_small_for_its_strides() -> None:
    with pytest.raises(InvalidOptionError, match="too small"):
        build_model(_spec("mbconv", 16))
    build_model(_spec("mbconv", 16, stem_stride=1))  # 16 pixels is enough without the stem's stride


def test_mbconv_depth_scales_the_middle_stages_only() -> None:
    def blocks(depth: float) -> int:
        return len(build_model(_spec("mbconv", 48, depth=depth)).get_submodule("blocks"))

    assert blocks(1.0) == 16  # EfficientNet-Lite0's 16 inverted-residual blocks
    assert blocks(1.2) == 1 + 3 + 3 + 4 + 4 + 5 + 1  # Lite2's depth: first and last stage stay at one block
    assert blocks(0.5) == 1 + 1 + 1 + 2 + 2 + 2 + 1


def test_mbconv_width_widens_the_stages_not_the_stem_or_head() -> None:
    network = build_model(_spec("mbconv", 48, width=1.1))
    outputs = [block.body[-1][0].out_channels for block in network.get_submodule("blocks")]
    assert sorted(set(outputs)) == [16, 24, 48, 88, 120, 208, 352]  # Lite2's channels (40 * 1.1 rounds up to 48)
    assert network.get_submodule("stem")[0].out_channels == 32
    assert network.get_submodule("head")[0].out_channels == 1280
    with pytest.raises(InvalidOptionError, match=r"width must be from 0\.5 to 2"):
        build_model(_spec("mbconv", 48, width=0.1))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter, as emolens export uses
@pytest.mark.parametrize("name", NAMES)
def test_exports_to_onnx_with_the_same_answer(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    network = prepare_for_inference(build_model(_spec(name, 48, **OPTIONS[name])), "cpu")
    crops = torch.randn(4, 1, 48, 48)
    path = tmp_path / "net.onnx"
    torch.onnx.export(network, (crops,), str(path), input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = network(crops).numpy()
    (got,) = session.run(None, {"x": crops.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_a_card_naming_mbconv_builds_its_network(tmp_path: Path) -> None:
    from emolens.models import ModelCard, spec_from_card

    spec = _spec("mbconv", 64)
    network = build_model(spec)
    save_state(network, tmp_path / "m.safetensors")

    card = ModelCard(
        name="m",
        labels=FER2013.labels,
        weights_file="m.safetensors",
        weights_sha256=hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest(),
        architecture="mbconv",
        input=InputSpec(size=64),
    )
    card.write(tmp_path / "m.json")
    loaded = spec_from_card(tmp_path / "m.json")
    assert loaded.architecture == "mbconv"
    assert dataclasses.replace(loaded, weights=(), description="", name=spec.name) == spec


@pytest.mark.parametrize("variant_name", ["lite0", "lite1", "lite2"])
def test_imagenet_init_maps_every_backbone_tensor_and_sums_the_stem(variant_name: str) -> None:
    """tools.imagenet_init on each real ImageNet file (the ``imagenet`` extra): every tensor of the package's
    backbone lands in the network unchanged, and a gray crop through the summed stem gives what the RGB stem
    gives for that crop copied into three channels."""
    from tools import imagenet_init

    variant = imagenet_init.VARIANTS[variant_name]
    pytest.importorskip(variant.package)
    source = torch.load(imagenet_init.package_weights(variant), map_location="cpu", weights_only=True)
    network = build_model(imagenet_init.spec(variant, 96))
    imagenet_init.convert(variant, imagenet_init.package_weights(variant), network)
    state = network.state_dict()
    expands = [len(block.body) == 3 for block in network.get_submodule("blocks")]  # type: ignore[arg-type]
    mapped = {name: imagenet_init._target_name(name, expands) for name in source}
    assert sorted(name for name, ours in mapped.items() if ours is None) == ["_fc.bias", "_fc.weight"]
    for name, ours in mapped.items():
        if ours is not None and ours != "stem.0.weight":
            assert torch.equal(state[ours], source[name]), name
    assert len({ours for ours in mapped.values() if ours}) == len(state) - 2  # all but the fresh head

    rgb_stem = torch.nn.Conv2d(3, 32, 3, 2, 1, bias=False)
    rgb_stem.weight.data = source["_conv_stem.weight"]
    gray = torch.randn(2, 1, 96, 96)
    stem = network.get_submodule("stem.0")
    with torch.no_grad():
        torch.testing.assert_close(stem(gray), rgb_stem(gray.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)


def test_imagenet_init_refuses_a_file_that_is_not_the_one_it_knows(tmp_path: Path) -> None:
    from tools import imagenet_init

    other = tmp_path / "lite0.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, other)
    lite0 = imagenet_init.VARIANTS["lite0"]
    with pytest.raises(SystemExit, match="SHA-256"):
        imagenet_init.convert(lite0, other, build_model(imagenet_init.spec(lite0, 96)))
    lite1 = imagenet_init.VARIANTS["lite1"]  # Lite0's own file is not Lite1's either
    if importlib.util.find_spec(lite0.package):
        with pytest.raises(SystemExit, match="SHA-256"):
            imagenet_init.convert(
                lite1, imagenet_init.package_weights(lite0), build_model(imagenet_init.spec(lite1, 96))
            )
