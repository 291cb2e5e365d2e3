"""Build the int8 ONNX graph of a bundled model and measure it against the model in float32 on real data.

    python -m tools.quantize MODEL [--out DIR] [--images N] [--method minmax|percentile|entropy]

The float32 graph is the model's network alone (``export_onnx(..., logits_only=True)``: its raw logits, no
TTA, no calibration: emolens runs both around the int8 graph as it does around the torch network, so flip TTA
mirrors only the unsure faces). ONNX Runtime's static quantization (QDQ, int8 weights per channel, uint8
activations: the fast path of VNNI and AMX CPUs) sets the activation ranges from N FER2013 *training* images
(the same number of each class, the first in file-name order), and the float model's temperatures go into the
int8 graph's metadata (``temperatures``, as ``emolens export`` writes them into a safetensors file). Val
(consensus and original accuracy) and CK+ are then measured for the int8 graph and for the torch model in
float32, both as ``analyze()`` runs them, through ``emolens evaluate``'s code; the int8 graph ships only if
both stay within 0.3 points of float32 (the rule of issue 28; the test in tests/test_onnx.py checks the
shipped files). The calibration does not move an answer (it divides a face's logits by one temperature).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .testdata import SHARED, training_crops

if TYPE_CHECKING:
    from emolens.models import InputSpec, ModelCard, ModelSource

METHODS = ("minmax", "percentile", "entropy")


def calibration_batches(spec: InputSpec, images: int, batch: int = 32) -> list[np.ndarray]:
    """Input batches (normalised as ``spec`` says) of ``images`` training images, the same number of each class."""
    from emolens.models import preprocess

    crops = training_crops(images)
    whole = len(crops) - len(crops) % batch  # equal batches: the histogram calibrators stack them
    return [preprocess(crops[i : i + batch], spec).numpy() for i in range(0, whole, batch)]


def quantize(model: str, out: Path, *, images: int = 1024, method: str = "percentile") -> Path:
    """Write ``<out>/<weights stem>-int8.onnx`` and its card; returns the card's path."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from emolens import load_model
    from emolens.models import MODELS, export_onnx

    stem = MODELS.get(model).weights[0].name.removesuffix(".safetensors")
    float32 = load_model(model, precision="float32")  # loaded once: its input, its network, its calibration
    batches = calibration_batches(float32.spec.input, images)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.left = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.left, None)
            return None if batch is None else {"input": batch}

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{stem}-int8.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = export_onnx(float32, scratch, f"{stem}-fp32", logits_only=True)
        quantize_static(
            str(Path(scratch) / fp32.weights_file),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
        )
    return write_card(model, target, fp32, float32.temperatures, f"--images {images} --method {method}", images)


def write_card(
    model: str, graph: Path, fp32: ModelCard, temperatures: tuple[float, ...], options: str, images: int
) -> Path:
    """Store the model's ``temperatures`` in the int8 ``graph``'s metadata and write its card beside it."""
    import onnx

    from emolens.models import ModelCard
    from emolens.weights import sha256_of

    proto = onnx.load(str(graph))
    kept = [entry for entry in proto.metadata_props if entry.key != "temperatures"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key="temperatures", value=json.dumps(list(temperatures)))
    onnx.save(proto, str(graph))
    stem = graph.name.removesuffix("-int8.onnx")
    card = ModelCard(
        name=graph.stem,
        labels=fp32.labels,
        weights_file=graph.name,
        weights_sha256=sha256_of(graph),
        architecture="",
        runtime="onnx",
        input=fp32.input,
        tta=fp32.tta,
        weights_license=fp32.weights_license,
        description=(
            f"{model}'s network ({stem}) as an int8 ONNX graph (`python -m tools.quantize {model} {options}`: static "
            f"QDQ quantization, int8 weights per channel, uint8 activations calibrated on {images} FER2013 training "
            f"images); it returns the logits, and carries {stem}'s calibration in its metadata: emolens runs the "
            "model's flip TTA and that calibration around it"
        ),
    )
    card.write(graph.with_suffix(".json"))
    return graph.with_suffix(".json")


def measure(model: ModelSource) -> dict[str, float]:
    """Val consensus, val original and CK+ accuracy of a model source, as `emolens evaluate` measures them."""
    from emolens.training import evaluate_model

    val, _, _ = evaluate_model(model, str(SHARED / "datasets" / "fer2013" / "val"))
    ckplus, _, _ = evaluate_model(model, str(SHARED / "datasets" / "ckplus48"), ferplus=None)
    assert val.consensus is not None
    return {"consensus": val.consensus.accuracy, "original": val.accuracy, "ckplus": ckplus.accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a bundled emolens model: default, fast, large ...")
    parser.add_argument("--out", type=Path, default=Path("runs") / "int8")
    parser.add_argument("--images", type=int, default=1024, help="training images for the activation ranges")
    parser.add_argument("--method", choices=METHODS, default="percentile")
    args = parser.parse_args()
    from emolens import load_model

    card = quantize(args.model, args.out, images=args.images, method=args.method)
    rows = {"float32 (torch)": measure(load_model(args.model, precision="float32")), "int8 (ONNX)": measure(str(card))}
    print(f"| {args.model} | val consensus | val original | CK+ |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['consensus']:.2%} | {row['original']:.2%} | {row['ckplus']:.2%} |")
    worst = max(abs(rows["int8 (ONNX)"][k] - rows["float32 (torch)"][k]) for k in ("consensus", "ckplus"))
    print(json.dumps({"model": args.model, "card": str(card), "largest_change_points": round(100 * worst, 2)}))


if __name__ == "__main__":
    main()
