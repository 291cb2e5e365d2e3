"""Open only regular files: a FIFO, a device or a socket named where a file is expected is refused unread.

Opening a FIFO for reading blocks until a writer appears, and ``/dev/zero`` never ends: every path
emolens reads (images, model cards, data tables, label and list files) is checked here first.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from .errors import EmolensError

__all__ = ["check_regular_file"]


def check_regular_file(path: str | os.PathLike[str], error: Callable[[str], EmolensError], what: str = "") -> int:
    """The size of ``path`` if it is a regular file (symlinks followed); otherwise raise ``error(message)``."""
    name = f"{what} {os.fspath(path)}".strip()
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what or 'file'} not found: {os.fspath(path)}") from None
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{name} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{name} is not a regular file (a FIFO, device or socket): not read")
    return int(info.st_size)
