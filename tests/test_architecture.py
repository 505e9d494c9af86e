"""The house rules, measured on the code: module and class sizes, layers and import cycles.

These are the limits ``docs/architecture.md`` promises a maintainer: no module over 600 lines of
code and no class over 350 (docstrings, comments and blank lines not counted), no import cycle
(module level or inside functions), the library never imports the web framework, and only the
store speaks SQL.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("geo_router", "api")
MAX_MODULE_CODE_LINES = 600
MAX_CLASS_CODE_LINES = 350
WEB_FRAMEWORKS = ("fastapi", "starlette")


def _modules() -> list[Path]:
    return sorted(
        p
        for package in PACKAGES
        for p in (REPO / package).rglob("*.py")
        if "migrations" not in p.parts
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = body[0] if body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def _code_lines(source: str, tree: ast.AST, first: int = 1, last: int | None = None) -> int:
    """Lines of code between ``first`` and ``last``: no blanks, comments or docstrings."""
    skip = _docstring_lines(tree)
    rows = source.splitlines()
    last = len(rows) if last is None else last
    return sum(
        1
        for number in range(first, last + 1)
        if number not in skip
        and rows[number - 1].strip()
        and not rows[number - 1].strip().startswith("#")
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module an ``import`` names, at module level or inside functions."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _parsed() -> Iterator[tuple[Path, str, ast.Module]]:
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        yield path, source, ast.parse(source)


def test_no_module_over_the_size_limit() -> None:
    too_big = {
        str(path.relative_to(REPO)): lines
        for path, source, tree in _parsed()
        if (lines := _code_lines(source, tree)) > MAX_MODULE_CODE_LINES
    }
    assert not too_big, f"modules over {MAX_MODULE_CODE_LINES} lines of code: {too_big}"


def test_no_class_over_the_size_limit() -> None:
    too_big = {}
    for path, source, tree in _parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                lines = _code_lines(source, tree, node.lineno, node.end_lineno)
                if lines > MAX_CLASS_CODE_LINES:
                    too_big[f"{path.relative_to(REPO)}:{node.name}"] = lines
    assert not too_big, f"classes over {MAX_CLASS_CODE_LINES} lines of code: {too_big}"


def _import_graph() -> dict[str, set[str]]:
    known = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for path, _source, tree in _parsed():
        name = _module_name(path)
        targets = set()
        for imported in _imports(tree, name, path.name == "__init__.py"):
            # ``from pkg import mod`` names a module; ``from mod import name`` names its module
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(f"{imported}."):
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle() -> None:
    cycle = _cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("where", "forbidden", "allowed_under"),
    [
        ("geo_router", ("api", *WEB_FRAMEWORKS), None),
        ("geo_router", ("sqlalchemy", "alembic", "geoalchemy2", "psycopg"), "geo_router/store"),
    ],
    ids=["library never imports the web layer", "only the store speaks SQL"],
)
def test_layers(where: str, forbidden: tuple[str, ...], allowed_under: str | None) -> None:
    offenders = []
    for path, _source, tree in _parsed():
        relative = path.relative_to(REPO).as_posix()
        if not relative.startswith(f"{where}/"):
            continue
        if allowed_under and relative.startswith(f"{allowed_under}/"):
            continue
        for imported in _imports(tree, _module_name(path), path.name == "__init__.py"):
            if imported.split(".")[0] in forbidden:
                offenders.append(f"{relative}: {imported}")
    assert not offenders, offenders


def test_no_asgi_layer_in_front_of_the_app() -> None:
    """The app is FastAPI's own ``__call__``: no subclass answers a route before the middleware."""
    overrides = []
    for path, _source, tree in _parsed():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {ast.unparse(base).rpartition(".")[2] for base in node.bases}
            calls = any(
                isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == "__call__"
                for item in node.body
            )
            if calls and bases & {"FastAPI", "Starlette"}:
                overrides.append(f"{path.relative_to(REPO)}:{node.name}.__call__")
    assert not overrides, f"an ASGI layer in front of the app: {overrides}"
    assert not (REPO / "api" / "fastpath.py").exists(), "a shadow route in front of the app"
