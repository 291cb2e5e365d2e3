"""Reproducible answers: results say which weights answered, and ``model="default@v4"`` keeps v4's answers."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import emolens
from emolens import load_model
from emolens.errors import InvalidOptionError, UnknownNameError, WeightsError
from emolens.models import MODELS, PREVIOUS_MODELS, RELEASE_URL, ModelCard, released_weights, run_spec
from emolens.training import evaluate_model

from .conftest import fer_samples

WEIGHTS = Path(emolens.__file__).parent / "models" / "weights"
#: The release of ``default`` before the current one: it ships in the wheel.
PREVIOUS = next(spec for spec in PREVIOUS_MODELS if spec.name.startswith("default@") and spec.weights[0].bundled)
PREVIOUS_FILE = PREVIOUS.weights[0].name
PREVIOUS_CARD = PREVIOUS_FILE.removesuffix(".safetensors")


@pytest.fixture(scope="module")
def crops(fer_val: Path) -> list[np.ndarray]:
    files, _ = fer_samples(fer_val, per_class=4)
    return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]


def test_the_previous_default_works_offline_and_gives_its_own_answers(
    empty_home: Path, monkeypatch: pytest.MonkeyPatch, crops: list[np.ndarray]
) -> None:
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    assert PREVIOUS.weights[0].bundled
    current, previous = load_model("default"), load_model(PREVIOUS.name)
    version = MODELS.get("default").version
    assert version and f"default@{version}" != PREVIOUS.name
    pinned_current = load_model(f"default@{version}")
    assert previous.name == PREVIOUS.name and previous.identity.startswith(f"{PREVIOUS_CARD}@")
    assert pinned_current.identity == current.identity != previous.identity
    answers, previous_answers = current.predict(crops), previous.predict(crops)
    assert np.abs(answers - previous_answers).max() > 0.01  # other weights, other answers
    np.testing.assert_array_equal(pinned_current.predict(crops), answers)
    assert list(empty_home.iterdir()) == []  # nothing was fetched: the pinned version ships in the wheel


@pytest.mark.parametrize("name", ["default@v0", "emolens-consensus-default-v2@000000000000"])
def test_download_names_the_versions_of_an_unknown_pin(name: str) -> None:
    with pytest.raises(UnknownNameError, match="default@v2") as unknown:
        emolens.download([name])
    assert "default@v3" in unknown.value.suggestions and "default@v4" in unknown.value.suggestions


def test_a_release_that_left_the_wheel_says_how_to_get_it(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    downloaded = [spec for spec in PREVIOUS_MODELS if not spec.weights[0].bundled]
    assert downloaded  # default@v2 left the wheel with v4, default@v3 with v5, fast@v2 with fast v4
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    for spec in downloaded:
        with pytest.raises(WeightsError, match="emolens download"):
            load_model(spec.name)
        assert not (empty_home / spec.weights[0].name).exists()


def test_a_results_identity_names_the_same_weights(photos: Path) -> None:
    image = photos / "group" / "multiface.jpg"
    result = emolens.analyze(image, model=PREVIOUS.name, detector="yunet")
    assert (result.model, result.detector) == (PREVIOUS.name, "yunet")
    sha = hashlib.sha256((WEIGHTS / PREVIOUS_FILE).read_bytes()).hexdigest()
    assert result.model_id == f"{PREVIOUS_CARD}@{sha[:12]}"
    assert result.detector_id.startswith("yunet@") and len(result.detector_id) == len("yunet@") + 12
    data = json.loads(result.to_json())
    assert (data["model_id"], data["detector_id"]) == (result.model_id, result.detector_id)
    for same in (result.model_id, PREVIOUS_CARD):  # what a result says, or the card's name
        again = emolens.analyze(image, model=same, detector="yunet")
        assert again.model_id == result.model_id
        assert [f.probabilities for f in again.faces] == [f.probabilities for f in result.faces]


@pytest.mark.parametrize("name", ["default@v0", "default@latest", "emolens-consensus-default-v2@000000000000"])
def test_unknown_versions_name_the_known_ones(name: str) -> None:
    with pytest.raises(UnknownNameError, match="default@v2"):
        load_model(name)


#: What a release that left the wheel (and took its card along) reads, where today's release reads another thing.
RELEASED_NETWORKS = {"large@v1": ("vgg", 48)}


@pytest.mark.parametrize("spec", PREVIOUS_MODELS, ids=lambda spec: spec.name)
def test_every_previous_version_is_named_and_built_like_its_release(spec: emolens.ModelSpec) -> None:
    name, _, version = spec.name.partition("@")
    current = MODELS.get(name)
    assert spec.version == version and version != current.version
    assert spec.labels == current.labels
    weights = spec.weights[0]
    assert weights.bundled or weights.urls == (f"{RELEASE_URL}/{weights.name}",)
    if weights.bundled:  # the release's own network and input (large@v2: a VGG at 64x64), as its card records
        card = ModelCard.read(WEIGHTS / Path(weights.name).with_suffix(".json"))
        assert (spec.architecture, spec.input) == (card.architecture, card.input)
        assert json.loads(json.dumps(dict(spec.options))) == dict(card.options)
    else:  # no card in the wheel: what today's release reads, unless the table above says otherwise
        expected = RELEASED_NETWORKS.get(spec.name, (current.architecture, current.input.size))
        assert (spec.architecture, spec.input.size) == expected


@pytest.mark.parametrize("name", [spec.name for spec in MODELS.specs() if spec.weights and spec.weights[0].bundled])
def test_every_bundled_model_reads_the_input_its_card_records(name: str) -> None:
    spec = MODELS.get(name)
    card = ModelCard.read(WEIGHTS / Path(spec.weights[0].name).with_suffix(".json"))
    assert spec.input == card.input and spec.weights[0].sha256 == card.weights_sha256


def test_a_run_folders_input_size() -> None:
    """--input-size when given; the registered model's without it; 48x48 for a run folder of a built-in model
    written before runs recorded their input size (large reads 64x64 since v2)."""
    assert run_spec({"model": "large", "input_size": 80}).input_size == 80
    assert run_spec({"model": "large", "input_size": None}).input_size == MODELS.get("large").input_size == 96
    assert run_spec({"model": "large@v2", "input_size": None}).input_size == 64  # a pinned release trains as it was
    assert run_spec({"model": "large"}).input_size == 48
    assert run_spec({"model": "fast"}).input_size == 48


def test_a_run_folders_architecture() -> None:
    """The architecture a run pinned; the registered model's for a new run; ``vgg`` for a run folder of a
    built-in model that pinned its options before runs recorded their architecture's name, or nothing at all."""
    vgg = {"widths": [8, 16], "convs_per_stage": 1, "hidden": 8}
    assert run_spec({"model": "large", "architecture": "mbconv", "architecture_options": {}}).architecture == "mbconv"
    assert run_spec({"model": "large", "architecture_options": vgg}).architecture == "vgg"
    assert run_spec({"model": "large", "input_size": None}).architecture == MODELS.get("large").architecture
    assert run_spec({"model": "default"}).architecture == "vgg"
    # a run folder from before runs pinned anything trained large's VGG, which large@v2 still is (v3 is an ensemble)
    legacy = run_spec({"model": "large"})
    v2 = next(spec for spec in PREVIOUS_MODELS if spec.name == "large@v2")
    assert (legacy.architecture, dict(legacy.options)) == ("vgg", dict(v2.options))
    assert run_spec({"model": "large@v2", "input_size": None}).architecture == "vgg"
    deeper = run_spec({"model": "large", "model_options": {"convs_per_stage": [2, 2, 3, 3]}})  # a t-deep run folder
    assert deeper.architecture == "vgg" and tuple(deeper.options["convs_per_stage"]) == (2, 2, 3, 3)
    assert run_spec({"model": "large@v2"}).input_size == 48  # a recipe's teacher folder from before input sizes


