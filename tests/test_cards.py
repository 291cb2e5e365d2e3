"""Model cards are data, never code: hostile cards are refused with a typed error and run nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from tools.hostile import peak_memory

import emolens
from emolens import EmolensError, WeightsError, WeightsIntegrityError
from emolens.models import MODELS, ModelCard, spec_from_card

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "emolens" / "models" / "weights"
FAST_CARD = WEIGHTS / "emolens-vgg-fast-v2.json"


@pytest.fixture
def card_folder(tmp_path: Path) -> Path:
    """A copy of the bundled fast model's card and weights, plus a module that leaves a mark if ever imported."""
    shutil.copy(FAST_CARD, tmp_path / "fast.json")
    shutil.copy(WEIGHTS / "emolens-vgg-fast-v2.safetensors", tmp_path)
    marker = tmp_path / "ran"
    (tmp_path / "hubconf.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\ndef load(*a, **k): pass\n")
    (tmp_path / "evil_module.py").write_text((tmp_path / "hubconf.py").read_text())
    return tmp_path


def _edit(folder: Path, change: dict[str, Any]) -> Path:
    card = json.loads((folder / "fast.json").read_text())
    card.update(change)
    path = folder / "edited.json"
    path.write_text(json.dumps(card))
    return path


def _refused(path: Path, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)  # the hostile modules are importable from here
    monkeypatch.syspath_prepend(str(path.parent))
    with pytest.raises(WeightsError, match=match):
        emolens.load_model(path)
    with pytest.raises(EmolensError):
        emolens.analyze(b"not even an image", model=str(path))
    assert not (path.parent / "ran").exists(), "loading a card ran code"
    assert "hubconf" not in sys.modules and "evil_module" not in sys.modules


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"architecture": {"builder": "torch.hub:load", "options": {}}}, "import path 'torch.hub:load'"),
        ({"architecture": {"builder": "evil_module:load", "options": {}}}, "never imports code"),
        ({"architecture": {"name": "evil_module:load", "options": {}}}, "is not registered"),
        ({"architecture": {"name": "vgg", "options": {"widths": [10**9]}}}, "out of range"),
        ({"architecture": {"name": "vgg", "options": {"widths": {"a": 1}}}}, "must be a number"),
        ({"weights_file": "../../../etc/passwd.safetensors"}, "plain file name"),
        ({"weights_file": "/etc/passwd.safetensors"}, "plain file name"),
        ({"weights_file": "..\\up.safetensors"}, "plain file name"),
        ({"weights_file": ".hidden.safetensors"}, "plain file name"),
        ({"weights_file": "nul\0byte.safetensors"}, "plain file name"),
        ({"weights_file": "weights.pt"}, r"\.safetensors or \.onnx"),
        ({"weights_sha256": "abc"}, "64 lowercase hex"),
        ({"input": {"size": 100_000}}, "input spec is invalid"),
        ({"input_size": 100_000}, "input spec is invalid"),
        ({"labels": ["x"] * 5}, "repeats a label"),
        ({"labels": [f"l{i}" for i in range(5000)]}, "list of 1 to 1000"),
        ({"runtime": "pickle"}, "runtime must be one of"),
    ],
)
def test_hostile_card_is_refused(
    card_folder: Path, change: dict[str, Any], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refused(_edit(card_folder, change), match, monkeypatch)


def test_oversized_or_malformed_card_file(card_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = card_folder / "big.json"
    big.write_text(json.dumps({"name": "x", "pad": "a" * 3_000_000}))
    _refused(big, "larger than", monkeypatch)
    deep = card_folder / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    _refused(deep, "cannot read model card", monkeypatch)


@pytest.mark.usefixtures("registries")
def test_weights_hash_is_checked_before_anything_is_built(card_folder: Path) -> None:
    from emolens.models import ARCHITECTURES

    weights = card_folder / "emolens-vgg-fast-v2.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")

    class Built(Exception):
        pass

    def refusing_builder(**options: object) -> object:
        raise Built

    emolens.register_architecture(
        dataclasses.replace(ARCHITECTURES.get("vgg"), builder=refusing_builder), overwrite=True
    )
    with pytest.raises(Built):
        emolens.load_model("fast")  # sound weights do reach the builder
    with pytest.raises(WeightsIntegrityError, match="refusing to load"):
        emolens.load_model(card_folder / "fast.json")  # tampered ones never do


def test_cards_from_before_architecture_names_still_load() -> None:
    legacy = json.loads(FAST_CARD.read_text())
    if "builder" in legacy["architecture"]:  # the bundled cards may already be in the new format
        assert legacy["architecture"]["builder"] == "emolens.models._vgg:VGGNet"
    spec = spec_from_card(FAST_CARD)
    assert spec.architecture == "vgg" and spec.labels == MODELS.get("fast").labels
    assert emolens.load_model(FAST_CARD).predict([]).shape == (0, 7)


def test_card_round_trip(tmp_path: Path) -> None:
    card = ModelCard.read(FAST_CARD)
    card.write(tmp_path / "copy.json")
    again = ModelCard.read(tmp_path / "copy.json")
    assert again == card
    assert json.loads((tmp_path / "copy.json").read_text())["architecture"] == {
        "name": "vgg",
        "options": dict(card.options),
    }
    assert (tmp_path / "copy.md").read_text().startswith("# Model card: `emolens-vgg-fast-v2`")


def _with_weights(folder: Path, blob: bytes, change: dict[str, Any] | None = None) -> Path:
    """The fast card edited by ``change``, naming ``blob`` as its weights with their true hash."""
    (folder / "hostile.safetensors").write_bytes(blob)
    return _edit(
        folder, {"weights_file": "hostile.safetensors", "weights_sha256": sha256(blob).hexdigest(), **(change or {})}
    )


def test_options_that_would_cost_gigabytes_are_refused_before_building(card_folder: Path) -> None:
    """Each number of a card is bounded alone, so a 358-byte card of four 4,096-channel stages built a 4 GB network
    before its 16-byte weights were compared with it; the parameters are now counted on the meta device first."""
    options = {"widths": [4096] * 4, "convs_per_stage": 2}
    card = _with_weights(
        card_folder, b"\x08" + b"\x00" * 7 + b"{}      ", {"architecture": {"name": "vgg", "options": options}}
    )
    started = time.perf_counter()
    with peak_memory() as memory, pytest.raises(WeightsError, match=r"1,066,572,816 parameters, more than"):
        emolens.load_model(card)
    assert time.perf_counter() - started < 10 and not memory.mb > 200, memory.mb


def test_an_ensemble_card_is_bounded_like_any_other(card_folder: Path) -> None:
    """An ensemble's members are options too: eight members of four 4,096-channel stages are counted on the meta
    device and refused before anything is allocated, and options nested deeper than a member's are refused."""
    member = {"architecture": "vgg", "options": {"widths": [4096] * 4, "convs_per_stage": 2}, "input_size": 48}
    blob = b"\x08" + b"\x00" * 7 + b"{}      "
    card = _with_weights(
        card_folder, blob, {"architecture": {"name": "ensemble", "options": {"members": [member] * 8}}}
    )
    started = time.perf_counter()
    with peak_memory() as memory, pytest.raises(WeightsError, match=r"parameters, more than"):
        emolens.load_model(card)
    assert time.perf_counter() - started < 10 and not memory.mb > 200, memory.mb
    # a huge but valid first member beside a second whose options its architecture refuses: the refusal comes from
    # the copy on the meta device, and the first member is never built for real
    broken = {"architecture": "vgg", "options": {"no_such_option": 1}, "input_size": 48}
    card = _edit(card_folder, {"architecture": {"name": "ensemble", "options": {"members": [member, broken]}}})
    with peak_memory() as memory, pytest.raises(WeightsError, match="cannot be built"):
        emolens.load_model(card)
    assert not memory.mb > 200, memory.mb
    deeper = {"architecture": "vgg", "options": {"widths": [{"nested": {"too": "deep"}}]}, "input_size": 48}
    card = _edit(card_folder, {"architecture": {"name": "ensemble", "options": {"members": [deeper, deeper]}}})
    with pytest.raises(WeightsError, match="must be a number, string, boolean or a short list"):
        emolens.load_model(card)


@pytest.mark.parametrize(
    "options",
    [
        {"widths": [16, 32, 64, 128, 256], "foo": 1},
        {"widths": [16, 32, 64, 128, 256], "dropout": 5},
        {"widths": "abcde"},
        {"widths": [16.5] * 5},
        {"widths": [16, 32, 64, 128, 256], "convs_per_stage": [1, 2]},
        {"widths": [16] * 5, "convs_per_stage": 65536},
    ],
)
def test_options_the_architecture_refuses_are_a_typed_error(card_folder: Path, options: dict[str, Any]) -> None:
    """They escaped as the builder's TypeError/ValueError, which the CLI reports as a bug in emolens; they come
    from the card, so they are a WeightsError (a server answers 503 for its own card, not 422)."""
    card = _edit(card_folder, {"architecture": {"name": "vgg", "options": options}})
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"cannot be built with options .* export it again"):
        emolens.load_model(card)
    assert time.perf_counter() - started < 10


