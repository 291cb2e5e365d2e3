"""The web app of ``emolens serve`` in a real browser: headless Chromium (Debian's) driven by Selenium.

Screenshots go to ``$EMOLENS_ARTIFACTS`` (default ``build/test-artifacts``). The docs' screenshots are
made by ``python -m tools.screenshots``, from public-domain portraits only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs emolens[serve]")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (emolens[test])")

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from tools.browser import NO_BROWSER, chromium, chromium_available, open_app, write_webm, write_y4m  # noqa: E402
from tools.server import running_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("EMOLENS_ARTIFACTS", REPO / "build" / "test-artifacts"))


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
    if not chromium_available():
        if os.environ.get("EMOLENS_REQUIRE_BROWSER"):  # set by .ci/run: CI fails instead of skipping
            pytest.fail(NO_BROWSER, pytrace=False)
        pytest.skip(NO_BROWSER)
    return chromium(camera_video, profile)


@pytest.fixture
def screenshot(browser: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"webapp-{name}.png"
        browser.save_screenshot(str(path))
        return path

    return take


def _errors_in_console(browser: Any) -> list[str]:
    try:
        logs = browser.get_log("browser")
    except Exception:  # not every driver keeps the console log
        return []
    return [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]


def _assert_labels_apart(browser: Any, canvas: str, faces: int) -> None:
    """One label per face, none overlapping another, each on the canvas (read from what the page drew)."""
    labels = json.loads(browser.find_element(By.ID, canvas).get_attribute("data-labels"))
    width, height = browser.execute_script(
        f"const c = document.getElementById('{canvas}'); return [c.width, c.height];"
    )
    assert len(labels) == faces
    for i, a in enumerate(labels):
        assert a["x"] >= 0 and a["x"] + a["w"] <= width + 1 and a["y"] >= 0 and a["y"] + a["h"] <= height + 1, a
        for b in labels[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a, b)


def test_upload_shows_every_face_with_a_label(
    browser: Any, app_url: str, photos: Path, screenshot: Callable[[str], Path]
) -> None:
    open_app(browser, app_url)
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
    _assert_labels_apart(browser, "image-canvas", faces=6)
    screenshot("upload")
    assert not _errors_in_console(browser)


def test_upload_fits_a_phone_screen(
    browser: Any, app_url: str, photos: Path, screenshot: Callable[[str], Path]
) -> None:
    open_app(browser, app_url, width=390, height=844)
    browser.find_element(By.ID, "image-input").send_keys(str(photos / "group" / "multiface.jpg"))
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) == 6)
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a phone screen"
    _assert_labels_apart(browser, "image-canvas", faces=6)
    screenshot("phone")


def test_a_non_image_upload_shows_a_readable_error(
    browser: Any, app_url: str, tmp_path: Path, screenshot: Callable[[str], Path]
) -> None:
    open_app(browser, app_url)
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
    open_app(browser, app_url)
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
    open_app(browser, app_url)
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
    # Between two samples the box moves part of the way: it follows the (panning) video, not the nearest sample.
    xs = {}
    for t in (0.0, 0.5, 0.25):
        browser.execute_script(
            "const v = document.getElementById('video-player'); v.pause(); v.currentTime = arguments[0];", t
        )
        WebDriverWait(browser, 10).until(
            lambda d, t=t: (
                abs(d.execute_script("return document.getElementById('video-player').currentTime") - t) < 0.01
            )
        )
        time.sleep(0.2)  # the overlay is redrawn on "seeked"
        xs[t] = json.loads(browser.find_element(By.ID, "video-overlay").get_attribute("data-boxes"))[0]["x"]
    assert xs[0.0] != xs[0.5], xs  # the clip pans 10 px between samples
    assert min(xs[0.0], xs[0.5]) < xs[0.25] < max(xs[0.0], xs[0.5]), xs


def test_a_server_with_a_key_asks_for_it_once_per_tab(browser: Any, photos: Path, tmp_path: Path) -> None:
    from selenium.webdriver.support import expected_conditions as shown

    key = "webapp-key-0123456789abcdef"
    env_key = {"EMOLENS_API_KEY": key}
    log = tmp_path / "server.log"
    with running_server(["--model", "fast"], log=log, env=env_key) as handle:
        browser.set_window_size(1280, 1000)
        browser.get(handle.url)
        browser.execute_script("sessionStorage.clear()")
        browser.get(handle.url)
        form = WebDriverWait(browser, 30).until(shown.visibility_of_element_located((By.ID, "key-form")))
        browser.find_element(By.ID, "api-key").send_keys("not-the-key-0123456789")
        form.submit()
        WebDriverWait(browser, 30).until(lambda d: "refused" in d.find_element(By.ID, "key-problem").text)
        field = browser.find_element(By.ID, "api-key")
        field.clear()
        field.send_keys(key)
        form.submit()
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
        browser.find_element(By.ID, "image-input").send_keys(str(photos / "group" / "multiface.jpg"))
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) == 6)
        open_app(browser, handle.url)  # a reload in the same tab: the key is kept, nothing is asked
        assert not browser.find_element(By.ID, "key-form").is_displayed()
        browser.execute_script("sessionStorage.clear()")
    assert key not in log.read_text()


def test_the_api_docs_work_offline(browser: Any, app_url: str) -> None:
    """Swagger UI comes from files installed with emolens[serve], not a CDN (this machine has no internet)."""
    _errors_in_console(browser)  # forget what earlier tests logged (the log is read once)
    browser.get(f"{app_url}/docs")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")) >= 5)
    paths = {element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/analyze", "/v1/analyze/batch", "/v1/models"} <= paths
    assert browser.execute_script("return typeof SwaggerUIBundle") == "function"
    assert not _errors_in_console(browser)


def test_video_mode_waits_out_a_busy_server_and_finds_no_face_where_there_is_none(browser: Any, tmp_path: Path) -> None:
    """A server at its in-flight limit answers 503 + Retry-After: video mode waits and carries on. A clip
    without a face gets no whole-frame box (video and webcam modes send fallback=false)."""
    import json
    import socket

    import cv2
    import numpy as np

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((360, 640, 3), 128, np.uint8))
    clip = write_webm(blank, tmp_path / "blank.webm")
    log = tmp_path / "server.log"
    with running_server(["--model", "fast", "--max-in-flight", "1", "--read-timeout", "4"], log=log) as handle:
        open_app(browser, handle.url)
        host, port = handle.url.removeprefix("http://").split(":")
        holder = socket.create_connection((host, int(port)))  # holds the only slot until the read time-out
        holder.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\xff" * 10)
        try:
            browser.find_element(By.ID, "tab-video").click()
            browser.find_element(By.ID, "video-input").send_keys(str(clip))
            status = browser.find_element(By.ID, "video-status")
            WebDriverWait(browser, 30).until(lambda d: "busy" in status.text)
            WebDriverWait(browser, 90).until(lambda d: status.get_attribute("data-done") == "true")
        finally:
            holder.close()
        assert status.text.startswith("Done: 4 frames, 0 faces"), status.text
        assert int(browser.find_element(By.ID, "video-overlay").get_attribute("data-faces")) == 0
        assert browser.find_element(By.ID, "error").get_attribute("hidden")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["status"] == 503 for line in lines) and "Traceback" not in log.read_text()


def test_a_video_the_browser_cannot_decode_says_which_codecs_work(browser: Any, app_url: str, tmp_path: Path) -> None:
    """An MP4 written by OpenCV's 'mp4v' (MPEG-4 Part 2: common for users' own recordings) does not play in
    Chromium: the page names the codecs that do and the command that reads the file as it is."""
    import cv2
    import numpy as np

    clip = tmp_path / "recording.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    assert writer.isOpened()
    for i in range(10):
        writer.write(np.full((240, 320, 3), 20 * i, np.uint8))
    writer.release()
    open_app(browser, app_url)
    browser.find_element(By.ID, "tab-video").click()
    browser.find_element(By.ID, "video-input").send_keys(str(clip))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda d: not error.get_attribute("hidden"))
    assert "recording.mp4" in error.text and "H.264" in error.text and "emolens video" in error.text