@pytest.mark.slow
def test_a_release_read_at_another_input_size_keeps_its_own_answers(fer_val: Path) -> None:
    """large v3 is an ensemble reading 96x96 crops; large@v2 is still a VGG reading 64x64 ones and reproduces its
    card on val."""
    previous = next(spec for spec in PREVIOUS_MODELS if spec.name == "large@v2")
    assert (previous.input.size, MODELS.get("large").input.size) == (64, 96)
    assert load_model("large@v2").input_size == 64 and load_model("large").input_size == 96
    assert load_model("large@v2").spec.architecture == "vgg" != MODELS.get("large").architecture
    card = json.loads((WEIGHTS / previous.weights[0].name).with_suffix(".json").read_text())
    evaluation, _, _ = evaluate_model("large@v2", str(fer_val))
    assert evaluation.consensus is not None
    measured = card["metrics"]["val_tta"]
    assert evaluation.accuracy == pytest.approx(measured["accuracy"], abs=0.002)
    assert evaluation.consensus.accuracy == pytest.approx(measured["consensus"]["accuracy"], abs=0.002)


def test_a_version_that_left_the_wheel_is_downloaded_by_hash(
    empty_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serve, crops: list[np.ndarray]
) -> None:
    """A stand-in release asset (fast v3's file under another name) served by a local mirror."""
    import emolens.models

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    asset = mirror / "emolens-consensus-fast-v1.safetensors"
    shutil.copy(WEIGHTS / "emolens-consensus-fast-v3.safetensors", asset)
    sha = hashlib.sha256(asset.read_bytes()).hexdigest()
    fast_v3 = next(spec for spec in PREVIOUS_MODELS if spec.name == "fast@v3")
    weights = released_weights(asset.name, sha, asset.stat().st_size)
    stand_in = dataclasses.replace(fast_v3, name="fast@v1", version="v1", weights=weights)
    monkeypatch.setattr(emolens.models, "PREVIOUS_MODELS", (*PREVIOUS_MODELS, stand_in))
    monkeypatch.setenv("EMOLENS_MIRROR", serve(mirror))

    assert emolens.download(["fast@v1"]) == [str(empty_home / asset.name)]  # as `emolens download fast@v1`
    downloaded = load_model("fast@v1")
    assert (empty_home / asset.name).is_file() and downloaded.identity == f"emolens-consensus-fast-v1@{sha[:12]}"
    np.testing.assert_array_equal(downloaded.predict(crops), load_model("fast@v3").predict(crops))

    monkeypatch.setenv("EMOLENS_OFFLINE", "1")  # from the cache from now on
    assert load_model("fast@v1").identity == downloaded.identity

    (empty_home / asset.name).unlink()
    asset.write_bytes(asset.read_bytes()[:-1] + b"\0")  # the mirror serves a tampered file
    monkeypatch.delenv("EMOLENS_OFFLINE")
    with pytest.raises(WeightsError, match=r"sha256|SHA-256|hash"):
        load_model("fast@v1")
    assert not (empty_home / asset.name).exists()


