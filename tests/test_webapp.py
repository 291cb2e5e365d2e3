"""The web app of ``emolens serve`` in a real browser: headless Chromium (Debian's) driven by Selenium.

Screenshots go to ``$EMOLENS_ARTIFACTS`` (default ``build/test-artifacts``). The docs' screenshots are
taken by ``test_docs_screenshots`` with ``UPDATE_DOCS=1``, from public-domain portraits only
(``tools/demo_photo.py``): nothing from ../shared is committed, not even as a picture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs emolens[serve]")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (emolens[test])")

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from .serve_helpers import running_server  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("EMOLENS_ARTIFACTS", REPO / "build" / "test-artifacts"))
DOCS_IMAGES = REPO / "docs" / "images"

NO_BROWSER = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)"


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
    assert writer.isOpened(), "OpenCV cannot write VP8 WebM here"
    for index in range(int(seconds * fps)):
        frame = np.full((height, width, 3), 40, np.uint8)
        left = min(width - small.shape[1], index * 2)
        top = (height - small.shape[0]) // 2
        frame[top : top + small.shape[0], left : left + small.shape[1]] = small
        writer.write(frame)
    writer.release()
    return target


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("webapp") / "server.log"
    with running_server(["--model", "fast", "--threads", "2"], log=log) as handle:
        yield handle.url
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
def camera_video(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_y4m(photos / "dlib-faces" / "Tom_Cruise_avp_2014_4.jpg", tmp_path_factory.mktemp("cam") / "cam.y4m")


@pytest.fixture(scope="module")
def browser(camera_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = _chromium(camera_video, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def _chromium(camera_video: Path, profile: Path) -> Any:
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("EMOLENS_REQUIRE_BROWSER"):  # set by .ci/run: CI fails instead of skipping
            pytest.fail(NO_BROWSER, pytrace=False)
        pytest.skip(NO_BROWSER)
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
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_video}",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def screenshot(browser: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"webapp-{name}.png"
        browser.save_screenshot(str(path))
        return path

    return take


def _open(browser: Any, url: str, width: int = 1280, height: int = 1000) -> None:
    browser.set_window_size(width, height)
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def _errors_in_console(browser: Any) -> list[str]:
    try:
        logs = browser.get_log("browser")
    except Exception:  # not every driver keeps the console log
        return []
    return [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]


def test_upload_shows_every_face_with_a_label(
    browser: Any, app_url: str, photos: Path, screenshot: Callable[[str], Path]
) -> None:
    _open(browser, app_url)
    browser.find_element(By.ID, "image-input").send_keys(str(photos / "group" / "multiface.jpg"))
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) > 0)
    cards = browser.find_elements(By.CSS_SELECTOR, "#faces .face-card")
    assert len(cards) == 6
    labels = [card.get_attribute("data-label") for card in cards]
    assert all(label in {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"} for label in labels)
    for card in cards:  # each card names its emotion and shows one bar per label
        assert card.find_element(By.CSS_SELECTOR, ".label").text.strip()
        assert len(card.find_elements(By.CSS_SELECTOR, ".bar")) == 7
    assert "6 faces" in browser.find_element(By.ID, "image-summary").text
    # The annotated image was drawn: the canvas has the photo's aspect ratio and is not blank.
    width, height, distinct = browser.execute_script(
        "const c = document.getElementById('image-canvas');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const seen = new Set(); for (let i = 0; i < d.length; i += 997) seen.add(d[i]);"
        "return [c.width, c.height, seen.size];"
    )
    assert abs(width / height - 1200 / 630) < 0.01 and distinct > 20
    assert browser.find_element(By.ID, "error").get_attribute("hidden")
    screenshot("upload")
    assert not _errors_in_console(browser)


def test_upload_fits_a_phone_screen(
    browser: Any, app_url: str, photos: Path, screenshot: Callable[[str], Path]
) -> None:
    _open(browser, app_url, width=390, height=844)
    browser.find_element(By.ID, "image-input").send_keys(str(photos / "group" / "multiface.jpg"))
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) == 6)
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a phone screen"
    screenshot("phone")


def test_a_non_image_upload_shows_a_readable_error(
    browser: Any, app_url: str, tmp_path: Path, screenshot: Callable[[str], Path]
) -> None:
    _open(browser, app_url)
    notes = tmp_path / "notes.txt"
    notes.write_text("these are not pixels")
    browser.find_element(By.ID, "image-input").send_keys(str(notes))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda d: not error.get_attribute("hidden"))
    text = error.text
    assert "not an image" in text and "JPEG" in text
    assert "Traceback" not in browser.page_source
    assert browser.find_element(By.ID, "image-result").get_attribute("hidden")
    screenshot("error")


def test_webcam_mode_draws_face_boxes_over_the_live_video(
    browser: Any, app_url: str, screenshot: Callable[[str], Path]
) -> None:
    _open(browser, app_url)
    browser.find_element(By.ID, "tab-webcam").click()
    browser.find_element(By.ID, "webcam-start").click()
    try:
        WebDriverWait(browser, 15).until(
            lambda d: int(d.find_element(By.ID, "webcam-overlay").get_attribute("data-faces") or 0) >= 1
        )
    except TimeoutException:
        pytest.fail(f"no face box within 15 s; page error: {browser.find_element(By.ID, 'error').text!r}")
    # Let the timeline gather a few points, then check it was drawn.
    WebDriverWait(browser, 20).until(
        lambda d: (
            d.execute_script(
                "const c = document.getElementById('webcam-timeline');"
                "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "let ink = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++; return ink;"
            )
            > 500
        )
    )
    screenshot("webcam")
    browser.find_element(By.ID, "webcam-stop").click()


def test_video_mode_analyses_frames_and_plots_a_timeline(
    browser: Any, app_url: str, photos: Path, tmp_path: Path, screenshot: Callable[[str], Path]
) -> None:
    clip = write_webm(photos / "dlib-faces" / "Tom_Cruise_avp_2014_4.jpg", tmp_path / "clip.webm")
    _open(browser, app_url)
    browser.find_element(By.ID, "tab-video").click()
    browser.find_element(By.ID, "video-input").send_keys(str(clip))
    status = browser.find_element(By.ID, "video-status")
    WebDriverWait(browser, 90).until(lambda d: status.get_attribute("data-done") == "true")
    assert "frames" in status.text
    frames = int(status.text.split("Done: ")[1].split(" frames")[0])
    faces = int(status.text.split("frames, ")[1].split(" faces")[0])
    assert frames == 4  # 2 s sampled every 0.5 s
    assert faces >= frames
    assert int(browser.find_element(By.ID, "video-overlay").get_attribute("data-faces")) >= 1
    screenshot("video")


@pytest.mark.skipif(not os.environ.get("UPDATE_DOCS"), reason="writes docs/images: run with UPDATE_DOCS=1")
def test_docs_screenshots(app_url: str, tmp_path: Path) -> None:
    """The screenshots of docs/serve.md, from public-domain portraits (tools/demo_photo.py)."""
    pytest.importorskip("skimage", reason="the demo photo needs scikit-image (emolens[docs])")
    from tools.demo_photo import demo_photo

    photo = tmp_path / "demo.jpg"
    demo_photo(photo)
    clip = write_webm(photo, tmp_path / "demo.webm")
    driver = _chromium(write_y4m(photo, tmp_path / "demo.y4m"), tmp_path / "profile")
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    try:
        _open(driver, app_url)
        driver.find_element(By.ID, "image-input").send_keys(str(photo))
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) == 2)
        driver.save_screenshot(str(DOCS_IMAGES / "webapp-upload.png"))
        _open(driver, app_url, width=390, height=844)
        driver.find_element(By.ID, "image-input").send_keys(str(photo))
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) == 2)
        driver.save_screenshot(str(DOCS_IMAGES / "webapp-phone.png"))
        _open(driver, app_url, height=1250)
        driver.find_element(By.ID, "tab-webcam").click()
        driver.find_element(By.ID, "webcam-start").click()
        WebDriverWait(driver, 30).until(
            lambda d: int(d.find_element(By.ID, "webcam-overlay").get_attribute("data-faces") or 0) >= 2
        )
        time.sleep(4)  # a few seconds of timeline
        driver.save_screenshot(str(DOCS_IMAGES / "webapp-webcam.png"))
        _open(driver, app_url, height=1250)
        driver.find_element(By.ID, "tab-video").click()
        driver.find_element(By.ID, "video-input").send_keys(str(clip))
        status = driver.find_element(By.ID, "video-status")
        WebDriverWait(driver, 90).until(lambda d: status.get_attribute("data-done") == "true")
        driver.save_screenshot(str(DOCS_IMAGES / "webapp-video.png"))
    finally:
        driver.quit()
