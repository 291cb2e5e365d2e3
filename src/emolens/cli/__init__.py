"""The ``emolens`` command line: one module per command, each with ``register(sub)`` and its ``run``.

Every failure the user can fix prints one ``emolens: error: ...`` line and exits non-zero;
no traceback reaches the terminal for bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from ..errors import EmolensError, InternalError
from . import analyze, batch, dataset, download, evaluate, export, models, recipe, serve, train, video
from ._common import err, error_text

__all__ = ["build_parser", "main"]

#: Busy-wait iterations of torch's idle OpenMP threads before they sleep, for this command's process and its
#: workers. libgomp's default (300,000) keeps both cores spinning while the detector runs between two forward
#: passes; 10,000 took 13-26 % off ``analyze`` of a 640x480 photo on 2 cores (benchmarks/threads.py). Set only
#: when the user exported neither it nor ``OMP_WAIT_POLICY``; the library itself never sets it (libgomp reads it
#: once, when torch loads, so it only takes effect when ``main()`` runs before torch is imported).
OPENMP_SPIN_COUNT = "10000"

#: The commands, in the order ``emolens --help`` lists them.
COMMANDS = (analyze, video, models, download, evaluate, batch, serve, train, export, recipe, dataset)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emolens", description="Facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emolens`` command; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in model cards
    # libgomp lets GOMP_SPINCOUNT override OMP_WAIT_POLICY: a user who chose either keeps their choice.
    if "torch" not in sys.modules and not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ):
        os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT  # inherited by this command's workers
    # OpenCV's and FFmpeg's own log lines about a corrupt file ("[ WARN:0@1.0] global grfmt_tiff.cpp ...",
    # "moov atom not found") would precede emolens' one-line error; read when cv2 loads, a user's setting wins.
    if "cv2" not in sys.modules:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    with warnings.catch_warnings():  # one-line warnings, for this command only
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            code: int = args.func(args)
        except InternalError as exc:  # not the input's fault: EX_SOFTWARE, like an unexpected error
            err(f"{exc} (not a problem with your input; if it persists, please report it)")
            return 70
        except EmolensError as exc:
            err(error_text(exc, args))
            return 2
        except KeyboardInterrupt:
            err("interrupted")
            return 130
        except BrokenPipeError:  # e.g. `emolens evaluate ... | head`: stop quietly, like other tools
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as exc:  # a file the command writes (CSV, plot, folder) could not be written
            err(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
            return 2
        except Exception as exc:  # never a traceback for a user; EMOLENS_DEBUG=1 shows it
            if os.environ.get("EMOLENS_DEBUG"):
                raise
            hint = "a bug in emolens, please report it; EMOLENS_DEBUG=1 shows where"
            err(f"unexpected {type(exc).__name__}: {exc} ({hint})")
            return 70
    return code


def _show_warning(message: Warning | str, category: type[Warning], *_args: object, **_kwargs: object) -> None:
    print(f"{message}", file=sys.stderr)
