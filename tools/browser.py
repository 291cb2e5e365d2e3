"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, and the media
it is fed: a fake camera (.y4m) and a short WebM clip made from a photo.

Used by ``tests/test_webapp.py`` and by ``python -m tools.screenshots``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "NO_BROWSER",
    "chromium",
    "chromium_available",
    "open_app",
    "write_webm",
    "write_y4m",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NO_BROWSER = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)"


def chromium_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def chromium(camera_video: Path | None, profile: Path, *, width: int = 1280, height: int = 1000) -> Any:
    """A headless Chromium whose camera plays ``camera_video`` (media permission granted), if given."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    if camera_video is not None:
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument(f"--use-file-for-fake-video-capture={camera_video}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def open_app(browser: Any, url: str, width: int = 1280, height: int = 1000) -> None:
    """Load the web app at ``url`` in a window of the given size and wait until its script is ready."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(width, height)
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def write_y4m(photo: Path, target: Path, *, frames: int = 20, size: tuple[int, int] = (640, 480)) -> Path:
    """A raw YUV4MPEG2 video of ``photo`` (letterboxed to ``size``) for Chromium's fake camera."""
    width, height = size
    image = cv2.imread(str(photo))
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (int(image.shape[1] * scale) // 2 * 2, int(image.shape[0] * scale) // 2 * 2))
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    planes = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes()
    with target.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    return target


def write_webm(photo: Path, target: Path, *, seconds: float = 2.0, fps: int = 10) -> Path:
    """A short VP8 WebM (which Chromium plays) of ``photo`` drifting sideways."""
    image = cv2.imread(str(photo))
    height, width = 360, 640
    scale = min(width / image.shape[1], height / image.shape[0]) * 0.9
    small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"VP80"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write VP8 WebM here")
    for index in range(int(seconds * fps)):
        frame = np.full((height, width, 3), 40, np.uint8)
        left = min(width - small.shape[1], index * 2)
        top = (height - small.shape[0]) // 2
        frame[top : top + small.shape[0], left : left + small.shape[1]] = small
        writer.write(frame)
    writer.release()
    return target
