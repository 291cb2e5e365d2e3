"""Generate the docs pages that are made from the code: the CLI reference and the model zoo page.

``python -m tools.docs_pages`` rewrites them; ``tests/test_docs.py`` fails when they are stale.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emolens.models import MeasuredRecord

REPO = Path(__file__).resolve().parents[1]
CLI_PAGE = REPO / "docs" / "cli.md"
MODELS_PAGE = REPO / "docs" / "models.md"

SUBCOMMANDS = [
    "analyze",
    "video",
    "models",
    "download",
    "evaluate",
    "batch",
    "serve",
    "train",
    "export",
    "recipe",
    "dataset",
    "dataset crop",
]


def render_cli_reference() -> str:
    env = {**os.environ, "COLUMNS": "100"}
    parts = [
        "# CLI reference\n",
        "Generated from the argument parser (`python -m tools.docs_pages` rewrites this page; "
        "a test fails when it is out of date). `python -m emolens` is the same command, for environments "
        "whose scripts folder is not on `PATH`.\n",
    ]
    for command in [None, *SUBCOMMANDS]:
        args = [sys.executable, "-m", "emolens.cli", *(command.split() if command else []), "--help"]
        text = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
        parts.append(f"## `emolens{' ' + command if command else ''}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


# The consensus issue's goals per bundled model: (val consensus accuracy, faces/s at batch 64 with its TTA);
# every consensus model also has guards, checked by tests/test_accuracy.py against its FER2013 predecessor.
MODEL_TARGETS = {"default": (0.86, 500), "fast": (0.84, 5_000)}
GOAL_ECE = 0.03


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _record(card_file: Path) -> MeasuredRecord:
    """The measured record of a bundled model's card (every bundled card has one)."""
    from emolens.models import ModelCard

    record = ModelCard.read(card_file).record
    assert record is not None, f"{card_file.name} is a measured card"
    return record


