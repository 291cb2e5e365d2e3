"""precision="fastest": measured once per host and model, remembered in the weights cache, never hidden."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import emolens
from emolens.cli import main
from emolens.models import PRECISIONS, cpu_info, fastest_choices

pytest.importorskip("onnxruntime")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path))
    return tmp_path


def test_fastest_measures_once_and_remembers_per_host(home: Path) -> None:
    model = emolens.load_model("fast", precision="fastest")
    choices = json.loads((home / "precisions.json").read_text())
    (key, entry), *_ = choices.items()
    graphs = f"{emolens.models.MODELS.get('fast').identity} vs {emolens.models.int8_spec('fast').identity} (no TTA)"
    assert key.startswith(cpu_info().describe()) and key.endswith(f" | {graphs}")
    assert set(entry["ms_per_8_faces"]) == {"auto", "int8"} and all(ms > 0 for ms in entry["ms_per_8_faces"].values())
    faster = min(entry["ms_per_8_faces"], key=entry["ms_per_8_faces"].get)
    assert entry["precision"] == faster
    assert (model.precision == "int8") == (faster == "int8")
    assert fastest_choices()[emolens.models.MODELS.get("fast").identity]["precision"] == faster

    # the remembered choice is what later loads run, without measuring again
    for remembered, runs in (("int8", "int8"), ("auto", emolens.load_model("fast").precision)):
        entry["precision"] = remembered
        (home / "precisions.json").write_text(json.dumps({key: entry}))
        again = emolens.load_model("fast", precision="fastest")
        assert again.precision == runs
        assert json.loads((home / "precisions.json").read_text())[key]["precision"] == remembered
    int8 = emolens.load_model("fast", precision="int8")
    assert int8.precision == "int8" and int8.identity != emolens.load_model("fast").identity  # model_id says so


def test_a_damaged_choices_file_is_measured_again(home: Path) -> None:
    (home / "precisions.json").write_text("{not json")
    emolens.load_model("fast", precision="fastest")
    assert len(json.loads((home / "precisions.json").read_text())) == 1


def test_other_hosts_choices_are_kept_and_not_used(home: Path) -> None:
    elsewhere = {"Other CPU (avx2) x64, torch 0, onnxruntime 0 | x@1": {"precision": "int8"}}
    (home / "precisions.json").write_text(json.dumps(elsewhere))
    emolens.load_model("fast", precision="fastest")
    kept = json.loads((home / "precisions.json").read_text())
    assert len(kept) == 2 and kept | elsewhere == kept
    assert "x@1" not in fastest_choices()


def test_without_an_int8_graph_nothing_is_measured(home: Path) -> None:
    assert emolens.load_model("large", precision="fastest").precision in ("bfloat16", "float32")
    assert not (home / "precisions.json").exists()


def test_a_chosen_tta_is_measured_and_kept_apart(home: Path) -> None:
    """Both runtimes run the TTA asked for (the int8 graph is the network alone), so the choice is per setting."""
    assert emolens.load_model("default", precision="fastest", tta=False).tta is False
    assert emolens.load_model("default", precision="fastest").tta is True
    assert emolens.load_model("default", precision="fastest", tta=True).tta is True  # the default's choice again
    assert len(json.loads((home / "precisions.json").read_text())) == 2
    listed = fastest_choices()  # as `emolens models --verbose` lists them
    assert any(model.endswith("(no TTA)") for model in listed) and len(listed) == 2, listed


def test_the_command_line_offers_it_and_lists_the_choice(
    home: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "fastest" in PRECISIONS
    photo = photos / "group" / "multiface.jpg"
    assert main(["analyze", str(photo), "--model", "fast", "--precision", "fastest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["faces"]
    emolens.load_model("fast", precision="fastest", tta=True)  # not fast's default setting: listed by name
    assert main(["models", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert f"Host: {cpu_info().describe()}" in out
    assert "fastest here: " in out and "ms for 8 faces: auto " in out
    assert "fastest here (flip TTA margin 0.4): " in out
    assert "engine here: onnxruntime" in out  # YuNet's engine (tests/test_detectors.py: its fallback)


def test_batch_runs_one_precision_and_its_table_says_which(home: Path, photos: Path, tmp_path: Path) -> None:
    from emolens.models import int8_spec

    photo = photos / "group" / "multiface.jpg"
    out = tmp_path / "faces.csv"
    report = emolens.batch([photo], out, model="fast", precision="int8", workers=1, progress=False)
    assert report.faces == 6
    assert {row["model_id"] for row in report.rows} == {int8_spec("fast").identity}
    # another precision's weights are not appended to that table
    with pytest.raises(emolens.InvalidOptionError, match="another --precision"):
        emolens.batch([photo], out, model="fast", workers=1, progress=False)
    # "fastest" is decided once, before the workers start: every row from the same weights
    both = emolens.batch([photo, photo], None, model="fast", precision="fastest", workers=2, progress=False)
    chosen = emolens.load_model("fast", precision="fastest")
    assert {row["model_id"] for row in both.rows} == {chosen.identity}
    with pytest.raises(emolens.InvalidOptionError, match="has no int8 graph"):
        emolens.batch([photo], None, model="large", precision="int8", workers=1, progress=False)


def test_serve_runs_its_precision_where_a_model_has_it(home: Path, photos: Path, tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from tools.server import running_server

    from emolens.models import int8_spec

    photo = (photos / "group" / "multiface.jpg").read_bytes()
    with running_server(["--model", "fast", "--precision", "int8", "--no-warmup"], log=tmp_path / "log") as server:
        fast = httpx.post(f"{server.url}/v1/analyze", content=photo, timeout=120)
        large = httpx.post(f"{server.url}/v1/analyze?model=large", content=photo, timeout=120)
    assert fast.status_code == 200 and fast.json()["model_id"] == int8_spec("fast").identity
    assert large.status_code == 200 and large.json()["model_id"] == emolens.models.MODELS.get("large").identity


@pytest.mark.parametrize("name", ["default", "fast"])
def test_auto_precision_answers_like_float32(name: str, photos: Path) -> None:
    """Pinning fixes the weights; "auto" runs bf16 only where the CPU has it, and stays this close to float32
    (the bound docs/models.md states). On a CPU without bf16 both run float32 and agree exactly."""
    auto, exact = emolens.Analyzer(model=name), emolens.Analyzer(model=name, precision="float32")
    gaps, changed, faces = [], 0, 0
    for photo in sorted((photos / "dlib-faces").glob("*.jpg")):
        for a, b in zip(auto.analyze(photo).faces, exact.analyze(photo).faces, strict=True):
            gaps.append(np.abs(np.array(a.probabilities) - np.array(b.probabilities)).max())
            changed += a.emotion != b.emotion
            faces += 1
    assert faces >= 40
    assert max(gaps) < 0.02 and changed <= faces // 20
    if auto.model.precision == "float32":
        assert max(gaps) < 1e-5


@pytest.mark.parametrize("name", ["default", "large"])
def test_bf16_runs_on_a_copy_that_computes_as_autocast_and_follows_the_weights(name: str, photos: Path) -> None:
    """Where the CPU has bf16, "auto" classifies with a copy of the network whose convolution and linear weights
    are bf16 already (no casts per call): the same logits, bit for bit, as bf16 autocast on the float32 network,
    and a change to the network's weights reaches the copy before the next call."""
    import cv2
    import torch

    from emolens.models import TorchRuntime, cpu_has_native_bf16, predict_logits, preprocess

    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16: 'auto' runs float32 (test_auto_precision_answers_like_float32)")
    model = emolens.load_model(name)
    runtime = model.runtime
    assert isinstance(runtime, TorchRuntime) and model.precision == "bfloat16"
    crops = []
    for photo in sorted((photos / "dlib-faces").glob("*.jpg"))[:4]:
        image = cv2.imread(str(photo))
        for face in emolens.analyze(image).faces:
            box = face.box
            crops.append(image[max(box.y, 0) : box.y + box.height, max(box.x, 0) : box.x + box.width])
    assert len(crops) >= 6
    batch = preprocess(crops, model.spec.input)
    network = model.network
    copied = runtime.inference_network
    assert copied is not network and runtime.inference_network is copied  # made once, then kept
    assert {p.dtype for p in copied.parameters()} == {torch.bfloat16}  # emolens' networks: convolutions, linear
    assert {p.dtype for p in network.parameters()} == {torch.float32}  # the master (export, fine-tuning)

    def autocast_logits() -> torch.Tensor:
        return predict_logits(network, batch, tta=model.tta, amp=True)  # casts every weight on the call

    assert torch.equal(runtime.forward(batch, tta=model.tta), autocast_logits())
    with torch.no_grad():
        next(network.parameters()).mul_(0.5)  # a user's (or a fine-tune's) change to the weights
    changed = runtime.forward(batch, tta=model.tta)
    assert runtime.inference_network is not copied
    assert torch.equal(changed, autocast_logits())
    assert not torch.equal(changed, predict_logits(network, batch, tta=model.tta, amp=False))  # bf16, not float32