def test_batch_tables_carry_the_identity_and_refuse_to_mix_versions(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.csv"
    v3 = load_model("fast@v3").identity
    report = emolens.batch(photos / "group", out, model="fast", workers=1, progress=False)
    current = load_model("fast").identity
    assert {row["model_id"] for row in report.rows} == {current} and {row["model"] for row in report.rows} == {"fast"}
    assert all(row["detector_id"].startswith("yunet@") for row in report.rows)
    with out.open() as file:
        assert {row["model_id"] for row in csv.DictReader(file)} == {current}
    # After an upgrade, "fast" means other weights: the table written before is not mixed with their rows,
    # and pinning the release that wrote it (as the message advises) resumes it.
    out.write_text(out.read_text().replace(current, v3))
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(photos / "group" / "multiface.jpg", extra / "another.jpg")
    with pytest.raises(InvalidOptionError, match="upgraded") as refused:
        emolens.batch([photos / "group", extra], out, model="fast", workers=1, progress=False)
    assert "NAME@VERSION" in str(refused.value)
    resumed = emolens.batch([photos / "group", extra], out, model="fast@v3", workers=1, progress=False)
    assert (resumed.skipped, resumed.analysed) == (1, 1)
    assert {row["model_id"] for row in resumed.rows} == {v3}
