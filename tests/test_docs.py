"""The docs stay true: every Python snippet runs, and the CLI reference matches the parser."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLI_PAGE = REPO / "docs" / "cli.md"
SUBCOMMANDS = ["analyze", "video", "models", "download", "evaluate", "train", "export"]


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, match in enumerate(FENCE.finditer(page.read_text())):
            found.append((f"{page.relative_to(REPO)}#{i + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "code"), _snippets(), ids=[w for w, _ in _snippets()])
def test_python_snippet_runs(where: str, code: str) -> None:
    """Each snippet runs in a fresh interpreter from the repository root (where ../shared is)."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{where} failed:\n{proc.stderr[-2000:]}"


def render_cli_reference() -> str:
    env = {**os.environ, "COLUMNS": "100"}
    parts = [
        "# CLI reference\n",
        "Generated from the argument parser (`UPDATE_DOCS=1 pytest tests/test_docs.py` rewrites this page; "
        "a test fails when it is out of date). `python -m emolens` is the same command, for environments "
        "whose scripts folder is not on `PATH`.\n",
    ]
    for command in [None, *SUBCOMMANDS]:
        args = [sys.executable, "-m", "emolens.cli", *([command] if command else []), "--help"]
        text = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
        parts.append(f"## `emolens{' ' + command if command else ''}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def test_cli_reference_matches_the_parser() -> None:
    expected = render_cli_reference()
    if os.environ.get("UPDATE_DOCS"):
        CLI_PAGE.write_text(expected)
    assert CLI_PAGE.read_text() == expected, "docs/cli.md is stale: run UPDATE_DOCS=1 pytest tests/test_docs.py"


def test_every_public_name_is_in_the_api_reference() -> None:
    import emolens

    page = (REPO / "docs" / "api.md").read_text()
    missing = [n for n in emolens.__all__ if n != "__version__" and f"::: emolens.{n}\n" not in page]
    assert not missing, f"add to docs/api.md: {missing}"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text()
    assert [p.name for p in (REPO / "docs").glob("*.md") if p.name not in nav] == []


MODELS_PAGE = REPO / "docs" / "models.md"
# The models issue's goals: (val accuracy, faces/s at batch 64) per built-in model, and an ECE bound.
MODEL_TARGETS = {"default": (0.71, 500), "fast": (0.66, 5_000)}
GOAL_ECE = 0.03


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render_models_page() -> str:
    """The model zoo table plus every bundled model's card (from src/emolens/models/weights/)."""
    import json

    from emolens.models import MODELS

    head = [
        "# Emotion models\n",
        "emolens trains its own emotion models (the code is in `emolens.training`, see "
        "[Training and evaluation](training.md)) and ships them inside the wheel, so the default works offline. "
        "Each model has a model card written by `emolens export` from measurements on the exported weights; the "
        "cards live beside the weights in `src/emolens/models/weights/` and are reproduced here "
        "(`UPDATE_DOCS=1 pytest tests/test_docs.py` regenerates this page; a test fails when it is stale).\n",
        "Speed is faces per second at batch 64 on the reference 2-core CPU with the model's default TTA setting, "
        "from `benchmarks/results/speed-cpu.json` (`python benchmarks/speed.py`).\n",
        "| name | parameters | weights file | val accuracy | val accuracy, flip TTA | TTA by default "
        "| ECE (default setting, see each card) | faces/s, batch 64 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    speed_file = REPO / "benchmarks" / "results" / "speed-cpu.json"
    speed = json.loads(speed_file.read_text())["models"] if speed_file.exists() else []
    cards = []
    targets = [
        "\n## Targets\n",
        "The project's goals for the bundled models (val accuracy and ECE with the model's default TTA setting, "
        "the ECE cross-fitted when the model ships calibrated; "
        "speed at batch 64 on the reference CPU), checked against the numbers above:\n",
        "| model | val accuracy | faces/s, batch 64 | ECE |",
        "|---|---|---|---|",
    ]
    weights_dir = REPO / "src" / "emolens" / "models" / "weights"
    for spec in MODELS.specs():
        stem = spec.weights[0].name.removesuffix(".safetensors")
        card = json.loads((weights_dir / f"{stem}.json").read_text())
        m = card["metrics"]
        rate = [r["faces_per_s"] for r in speed if (r["model"], r["tta"], r["batch"]) == (spec.name, spec.tta, 64)]
        head.append(
            f"| `{spec.name}` | {card['parameters'] / 1e6:.2f}M "
            f"| {card['weights_bytes'] / 2**20:.1f} MiB ({card['weights_storage'].split()[0]}) "
            f"| {m['val']['accuracy']:.4f} | {m['val_tta']['accuracy']:.4f} | {'yes' if spec.tta else 'no'} "
            f"| {card['calibration']['ece']:.4f} | {f'{rate[0]:,.0f}' if rate else 'not measured'} |"
        )
        if spec.name in MODEL_TARGETS:
            goal_accuracy, goal_rate = MODEL_TARGETS[spec.name]
            default_setting = m["val_tta" if spec.tta else "val"]
            accuracy, ece = default_setting["accuracy"], card["calibration"]["ece"]
            targets.append(
                f"| `{spec.name}` | >= {goal_accuracy:.2f}: {accuracy:.4f}, {_verdict(accuracy >= goal_accuracy)} "
                f"| >= {goal_rate:,}: {f'{rate[0]:,.0f}' if rate else 'not measured'}, "
                f"{_verdict(bool(rate) and rate[0] >= goal_rate)} "
                f"| <= {GOAL_ECE:.2f}: {ece:.4f}, {_verdict(ece <= GOAL_ECE)} |"
            )
        body = (weights_dir / f"{stem}.md").read_text().replace("# Model card:", "## Model card:", 1)
        cards.append(body.replace("\n## ", "\n### ").replace("\n### Model card:", "\n## Model card:"))
    return "\n".join(head) + "\n" + "\n".join(targets) + "\n\n" + "\n".join(cards)


def test_models_page_matches_the_model_cards() -> None:
    expected = render_models_page()
    if os.environ.get("UPDATE_DOCS"):
        MODELS_PAGE.write_text(expected)
    assert MODELS_PAGE.read_text() == expected, "docs/models.md is stale: run UPDATE_DOCS=1 pytest tests/test_docs.py"
