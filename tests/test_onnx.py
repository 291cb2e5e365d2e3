"""ONNX models end to end, with generated stand-ins for the HSEmotion files (the real ones cannot be
downloaded here): mirror download, git-blob + sha256 verification, onnxruntime session, preprocessing,
8 labels and valence/arousal in results, the CLI's JSON."""

from __future__ import annotations

import dataclasses
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

import emolens
from emolens import WeightsIntegrityError, clear_cache
from emolens.cli import main
from emolens.labels import HSEMOTION8
from emolens.models import MODELS
from emolens.weights import cache_dir, fetch, git_blob_sha1, sha256_of

from .conftest import fer_samples

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# The stand-in's linear head: logits = channel means (3) @ W + B, with valence and arousal as the last two.
W = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
B = np.linspace(-0.5, 0.5, 10).astype(np.float32)


def make_standin(path: Path, size: int) -> Path:
    """An ONNX graph with HSEmotion's signature: input `input` (N, 3, size, size) -> (N, 10)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "W"], ["scores"]),
            helper.make_node("Add", ["scores", "B"], ["output"]),
        ],
        "standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(W, "W"),
            numpy_helper.from_array(B, "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def mirrored_b0(tmp_path: Path, serve: object, monkeypatch: pytest.MonkeyPatch, shared: Path, registries: None) -> Path:
    """hsemotion-b0-va re-registered with a stand-in's hashes, served by a loopback mirror, empty cache."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    real = MODELS.get("hsemotion-b0-va")
    standin = make_standin(folder / real.weights[0].name, real.input.size)
    weights = dataclasses.replace(real.weights[0], sha256=sha256_of(standin), git_sha1=git_blob_sha1(standin))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    monkeypatch.setenv("EMOLENS_MIRROR", serve(folder))  # type: ignore[operator]
    emolens.register_model(dataclasses.replace(real, weights=(weights,)), overwrite=True)
    clear_cache()
    return standin


def test_hsemotion_models_are_registered_with_their_licenses() -> None:
    for name in ("hsemotion-b0-va", "hsemotion-b2", "hsemotion-mbf-va"):
        spec = MODELS.get(name)
        assert spec.runtime == "onnx" and spec.labels == HSEMOTION8.labels and "contempt" in spec.labels
        assert "AffectNet" in spec.license and "research" in spec.license
        weights = spec.weights[0]
        assert len(weights.git_sha1) == 40 and len(weights.sha256) == 64 and not weights.bundled
        assert weights.urls[0].startswith("https://raw.githubusercontent.com/av-savchenko/face-emotion-recognition/")
    assert MODELS.get("hsemotion-b0-va").valence_arousal and not MODELS.get("hsemotion-b2").valence_arousal
    assert MODELS.get("hsemotion-b2").input.size == 260 and MODELS.get("hsemotion-mbf-va").input.mean == (0.5,) * 3


