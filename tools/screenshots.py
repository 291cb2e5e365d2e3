"""Screenshots for the docs: the web app of ``emolens serve`` and a result shown in Jupyter.

``python -m tools.screenshots`` writes ``docs/images/``:

- ``webapp-upload.png``, ``webapp-phone.png``, ``webapp-webcam.png``, ``webapp-video.png``: a real
  ``emolens serve`` process in headless Chromium, fed the public-domain demo photo as an upload, as
  the fake camera and as a short WebM clip;
- ``notebook.png``: a notebook cell run by a real Jupyter kernel (nbclient), its HTML output shown
  as Jupyter shows it.

Needs Debian's ``chromium`` + ``chromium-driver``, and ``emolens[serve,docs,test]``. Nothing from
../shared appears: the photo is made by ``tools/demo_photo.py`` from public-domain portraits.
"""

from __future__ import annotations

import base64
import html
import tempfile
import time
from pathlib import Path

from .browser import chromium, open_app, write_webm, write_y4m
from .demo_photo import demo_photo
from .server import running_server

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"


def _wait_for_cards(driver: object, count: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces .face-card")) == count)


def web_app(scratch: Path, photo: Path) -> list[str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = write_webm(photo, scratch / "demo.webm")
    driver = chromium(write_y4m(photo, scratch / "demo.y4m"), scratch / "profile")
    try:
        with running_server(["--model", "default", "--threads", "2"], log=scratch / "server.log") as server:
            open_app(driver, server.url)
            driver.find_element(By.ID, "image-input").send_keys(str(photo))
            _wait_for_cards(driver, 2)
            driver.save_screenshot(str(IMAGES / "webapp-upload.png"))
            open_app(driver, server.url, width=390, height=844)
            driver.find_element(By.ID, "image-input").send_keys(str(photo))
            _wait_for_cards(driver, 2)
            driver.save_screenshot(str(IMAGES / "webapp-phone.png"))
            open_app(driver, server.url, height=1250)
            driver.find_element(By.ID, "tab-webcam").click()
            driver.find_element(By.ID, "webcam-start").click()
            WebDriverWait(driver, 30).until(
                lambda d: int(d.find_element(By.ID, "webcam-overlay").get_attribute("data-faces") or 0) >= 2
            )
            time.sleep(4)  # a few seconds of timeline
            driver.save_screenshot(str(IMAGES / "webapp-webcam.png"))
            open_app(driver, server.url, height=1250)
            driver.find_element(By.ID, "tab-video").click()
            driver.find_element(By.ID, "video-input").send_keys(str(clip))
            status = driver.find_element(By.ID, "video-status")
            WebDriverWait(driver, 90).until(lambda d: status.get_attribute("data-done") == "true")
            driver.save_screenshot(str(IMAGES / "webapp-video.png"))
    finally:
        driver.quit()
    return ["webapp-upload.png", "webapp-phone.png", "webapp-webcam.png", "webapp-video.png"]


_NOTEBOOK_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
html {{ overflow: hidden; }}
body {{ margin: 0; padding: 18px 22px; background: #fff; font: 14px/1.4 sans-serif; color: #1d2330; width: 860px; }}
.row {{ display: flex; gap: 10px; margin-bottom: 10px; }}
.prompt {{ width: 70px; flex: none; text-align: right; font: 13px monospace; padding-top: 7px; }}
.in .prompt {{ color: #303f9f; }} .out .prompt {{ color: #d84315; }}
pre {{ margin: 0; flex: 1; background: #f5f5f5; border: 1px solid #e0e0e0; border-radius: 2px; padding: 6px 8px;
       font: 13px/1.4 monospace; white-space: pre-wrap; }}
.output {{ flex: 1; overflow: hidden; }}
</style></head><body>
<div class="row in"><div class="prompt">In&nbsp;[1]:</div><pre>{code}</pre></div>
<div class="row out"><div class="prompt">Out[1]:</div><div class="output">{output}</div></div>
</body></html>"""


def notebook(scratch: Path, photo: Path) -> list[str]:
    import nbclient
    import nbformat

    code = f"import emolens\nresult = emolens.analyze({photo.name!r})\nresult"
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(code)]
    nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(scratch)}}
    ).execute()
    output = book.cells[0].outputs[0]["data"]["text/html"]
    page = scratch / "notebook.html"
    page.write_text(_NOTEBOOK_PAGE.format(code=html.escape(code), output=output), encoding="utf-8")
    driver = chromium(None, scratch / "profile-notebook", width=904, height=600)
    try:
        driver.get(page.as_uri())
        width, height = driver.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight];"
        )
        shot = driver.execute_cdp_cmd(  # the whole page, not only the window
            "Page.captureScreenshot",
            {"captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
        )
        (IMAGES / "notebook.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.quit()
    return ["notebook.png"]


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        photo = scratch / "demo.jpg"
        demo_photo(photo)
        print("wrote", ", ".join(notebook(scratch, photo)))
        print("wrote", ", ".join(web_app(scratch, photo)))


if __name__ == "__main__":
    main()