def test_weights_files_that_safetensors_or_emolens_cannot_use_are_a_weights_error(card_folder: Path) -> None:
    """A truncated file, an absurd header, integer or boolean weights and a calibration that would divide the
    logits into infinities: WeightsError at load, naming the file (they escaped as SafetensorError, loaded
    silently, or failed at the first analysis)."""
    from safetensors.torch import load_file, save

    real = (card_folder / "emolens-vgg-fast-v2.safetensors").read_bytes()
    state = load_file(card_folder / "emolens-vgg-fast-v2.safetensors")
    as_int = dict(state, **{"classifier.2.bias": state["classifier.2.bias"].long()})
    cases = [
        (real[: len(real) // 2], "not a readable safetensors file"),
        ((1 << 62).to_bytes(8, "little") + real[8:], "not a readable safetensors file"),
        (save(as_int), "stores 'classifier.2.bias' as I64, not as floating point"),
        (save({k: v.bool() if k == "classifier.2.bias" else v for k, v in state.items()}), "as BOOL"),
        (save(state, metadata={"temperatures": json.dumps([1e-320] + [1.0] * 6)}), "malformed calibration"),
    ]
    for blob, match in cases:
        with pytest.raises(WeightsError, match=match):
            emolens.load_model(_with_weights(card_folder, blob))


def test_options_may_be_numpy_integers() -> None:
    """The range check of the architecture's options must not refuse what torch builds (np.int64 widths)."""
    import numpy as np

    from emolens.models import build_model

    options = {"widths": list(np.array([16, 32, 64, 128, 256])), "convs_per_stage": np.int64(1)}
    spec = dataclasses.replace(MODELS.get("fast"), options=options, weights=())
    assert sum(p.numel() for p in build_model(spec).parameters()) > 0
