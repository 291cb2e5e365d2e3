"""The codebase's own rules, checked: tests, benchmarks, examples and tools use only public emolens names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import emolens

REPO = Path(__file__).resolve().parents[1]
# a dotted path from emolens through a module whose name starts with "_" (a builder string "mod:attr" is data)
PRIVATE = re.compile(r"\bemolens(?:\.[a-z]\w*)*\._[a-z]\w*(?![\w:])")


def _users() -> list[Path]:
    return sorted(p for folder in ("tests", "benchmarks", "examples", "tools") for p in (REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _users(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_emolens_module_is_used(path: Path) -> None:
    found = [m.group(0) for m in PRIVATE.finditer(path.read_text(encoding="utf-8"))]
    assert found == [], f"{path.name} reaches into private modules: {found}; export what it needs instead"


def test_every_public_name_resolves_and_is_listed() -> None:
    for name in emolens.__all__:
        assert getattr(emolens, name) is not None, name
    assert set(emolens.__all__) <= set(dir(emolens))
    assert emolens.__all__ == sorted(emolens.__all__, key=lambda n: (not n[:1].isupper(), n))
