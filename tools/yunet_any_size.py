"""Write the YuNet graph emolens bundles: OpenCV Zoo's, with its input's height and width left open.

    python -m tools.yunet_any_size [UPSTREAM] [--out FILE]

OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` declares a 1x3x640x640 input. OpenCV's
``cv2.FaceDetectorYN`` reshapes it to every image anyway, but ONNX Runtime (about twice as fast
on the CPU, docs/detectors.md) holds a graph to its declared shapes. Nothing in the graph depends on
the size (its reshapes keep -1, its upsampling is by a scale factor), so this script only names the
input's height and width and the outputs' anchor counts as symbolic dimensions and drops the recorded
intermediate shapes; the nodes and weights are the upstream file's (``tests/test_detectors.py`` checks
that against ../shared/weights). Needs the ``onnx`` package (``emolens[test]``).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from emolens.detectors import DETECTORS

#: OpenCV Zoo's file (https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet).
UPSTREAM_NAME = "face_detection_yunet_2023mar.onnx"
UPSTREAM_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
#: Where the wheel's copy lies, under the name the detector registry gives it.
BUNDLED = Path(__file__).resolve().parents[1] / "src/emolens/detectors/weights" / DETECTORS.get("yunet").weights[0].name


def any_size(upstream: bytes) -> bytes:
    """The upstream graph's bytes with symbolic input height/width and output anchor counts."""
    import onnx

    if hashlib.sha256(upstream).hexdigest() != UPSTREAM_SHA256:
        raise ValueError(f"not OpenCV Zoo's {UPSTREAM_NAME} (sha256 {UPSTREAM_SHA256})")
    model = onnx.load_from_string(upstream)
    (image,) = model.graph.input
    image.type.tensor_type.shape.dim[2].dim_param = "height"
    image.type.tensor_type.shape.dim[3].dim_param = "width"
    for output in model.graph.output:  # cls_8, obj_16, ...: (1, anchors at that stride, values)
        stride = output.name.rsplit("_", 1)[1]
        output.type.tensor_type.shape.dim[1].dim_param = f"anchors_{stride}"
    del model.graph.value_info[:]  # shapes recorded for a 640x640 input
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "upstream", type=Path, nargs="?", default=Path("../shared/weights") / UPSTREAM_NAME, help="OpenCV Zoo's file"
    )
    parser.add_argument("--out", type=Path, default=BUNDLED, help="where to write it (default: the bundled file)")
    args = parser.parse_args()
    data = any_size(args.upstream.read_bytes())
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()})")


if __name__ == "__main__":
    main()
