"""Helpers every command shares: error lines, input expansion, output checks, common options."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._argtypes import json_object, positive_number
from .._header import IMAGE_SUFFIXES
from .._limits import DEFAULT_MAX_PIXELS, RAISE_MAX_PIXELS
from ..errors import InvalidOptionError
from ..models import PRECISIONS


def err(message: str) -> None:
    print(f"emolens: error: {message}", file=sys.stderr)


def error_text(exc: BaseException, args: argparse.Namespace) -> str:
    """An error's message for this command line: advice to raise ``max_pixels`` names ``--max-megapixels``
    where the command has it."""
    text = str(exc)
    if hasattr(args, "max_megapixels"):
        text = text.replace(RAISE_MAX_PIXELS, "pass a larger --max-megapixels if you trust the input")
    return text


def max_pixels(args: argparse.Namespace) -> int:
    """``--max-megapixels`` in pixels."""
    return max(1, int(args.max_megapixels * 1e6))


def expand_paths(paths: Sequence[str]) -> Iterator[tuple[str, Path | None]]:
    """Each argument as files: a file, the images of a folder (recursively) or a glob's matches.

    Yields (argument, path) pairs; path is None for an argument that matched nothing.
    """
    for arg in paths:
        path = Path(arg)
        try:
            folder, exists = path.is_dir(), path.exists()
        except OSError:  # a name too long for the file system: the analysis of that one file says so
            folder, exists = False, True
        if not arg:  # Path("") is the current folder: an empty argument names nothing
            files = []
        elif folder:
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif any(ch in arg for ch in "*?[") and not exists:
            files = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
        else:
            files = [path]
        if not files:
            yield arg, None
        for file in files:
            yield arg, file


def detector_arg(value: str) -> str | None:
    return None if value.lower() == "none" else value


def output_file(option: str, value: str | None) -> None:
    """An output file's folder must exist and be writable, and the path must not be a folder (checked up front)."""
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise InvalidOptionError(f"{option} {value}: is a folder; name a file", option=option)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidOptionError(f"{option} {value}: folder {folder} does not exist", option=option)
    if not os.access(folder, os.W_OK):
        raise InvalidOptionError(f"{option} {value}: folder {folder} is not writable", option=option)


def output_folder(value: str | None) -> Path | None:
    """An output folder, created and checked before any work starts (EmolensError otherwise)."""
    if value is None:
        return None
    folder = Path(value)
    if folder.exists() and not folder.is_dir():
        raise InvalidOptionError(
            f"--annotate {value}: exists and is not a folder; name a folder to write images into", option="--annotate"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".emolens-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidOptionError(
            f"--annotate {value}: cannot write there ({exc.strerror or exc})", option="--annotate"
        ) from None
    return folder


def error_record(source: str, exc: BaseException, message: str | None = None) -> str:
    """The --json line for an input that failed: same top-level shape as a result, with an error object."""
    return json.dumps(
        {"source": source, "error": {"type": type(exc).__name__, "message": message or str(exc)}},
        ensure_ascii=False,
    )


def add_pipeline_options(p: argparse.ArgumentParser, *, detector_options: bool = True, precision: bool = True) -> None:
    """``--detector`` (with ``--detector-options``), ``--model``, ``--device``, ``--precision`` and
    ``--max-megapixels``: how a command analyses images."""
    p.add_argument("--detector", default="auto", help="detector name, 'auto' (default) or 'none' for face crops")
    if detector_options:
        add_detector_options(p)
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--device", default="cpu", help="torch device for the emotion model")
    if precision:
        p.add_argument(
            "--precision",
            choices=PRECISIONS,
            default="auto",
            help="auto: bf16 where the CPU has it natively; float32: the same answers on every host; int8: the "
            "int8 graph of default and fast (on onnxruntime); fastest: auto or int8, whichever a short "
            "measurement finds faster here (remembered per host; see `emolens models --verbose`)",
        )
    p.add_argument(
        "--max-megapixels",
        type=positive_number,
        default=DEFAULT_MAX_PIXELS / 1e6,
        metavar="N",
        help=f"largest image or video frame analysed (default {DEFAULT_MAX_PIXELS / 1e6:g}); larger ones are "
        "refused from their header, before decoding",
    )


def add_detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector-options",
        type=json_object,
        default={},
        metavar="JSON",
        help="detector settings, e.g. '{\"max_side\": 320}' to detect on a downscaled copy (faster)",
    )


MODEL_HELP = "emotion model: a registered name, or the .json card of a model written by `emolens export`"


STRICT_DATA_HELP = "stop at the first unreadable image or malformed CSV row (default: skip and count them)"
