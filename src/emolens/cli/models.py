"""``emolens models``: list detectors and emotion models."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def register(sub: Any) -> None:
    """Add ``emolens models`` to the subcommands."""
    p = sub.add_parser("models", help="list detectors and emotion models, and whether their weights are present")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also this host's CPU, the precision `--precision fastest` measured and chose for each model, and what "
        "runs a detector that has engines (YuNet: onnxruntime or OpenCV)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detectors import DETECTORS
    from ..models import MODELS, PREVIOUS_MODELS, model_versions
    from ..weights import cache_dir, is_available

    def status(weights: Sequence[object]) -> str:
        from .._registry import WeightsFile

        files = [w for w in weights if isinstance(w, WeightsFile)]
        if not files:
            return "no weights needed"
        if all(w.bundled for w in files):
            return "bundled" if all(is_available(w) for w in files) else "bundled file missing"
        return "cached" if all(is_available(w) for w in files) else "not downloaded"

    versions = model_versions()
    choices: dict[str, dict[str, Any]] = {}
    if args.verbose:
        from ..models import cpu_info, fastest_choices

        choices = fastest_choices()
        print(f"Host: {cpu_info().describe()}")
    print("Detectors (also: auto, none)")
    for d in DETECTORS.specs():
        extra = f" [extra: {d.extra}]" if d.extra else ""
        state = "package downloads" if d.package_weights else status(d.weights)
        print(f"  {d.name:<22} {state:<18} {d.description}{extra}")
        if args.verbose and "engine" in d.options:
            print(f"  {'':<22} {'':<18} engine here: {_engine(d.name)}")
    print("Emotion models")
    for m in MODELS.specs():
        print(f"  {m.name:<22} {status(m.weights):<18} {m.description}")
        outputs = f"{m.label_set.name} labels ({', '.join(m.labels)})" + (
            ", valence, arousal" if m.valence_arousal else ""
        )
        print(f"  {'':<22} {'':<18} outputs: {outputs}; input: {m.input.describe()}; runtime: {m.runtime}")
        if m.license:
            print(f"  {'':<22} {'':<18} license: {m.license}")
        if m.version:
            pins = [pin for pin in versions if pin.split("@", 1)[0] == m.name]
            print(f"  {'':<22} {'':<18} identity: {m.identity}; pin with: {', '.join(pins)}")
        if m.int8:
            print(f"  {'':<22} {'':<18} precisions: auto, float32, int8 ({m.int8[0].name}), fastest")
        for listed, choice in choices.items():  # the model's default TTA setting, then any other measured
            if listed == m.identity or listed.startswith(f"{m.identity} ("):
                setting = listed.removeprefix(m.identity)
                print(f"  {'':<22} {'':<18} fastest here{setting}: {_describe_choice(choice)}")
    if PREVIOUS_MODELS:
        print("Earlier versions (model=NAME@VERSION gives their answers after an upgrade)")
        for spec in PREVIOUS_MODELS:
            print(f"  {spec.name:<22} {status(spec.weights):<18} {spec.identity}")
    print(f"Weights cache: {cache_dir()}")
    return 0


def _engine(detector: str) -> str:
    """What runs ``detector`` with its default options on this host (its ``engine`` attribute)."""
    from ..detectors import create_detector
    from ..errors import EmolensError

    try:
        return str(getattr(create_detector(detector), "engine", "?"))
    except EmolensError as exc:
        return f"unavailable ({exc})"


def _describe_choice(choice: dict[str, Any]) -> str:
    """``int8 (ms for 8 faces: auto 4.10, int8 2.95; measured 2026-12-05 14:03:00)``."""
    timings = choice.get("ms_per_8_faces", {})
    measured = ", ".join(f"{name} {ms:.2f}" for name, ms in timings.items() if isinstance(ms, (int, float)))
    return f"{choice['precision']} (ms for 8 faces: {measured}; measured {choice.get('measured', '?')})"