def render_models_page() -> str:
    """The model zoo tables plus every bundled model's card (from src/emolens/models/weights/)."""
    import json

    from emolens.models import MODELS

    speed_file = REPO / "benchmarks" / "results" / "speed-cpu.json"
    measured = json.loads(speed_file.read_text()) if speed_file.exists() else {}
    speed = measured.get("models", [])
    speed_host = measured.get("machine", {}).get("cpu", "not recorded")

    head = [
        "# Emotion models\n",
        "emolens trains its own emotion models (the code is in `emolens.training`, see "
        "[Training and evaluation](training.md)) and ships them inside the wheel, so the default works offline. "
        "Each model has a model card written by `emolens export` from measurements on the exported weights; the "
        "cards live beside the weights in `src/emolens/models/weights/` and are reproduced here "
        "(`python -m tools.docs_pages` regenerates this page; a test fails when it is stale).\n",
        "Two kinds of model ship. `default`, `fast` and `large` learned from the **FER+ crowd votes** (ten people per "
        "image): they are the ones to use, because their answers agree with what people name. The "
        "`fer2013-*` models learned FER2013's original single labels: use them to compare with papers and "
        "FER2013 leaderboards, which report accuracy against those labels. Why the two accuracies pull apart: "
        "[Agreeing with people](training.md#agreeing-with-people-fer-consensus).\n",
        "Accuracies on FER2013 val (PublicTest) with each model's default TTA setting, from its card (which "
        "mirrors every face under flip TTA; `analyze()` mirrors only the uncertain ones, within 0.1 point: "
        "[Benchmarks](benchmarks.md#what-flip-tta-buys)): *consensus* is against "
        "the FER+ majority (3,249 of the 3,589 images have one), *original* against the FER2013 label. Speed "
        "is faces per second at batch 64 on the reference 2-core CPU as `analyze()` runs it there, from "
        f"`benchmarks/results/speed-cpu.json` (`python benchmarks/speed.py`; host: {speed_host}).\n",
        "| name | learned from | parameters | weights file | consensus accuracy | mean recall (consensus) "
        "| original accuracy | ECE (see each card) | faces/s, batch 64 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cards = []
    targets = [
        "\n## Targets\n",
        "The project's goals for the bundled models (val consensus accuracy with the model's default TTA setting, "
        "ECE cross-fitted against what the model was calibrated on, speed at batch 64 on the reference CPU), "
        "checked against the numbers above:\n",
        "| model | consensus accuracy | faces/s, batch 64 | ECE |",
        "|---|---|---|---|",
    ]
    weights_dir = REPO / "src" / "emolens" / "models" / "weights"
    specs = MODELS.specs()
    bundled = [spec for spec in specs if spec.weights and spec.weights[0].bundled]
    shown: set[str] = set()
    for spec in bundled:
        stem = spec.weights[0].name.removesuffix(".safetensors")
        record = _record(weights_dir / f"{stem}.json")
        m = record.metrics.default(spec.tta)
        rate = [
            r["faces_per_s"]
            for r in sorted(speed, key=lambda r: r.get("runtime") != "torch bf16")  # what analyze() runs here
            if (r["model"], r["tta"], r["batch"]) == (spec.name, spec.tta, 64)
            and r.get("runtime", "torch") in ("torch", "torch bf16", "torch float32")
            # the release measured, not an earlier one (rows count the parameters with BatchNorm folded in)
            and abs(r.get("params", record.parameters) - record.parameters) <= 0.01 * record.parameters
        ]
        learned = "FER2013 labels" if record.targets == "original" else "FER+ votes"
        consensus = m.consensus
        ece = record.calibration.ece
        head.append(
            f"| `{spec.name}` | {learned} | {record.parameters / 1e6:.2f}M "
            f"| {record.weights_bytes / 2**20:.1f} MiB ({record.weights_storage.split()[0]}) "
            f"| {consensus.accuracy:.4f} | {consensus.mean_recall:.4f} | {m.accuracy:.4f} "
            f"| {ece:.4f} | {f'{rate[0]:,.0f}' if rate else 'not measured'} |"
            if consensus
            else f"| `{spec.name}` | {learned} | {record.parameters / 1e6:.2f}M | | not measured | | "
            f"{m.accuracy:.4f} | {ece:.4f} | |"
        )
        if spec.name in MODEL_TARGETS and consensus:
            goal_accuracy, goal_rate = MODEL_TARGETS[spec.name]
            accuracy = consensus.accuracy
            targets.append(
                f"| `{spec.name}` | >= {goal_accuracy:.2f}: {accuracy:.4f}, {_verdict(accuracy >= goal_accuracy)} "
                f"| >= {goal_rate:,}: {f'{rate[0]:,.0f}' if rate else 'not measured'}, "
                f"{_verdict(bool(rate) and rate[0] >= goal_rate)} "
                f"| <= {GOAL_ECE:.2f}: {ece:.4f}, {_verdict(ece <= GOAL_ECE)} |"
            )
        if stem in shown:
            continue  # one card per weights file: two names may share one (large and fer2013-large)
        shown.add(stem)
        body = (weights_dir / f"{stem}.md").read_text().replace("# Model card:", "## Model card:", 1)
        body = body.replace("\n## ", "\n### ").replace("\n### Model card:", "\n## Model card:")
        figure = f"images/confusion-{spec.name}.png"  # python -m tools.figures, from this card's numbers
        if (REPO / "docs" / figure).exists():
            body = body.rstrip() + f"\n\n![Confusion matrices of {spec.name} on FER2013 val]({figure})\n"
        figure = f"images/reliability-{spec.name}.png"  # python -m tools.figures, a fresh val evaluation
        if (REPO / "docs" / figure).exists():
            body = body.rstrip() + f"\n\n![Reliability diagrams of {spec.name} on FER2013 val]({figure})\n"
        cards.append(body)
    spec_table = [
        "\n## Labels, inputs, outputs and licenses\n",
        "Every registered model, bundled or downloaded on first use ([label sets](labels.md)):\n",
        "| name | labels | outputs | input | runtime | weights | license |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        where = "bundled" if spec.weights and spec.weights[0].bundled else "downloaded on first use, verified"
        outputs = f"{len(spec.labels)} probabilities" + (", valence, arousal" if spec.valence_arousal else "")
        spec_table.append(
            f"| `{spec.name}` | {spec.label_set.name}: {', '.join(spec.labels)} | {outputs} "
            f"| {spec.input.describe()} | {spec.runtime} | {where} | {spec.license} |"
        )
    pins = _pinning_section(weights_dir)
    parts = [*head, "", *targets, "", *pins, "", *ONNX_SECTION, "", *spec_table]
    return "\n".join(parts) + "\n\n" + "\n".join(cards)


ONNX_SECTION = [
    "\n## Deploying without emolens (ONNX)\n",
    "`emolens export MODEL --onnx --out DIR --name NAME` (or `emolens.models.export_onnx`) writes any emolens "
    "model (a registered name, a pin such as `default@v4`, a card or a run folder) as `NAME.onnx` plus its card "
    "`NAME.json`. The graph takes the normalised batch `input` (N, channels, size, size) that the card's `input` "
    "describes (emolens' own models: the face crop as grayscale at the model's size, 48x48, or 96x96 for `large`, "
    "an ensemble whose members resize it inside the graph, "
    "scaled to [0, 1], then standardised per image: minus its mean, divided by its sample standard deviation "
    "(N - 1) plus 0.001) and returns calibrated "
    "log-probabilities `log_probabilities` (N, labels): flip TTA (where the model runs it) and the per-class "
    "temperatures are inside the graph, so `softmax` (or `exp`) of the output is emolens' answer with flip TTA on "
    "every face (`analyze()` mirrors only the faces it is unsure of, which gives the same label on at least 99.5 % "
    "of val faces: [Benchmarks](benchmarks.md#what-flip-tta-buys)). The card loads "
    'in emolens as an ONNX model (`model="DIR/NAME.json"`). `tests/test_onnx.py` exports every bundled model '
    "and checks, on FER2013 val faces and the faces of a group photo, that emolens and a bare onnxruntime session "
    "give the torch model's float32 probabilities within 1e-4. The graph is written with PyTorch's "
    "TorchScript-based exporter (opset 17), which needs no extra package.",
    "",
    "### int8",
    "",
    '`emolens.load_model("default", precision="int8")` (and `fast`) runs an int8 ONNX graph of the same '
    "network, shipped in the wheel and hash-checked like any weights file; its `model_id` names the int8 file. The "
    "graph is the network alone (its logits): emolens runs the model's flip TTA (only the faces the first pass is "
    "unsure of, as for torch) and the float model's calibration around it, so `tta=` works as at any precision. "
    "It is built by `python -m tools.quantize MODEL --images N`: `export_onnx(..., logits_only=True)`, then ONNX "
    "Runtime's static quantization (QDQ; int8 weights per channel, uint8 activations, percentile ranges from N "
    "FER2013 training images, the same number per class), and the float model's temperatures are written into "
    "the graph's metadata (`temperatures`, as a safetensors file holds them; emolens applies them wherever the "
    "graph is loaded, its card too). It ships only within 0.3 points of the torch "
    "model in float32 on val consensus and CK+, both run as `analyze()` runs them (`tests/test_onnx.py` checks the "
    "shipped files). Measured by that command on 2026-12-07 (AMD EPYC family 26 model 2, AVX-512 BF16 + VNNI):",
    "",
    "| model | runs | val consensus | val original | CK+ |",
    "|---|---|---|---|---|",
    "| `default` | torch, float32 | 84.12 % | 62.47 % | 78.96 % |",
    "| `default` | int8, 4096 images (ships) | 84.27 % | 62.44 % | 78.75 % |",
    "| `fast` | torch, float32 | 78.73 % | 61.72 % | 78.10 % |",
    "| `fast` | int8, 4096 images (ships) | 78.82 % | 62.02 % | 78.10 % |",
    "",
    "The number of calibration images was chosen per model on the earlier graphs, which held flip TTA (every face "
    "mirrored) and the calibration inside and were compared with the float32 ONNX graph (`default` v5 on "
    "2026-12-06, `fast` v4 on 2026-12-07, AMD EPYC family 25):",
    "",
    "| model | graph | val consensus | val original | CK+ |",
    "|---|---|---|---|---|",
    "| `default` | float32 | 84.15 % | 62.50 % | 78.96 % |",
    "| `default` | int8, 1024 images | 84.21 % | 62.69 % | 79.72 % |",
    "| `default` | int8, 2048 images | 84.12 % | 62.50 % | 79.29 % |",
    "| `default` | int8, 2048 images, min-max ranges | 84.15 % | 62.64 % | 79.40 % |",
    "| `default` | int8, 4096 images | 84.06 % | 62.64 % | 79.07 % |",
    "| `fast` | float32 | 78.73 % | 61.72 % | 78.10 % |",
    "| `fast` | int8, 1024 images | 78.58 % | 61.86 % | 77.56 % |",
    "| `fast` | int8, 2048 images | 78.70 % | 62.02 % | 77.67 % |",
    "| `fast` | int8, 4096 images | 78.82 % | 62.02 % | 78.10 % |",
    "",
    "1024 images first, then more where CK+ moved by more than 0.3 points: for `default` v5 every setting but 4096 "
    "images moved it by 0.3-0.8 points, always upwards; for `fast` v4 1024 and 2048 images moved it by 0.4-0.5 "
    "points, downwards; so CK+ and val are not independent of that choice. The float32 rows differ from the "
    "shipped cards' numbers by a few faces because `analyze()` runs bf16 on CPUs that have it "
    '(`precision="float32"` turns that off), and the cards mirror every face.',
    "",
    "What int8 buys depends on the CPU. On the AVX-512 BF16 + VNNI host of 2026-12-05 (`python benchmarks/speed.py`, "
    "`benchmarks/results/earlier-runs/speed-cpu-b.md`) the int8 `default` classified 3.4x the faces per second of "
    "torch float32 and 1.45x those of torch bf16 at batch 64 with flip TTA (2.5x bf16 at batch 1); on that CPU model "
    "on 2026-12-07 (`benchmarks/results/earlier-runs/speed-cpu-epyc-s16-final.md`), with torch mirroring only the "
    "uncertain faces and the int8 graph every face, 1.9x float32 and 1.12x bf16 at batch 64, 3.7x bf16 at batch 1; "
    "on the newer EPYC (family 26 model 2) in the twentieth session ([Benchmarks](benchmarks.md#speed)), the int8 "
    "graph now mirroring the same uncertain faces, 2.3x float32 and 1.34x bf16 at batch 64, 2.7x bf16 at batch 1. "
    "On the AMX Xeon "
    "(`benchmarks/results/speed-cpu-amx.md`, the same command, 2026-12-06) int8 was 3.2x float32 and 1.09x torch "
    "bf16 at batch 64, and 2.5x bf16 at batch 1; in three earlier runs on that CPU model "
    "(`benchmarks/results/earlier-runs/speed-cpu-amx-s13-noisy.md`, `speed-cpu-amx-s12.md` and "
    "`speed-cpu-amx-opencv.md`) 3.5x, 2.8x and 3.7x float32 and 1.42x, 0.63x and 0.90x bf16 at batch 64 (AMX "
    "computes bf16 natively), 2.5x, 2.4x and 2.4x bf16 at batch 1. It has not "
    "been measured on a CPU without VNNI yet, where it should gain less. So no "
    'precision is right everywhere, and the default stays `"auto"` (the same graph everywhere, bf16 where native). '
    '`precision="fastest"` (`emolens analyze --precision fastest`) lets the host decide: the first load times '
    '`"auto"` and `"int8"` on 8 faces, keeps the faster, and remembers the choice in `precisions.json` in the '
    "weights cache, per CPU (model and features), core count, torch and onnxruntime versions, model identity and "
    "TTA setting (the 8 faces are noise crops, which the first pass is unsure of: both mirror all of them, the "
    "worst case), so later loads and other processes agree "
    "without measuring. The model's `precision` attribute says what "
    "runs, an int8 result's `model_id` names the int8 file, and `emolens models --verbose` lists this host's "
    "choices with the milliseconds that decided them.",
]


def _pinning_section(weights_dir: Path) -> list[str]:
    """Which release of each name answers, and how to keep an earlier one (from the registry and the cards)."""
    from emolens.models import MODELS, model_versions

    lines = [
        "## Versions and pinning\n",
        "A name such as `default` follows the newest release. Every result records which weights answered "
        "(`model_id`: weights file and the first 12 hex digits of its sha256; `detector_id` likewise) in its JSON, "
        "DataFrame and batch table. To keep an earlier release's answers after an upgrade, pass "
        '`model="default@v4"` (or the `model_id` a result recorded). The release before the current one ships '
        "in the wheel; older ones are downloaded by hash from the project's release assets, like any other "
        "weights file. What changed between releases, and by how much: the [changelog]"
        "(https://github.com/emolens/emolens/blob/main/CHANGELOG.md).\n",
        'A pin fixes the weights, not the arithmetic: `precision="auto"` (the default) runs bf16 on CPUs and GPUs '
        "that compute it natively and float32 elsewhere, so the same pinned model can answer with slightly "
        "different probabilities on two machines (`tests/test_precision.py` checks that they stay within 0.02 of "
        "float32 on every face of the labelled photos, with at most 1 label in 20 changed). For answers that agree "
        'across machines to float rounding, pass `precision="float32"`; `precision="int8"` and `"fastest"` may '
        "run the int8 graph, whose results carry its own `model_id`.\n",
        "| pin | weights (`model_id`) | where | val consensus accuracy |",
        "|---|---|---|---|",
    ]
    for pin, spec in sorted(model_versions().items()):
        card_file = weights_dir / spec.weights[0].name.replace(".safetensors", ".json")
        accuracy = "in the changelog (card not in the wheel)"
        if card_file.exists():
            consensus = _record(card_file).metrics.default(spec.tta).consensus
            accuracy = f"{consensus.accuracy:.4f}" if consensus else ""
        where = "bundled" if spec.weights[0].bundled else "downloaded by hash"
        now = " (current)" if spec.version == MODELS.get(pin.split("@", 1)[0]).version else ""
        lines.append(f"| `{pin}`{now} | `{spec.identity}` | {where} | {accuracy} |")
    return lines


_RESULTS = re.compile(
    r"(<!-- benchmarks/results/(?P<name>[\w.-]+\.md) [^>]*-->\n).*?(\n<!-- end of benchmarks/results/(?P=name) -->)",
    re.DOTALL,
)


def with_current_results(page: Path) -> Callable[[], str]:
    """A page whose marked sections are copies of benchmark result tables, refreshed from the files."""

    def render() -> str:
        results = REPO / "benchmarks" / "results"
        return _RESULTS.sub(
            lambda m: m.group(1) + (results / m.group("name")).read_text().strip() + m.group(3), page.read_text()
        )

    return render


PAGES: dict[Path, Callable[[], str]] = {
    CLI_PAGE: render_cli_reference,
    MODELS_PAGE: render_models_page,
    **{page: with_current_results(page) for page in (REPO / "docs" / "benchmarks.md", REPO / "docs" / "detectors.md")},
}


def main() -> None:
    for page, render in PAGES.items():
        page.write_text(render())
        print(f"wrote {page.relative_to(REPO)}")


if __name__ == "__main__":
    main()