def test_cli_json_has_8_labels_and_valence_arousal(
    mirrored_b0: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = photos / "group" / "multiface.jpg"
    assert main(["analyze", str(photo), "--model", "hsemotion-b0-va", "--detector", "yunet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    assert result["model"] == "hsemotion-b0-va" and len(result["faces"]) == 6
    for face in result["faces"]:
        assert list(face["probabilities"]) == list(HSEMOTION8.labels)
        assert sum(face["probabilities"].values()) == pytest.approx(1.0)
        assert -1 <= face["valence"] <= 1 and -1 <= face["arousal"] <= 1
    # downloaded once, verified, cached under its own name with nothing left beside it
    cached = sorted(p.name for p in cache_dir().iterdir() if p.suffix != ".lock")  # lock files stay, empty
    assert cached == ["enet_b0_8_va_mtl.onnx"]


def test_preprocessing_and_outputs_match_the_graph(mirrored_b0: Path) -> None:
    """A flat-colour image: the expected logits follow from the input spec by hand."""
    bgr = (40, 120, 200)
    image = np.zeros((300, 300, 3), np.uint8)
    image[:] = bgr
    face = emolens.analyze(image, detector=None, model="hsemotion-b0-va").faces[0]
    spec = MODELS.get("hsemotion-b0-va").input
    rgb = np.array(bgr[::-1], np.float32) / 255
    outputs = ((rgb - np.array(spec.mean)) / np.array(spec.std)) @ W + B
    expected = np.exp(outputs[:8] - outputs[:8].max())
    assert np.allclose(face.probabilities, expected / expected.sum(), atol=1e-4)
    assert face.label == HSEMOTION8.labels[int(outputs[:8].argmax())]
    assert face.valence == pytest.approx(float(np.clip(outputs[8], -1, 1)), abs=1e-4)
    assert face.arousal == pytest.approx(float(np.clip(outputs[9], -1, 1)), abs=1e-4)
    assert face.emotion is not None and face.emotion.value == face.label  # canonical labels, other order


@pytest.mark.parametrize("tamper", ["sha256-only", "both"])
def test_verification_names_which_hash_disagrees(
    tmp_path: Path, serve: object, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    standin = make_standin(folder / "enet_b0_8_va_mtl.onnx", 224)
    real = MODELS.get("hsemotion-b0-va").weights[0]
    if tamper == "sha256-only":  # the upstream tree's blob hash matches, the third-party sha256 does not
        weights = dataclasses.replace(real, git_sha1=git_blob_sha1(standin), sha256="0" * 64)
        message = "only the sha256 disagrees"
    else:
        weights = real  # the stand-in is not the upstream file
        message = "not the upstream one"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    monkeypatch.setenv("EMOLENS_MIRROR", serve(folder))  # type: ignore[operator]
    with pytest.raises(WeightsIntegrityError, match=message):
        fetch(weights)
    assert [p for p in home.iterdir() if p.suffix != ".lock"] == []  # nothing cached, no partial file left


def test_onnx_file_beside_a_card_loads_by_path(tmp_path: Path) -> None:
    """Your own ONNX model: a card naming runtime onnx, labels and input; loaded by the card's path."""
    from emolens.models import ModelCard

    standin = make_standin(tmp_path / "mine.onnx", 64)
    card = ModelCard(
        name="mine",
        labels=HSEMOTION8.labels,
        weights_file=standin.name,
        weights_sha256=sha256_of(standin),
        architecture="",
        runtime="onnx",
        input=emolens.InputSpec(size=64, color="rgb", mean=(0.5,) * 3, std=(0.5,) * 3),
        valence_arousal=True,
    )
    card.write(tmp_path / "mine.json")
    model = emolens.load_model(tmp_path / "mine.json")
    output = model.predict_output([np.zeros((9, 9, 3), np.uint8), np.zeros((120, 90), np.uint8)])
    assert output.probabilities.shape == (2, 8) and output.valence is not None and output.valence.shape == (2,)
    # a card whose input disagrees with the graph's is refused at load, by a ModelError that says which
    for wrong in (emolens.InputSpec(size=48, color="rgb"), emolens.InputSpec(size=64, color="gray")):
        dataclasses.replace(card, input=wrong).write(tmp_path / "wrong.json")
        with pytest.raises(emolens.ModelError, match=r"takes input .*64x64.* but the model.s card says"):
            emolens.load_model(tmp_path / "wrong.json")


def test_an_rgb_model_scores_the_same_in_evaluate_and_analyze(tmp_path: Path) -> None:
    """One inference path: a colour model with its own normalisation gives the same probabilities through
    ``emolens evaluate`` (a dataset read in colour) as through ``analyze()`` on the same images."""
    import cv2
    from onnx import TensorProto, helper, numpy_helper

    from emolens import InputSpec
    from emolens.labels import FER2013
    from emolens.models import ModelCard
    from emolens.training import evaluate_model

    weights = np.random.default_rng(1).normal(size=(3, 7)).astype(np.float32) * 4
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "W"], ["output"]),
        ],
        "rgb-standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 7])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "W"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "rgb.onnx"))
    card = tmp_path / "rgb.json"
    spec = InputSpec(size=32, color="rgb", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    ModelCard(
        "rgb", FER2013.labels, "rgb.onnx", sha256_of(tmp_path / "rgb.onnx"), architecture="", runtime="onnx", input=spec
    ).write(card)
    rng = np.random.default_rng(2)
    for index, label in enumerate(("happy", "happy", "sad", "angry", "neutral", "neutral")):
        (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
        colour = rng.integers(0, 256, 3)
        image = np.clip(rng.normal(colour, 40, (40 + 17 * index, 50 + 9 * index, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "data" / label / f"{index}.png"), image)

    _, probabilities, data = evaluate_model(str(card), str(tmp_path / "data"), ferplus=None)
    assert data.images.shape[1:] == (32, 32, 3)  # read in colour, for the model's RGB input
    for source, row in zip(data.sources, probabilities, strict=True):
        face = emolens.analyze(source, model=str(card), detector=None).faces[0]
        assert np.allclose(face.probabilities, row, atol=1e-6), source
    # the colour matters to this model: the same images in grayscale would score otherwise
    gray = emolens.load_model(str(card)).predict(
        [cv2.cvtColor(cv2.imread(source), cv2.COLOR_BGR2GRAY) for source in data.sources]
    )
    assert not np.allclose(gray, probabilities, atol=1e-3)


@pytest.mark.parametrize("name", ["../escaped", "", "sub/model", ".hidden"])
def test_export_names_one_plain_file_stem(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--name is a file stem inside --out: a path that leads elsewhere, an empty or a hidden name is refused
    before anything is written (``../escaped`` wrote outside --out, then reported a failure)."""
    out = tmp_path / "out"
    assert main(["export", "fast", "--onnx", "--out", str(out), "--name", name]) == 2
    assert "plain file name stem" in capsys.readouterr().err
    assert not out.exists() and sorted(tmp_path.iterdir()) == [], "nothing written anywhere"


OWN_MODELS = [
    spec.name for spec in MODELS.specs() if spec.runtime == "torch" and spec.weights and spec.weights[0].bundled
]


@pytest.mark.parametrize("name", OWN_MODELS)
def test_export_onnx_round_trips_on_real_faces(name: str, fer_val: Path, photos: Path, tmp_path: Path) -> None:
    """`emolens export --onnx`: the graph (TTA and calibration inside) answers as the torch model in float32."""
    import cv2

    from emolens.models import export_onnx, preprocess

    card = export_onnx(name, tmp_path, f"{name}-onnx")
    assert card.runtime == "onnx" and not card.tta and card.labels == MODELS.get(name).labels
    images, _ = fer_samples(fer_val, per_class=4)
    crops = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in images]
    photo = photos / "group" / "multiface.jpg"
    image = cv2.imread(str(photo))
    for face in emolens.analyze(photo, detector="yunet", model="fast").faces:  # colour crops of real photos
        crops.append(image[face.box.y : face.box.y + face.box.height, face.box.x : face.box.x + face.box.width])
    # the graph mirrors every face under flip TTA (analyze() only the uncertain ones: tests/test_tta.py)
    expected = emolens.load_model(name, precision="float32").with_options(tta_margin=1.0).predict(crops)
    exported = emolens.load_model(str(tmp_path / f"{name}-onnx.json"))
    assert exported.spec.runtime == "onnx"
    assert np.abs(exported.predict(crops) - expected).max() < 1e-4
    # for other languages: softmax of the graph's output is the answer, with the input the card describes
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / f"{name}-onnx.onnx"))
    batch = preprocess(crops, card.input).numpy()
    (log_probabilities,) = session.run(None, {"input": batch})
    assert np.abs(np.exp(log_probabilities) - expected).max() < 1e-4


def test_a_logits_only_graph_is_the_network_and_emolens_runs_tta_and_calibration_around_it(
    fer_val: Path, tmp_path: Path
) -> None:
    """What tools.quantize quantizes: the raw logits; with the float model's calibration it answers as that model."""
    import cv2

    from emolens.models import export_onnx

    card = export_onnx("default", tmp_path, "bare", logits_only=True)
    reference = emolens.load_model("default", precision="float32")
    assert card.tta and card.description.startswith(f"default ({reference.identity})")
    images, _ = fer_samples(fer_val, per_class=4)
    crops = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in images]
    bare = emolens.load_model(str(tmp_path / "bare.json"))
    assert bare.tta and bare.temperatures == (1.0,) * 7  # no calibration in the graph's metadata
    calibrated = bare.with_options(temperatures=reference.temperatures)
    assert np.abs(calibrated.predict(crops) - reference.predict(crops)).max() < 1e-4  # the same unsure faces mirrored
    assert np.abs(bare.predict(crops) - reference.predict(crops)).max() > 1e-3  # the calibration shows


@pytest.mark.parametrize("name", [spec.name for spec in MODELS.specs() if spec.int8])
def test_int8_graph_scores_within_a_third_of_a_point_of_float32(name: str, shared: Path) -> None:
    """The shipped int8 graph against the torch model in float32, both as analyze() runs them (flip TTA on the
    unsure faces, the calibration of the float weights), on val consensus and CK+."""
    from emolens.training import evaluate_model

    spec = MODELS.get(name)
    int8 = emolens.load_model(name, precision="int8")
    fp32 = emolens.load_model(name, precision="float32")
    assert int8.spec.runtime == "onnx" and int8.identity.startswith(f"{spec.int8[0].name[:-5]}@")
    # the graph is the network alone (its logits): emolens runs the model's TTA and calibration around it, the
    # latter from the graph's own metadata, so its card loaded directly answers the same
    assert [output.name for output in int8.runtime.session.get_outputs()] == ["logits"]  # type: ignore[attr-defined]
    assert (int8.tta, int8.tta_margin, int8.temperatures) == (fp32.tta, fp32.tta_margin, fp32.temperatures)
    assert set(fp32.temperatures) != {1.0}  # a calibration that would show if it were missing
    card = emolens.load_model(str(files("emolens.models") / "weights" / spec.int8[0].name.replace(".onnx", ".json")))
    assert (card.identity, card.temperatures, card.tta) == (int8.identity, int8.temperatures, int8.tta)
    val, ckplus = shared / "datasets" / "fer2013" / "val", shared / "datasets" / "ckplus48"
    scores, probabilities = {}, {}
    for label, source in (("int8", int8), ("fp32", fp32)):
        on_val, probabilities[label], _ = evaluate_model(source, str(val))
        on_ckplus, _, _ = evaluate_model(source, str(ckplus), ferplus=None)
        assert on_val.consensus is not None
        scores[label] = (on_val.consensus.accuracy, on_ckplus.accuracy)
    assert scores["int8"] == pytest.approx(scores["fp32"], abs=0.003)
    assert np.quantile(np.abs(probabilities["int8"] - probabilities["fp32"]).max(axis=1), 0.99) < 0.1
    without = emolens.load_model(name, precision="int8", tta=False)  # a TTA choice reaches the int8 graph too
    assert not without.tta and without.temperatures == fp32.temperatures
    with pytest.raises(emolens.InvalidOptionError, match="has no int8 graph; models with one"):
        emolens.load_model("large", precision="int8")


def test_precision_reaches_the_model_from_the_api_and_the_command_line(
    photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = photos / "group" / "multiface.jpg"
    reference = emolens.analyze(photo, model="fast", precision="float32")
    quantized = emolens.analyze(photo, model="fast", precision="int8")
    assert quantized.model_id.startswith("emolens-consensus-fast-v4-int8@") and reference.model_id != quantized.model_id
    # its idle threads sleep, so they leave the cores to the detector between two forward passes
    options = emolens.load_model("fast", precision="int8").runtime.session.get_session_options()  # type: ignore[attr-defined]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert [f.box for f in quantized.faces] == [f.box for f in reference.faces]
    assert (
        np.abs(np.array([f.probabilities for f in quantized.faces]) - [f.probabilities for f in reference.faces]).max()
        < 0.1
    )
    assert main(["analyze", str(photo), "--model", "fast", "--precision", "int8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["model_id"] == quantized.model_id
    assert main(["analyze", str(photo), "--model", "large", "--precision", "int8"]) == 2
    assert "has no int8 graph" in capsys.readouterr().err
