"""The codebase's own rules, checked: tests, benchmarks, examples and tools use only public emolens names."""

from __future__ import annotations

import ast
import graphlib
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


SRC = REPO / "src" / "emolens"


def _src_modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _package_of(path: Path) -> str:
    """The dotted package a source file belongs to (a package's ``__init__`` belongs to that package)."""
    parts = ["emolens", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1])


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The dotted module a ``from ... import`` statement in ``package`` reads from (relative levels resolved)."""
    module = node.module or ""
    if not node.level:
        return module
    base = package.split(".")
    return ".".join([*base[: len(base) - (node.level - 1)], *([module] if module else [])])


def _imported_modules(path: Path) -> list[str]:
    """Every module a source file imports, as absolute dotted names (relative imports resolved)."""
    package = _package_of(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.level or node.module):
            found.append(_absolute(node, package))
    return [name for name in found if name == "emolens" or name.startswith("emolens.")]


@pytest.mark.parametrize("path", _src_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_packages_use_each_other_through_their_public_names(path: Path) -> None:
    """A private module (``pkg._x``) is imported only from inside ``pkg``: packages meet at their ``__init__``."""
    package = _package_of(path)
    crossing = []
    for module in _imported_modules(path):
        parts = module.split(".")
        for i, part in enumerate(parts[1:], start=1):
            owner = ".".join(parts[:i])  # the package that holds the private module
            if part.startswith("_") and not (package == owner or package.startswith(owner + ".")):
                crossing.append(module)
                break
    assert crossing == [], f"{path.relative_to(SRC)} imports another package's private module(s): {crossing}"


def test_networks_are_joined_with_their_weights_in_one_place() -> None:
    """``build_network`` + ``load_state`` are called together in one module only (the one builder)."""
    joined = [
        path.relative_to(SRC).as_posix()
        for path in _src_modules()
        if "build_network(" in (text := path.read_text(encoding="utf-8")) and "load_state(" in text
    ]
    assert joined == ["models/_network.py"]


def test_no_source_file_is_longer_than_a_sitting() -> None:
    too_long = {
        path.relative_to(SRC).as_posix(): n
        for path in _src_modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert too_long == {}, f"split these files (over 450 lines): {too_long}"


@pytest.mark.parametrize("package", ["serve", "_batch"])
def test_functions_in_the_server_and_batch_are_short(package: str) -> None:
    long = []
    for path in sorted((SRC / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                body = node.body[1:] if ast.get_docstring(node) else node.body  # the docstring is not logic
                lines = node.end_lineno - body[0].lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == [], f"functions over 60 lines (docstring aside): {long}"


def _load_time_imports(path: Path, modules: set[str]) -> set[str]:
    """The emolens ``modules`` a source file imports when it is loaded: module-level statements only, not
    ``if TYPE_CHECKING:`` blocks nor imports inside functions (those run at call time)."""
    package = _package_of(path)
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node, package)
                for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                    found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found & modules


def _module_of(path: Path) -> str:
    parts = ["emolens", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_modules_load_without_import_cycles() -> None:
    """What a module imports at load time forms no cycle, so layers are real: a lower module reaches a
    higher one only at call time (e.g. ``AnalysisResult._repr_html_`` imports the HTML presenter when
    Jupyter asks for it; the presenters import the result types only for annotations)."""
    modules = {_module_of(path) for path in _src_modules()}
    graph = {_module_of(path): _load_time_imports(path, modules) for path in _src_modules()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle at load time: {' -> '.join(error.args[1])}")
    # the presenters depend on the result types, never the reverse at load time
    presenters = {module for module in graph if module.rsplit(".", 1)[-1] in ("_display", "_rows")}
    assert len(presenters) == 2
    assert not presenters & graph["emolens.types"]
