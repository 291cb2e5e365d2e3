"""The docs stay true: every Python snippet runs, and the generated pages (tools/docs_pages.py) are current."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tools.docs_pages import PAGES as GENERATED

from .conftest import shared_path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, match in enumerate(FENCE.finditer(page.read_text())):
            found.append((f"{page.relative_to(REPO)}#{i + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "code"), _snippets(), ids=[w for w, _ in _snippets()])
def test_python_snippet_runs(where: str, code: str, tmp_path: Path) -> None:
    """Each snippet runs as a script saved by a user (``python script.py``), from the repository root."""
    if "../shared" in code:
        shared_path()  # skipped without ../shared (failed with --require-shared)
    script = tmp_path / "script.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{where} failed:\n{proc.stderr[-2000:]}"


def test_a_batch_script_without_the_main_guard_is_told_what_to_do(tmp_path: Path) -> None:
    """Worker processes import the script again: without the guard, say so at once (not "a worker died")."""
    shared_path("images", "group")
    script = tmp_path / "script.py"
    script.write_text('import emolens\nemolens.batch("../shared/images/group", workers=2, progress=False)\n')
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr and "workers=1" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("page", sorted(GENERATED, key=str), ids=lambda p: p.name)
def test_generated_page_is_current(page: Path) -> None:
    assert page.read_text() == GENERATED[page](), f"{page.relative_to(REPO)} is stale: run python -m tools.docs_pages"


def test_every_public_name_is_in_the_api_reference() -> None:
    import emolens

    page = (REPO / "docs" / "api.md").read_text()
    missing = [n for n in emolens.__all__ if n != "__version__" and f"::: emolens.{n}\n" not in page]
    assert not missing, f"add to docs/api.md: {missing}"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text()
    assert [p.name for p in (REPO / "docs").glob("*.md") if p.name not in nav] == []


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_image_shown_exists() -> None:
    """Zensical's strict mode checks page links, not images: a missing figure fails here."""
    missing = [
        f"{page.relative_to(REPO)}: {target}"
        for page in PAGES
        for target in IMAGE.findall(page.read_text())
        if not target.startswith(("http://", "https://", "data:")) and not (page.parent / target).is_file()
    ]
    assert not missing
