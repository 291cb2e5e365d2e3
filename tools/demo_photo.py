"""A demo photo for the docs made only of public-domain portraits that ship inside Python packages.

``../shared`` may not be copied into the repository, not even as a screenshot, so every picture in
the docs that shows faces is made from these: Eileen Collins (NASA, public domain; scikit-image's
``astronaut``) and Grace Hopper (U.S. Navy, public domain; matplotlib's sample data).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def portraits() -> list[np.ndarray]:
    """The two portraits as BGR arrays, scaled to the same height."""
    import matplotlib
    import skimage.data

    astronaut = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    height = 480
    return [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height)) for p in (astronaut, hopper)]


def demo_photo(path: Path | None = None) -> np.ndarray:
    """Both portraits side by side with a margin (BGR); written to ``path`` when given."""
    tiles = portraits()
    gap = 24
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1)
    canvas = np.full((tiles[0].shape[0] + 2 * gap, width, 3), 236, np.uint8)
    x = gap
    for tile in tiles:
        canvas[gap : gap + tile.shape[0], x : x + tile.shape[1]] = tile
        x += tile.shape[1] + gap
    if path is not None:
        cv2.imwrite(str(path), canvas)
    return canvas
