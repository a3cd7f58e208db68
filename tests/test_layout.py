"""The shape of the code: one-way layers, no import circles, no private names across modules.

The packages are read with ``ast`` (nothing is imported, so no import side effect hides or
causes a problem). Every import counts, also those inside functions (a lazy import still
ties two modules together); only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("cli", "xmr_cli", "retrieval", "index")
# Layers, top to bottom: a module may import its own layer and the ones below it.
LAYERS = {"cli": 0, "xmr_cli": 1, "retrieval": 2, "index": 3}
# Rooms of retrieval that make up the product: they never import the training room.
TRAINING = "retrieval.training"


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, e.g. "retrieval.library"
    target: str  # imported module, e.g. "retrieval.search.hits"
    names: tuple[str, ...]  # names taken from it ("from target import a, b"), () for "import target"
    line: int


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages (``pkg`` for ``pkg/__init__.py``)."""
    found = {"cli": REPO / "cli.py"}
    for root in ROOTS[1:]:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_in(child))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def edges_of(name: str) -> list[Edge]:
    """The imports of module ``name`` that point into our packages, resolved to modules."""
    out = []
    for node in _imports(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            out += [Edge(name, a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] in ROOTS]
            continue
        base = node.module or ""
        if node.level:  # relative import: resolve against this module's package
            package = _package_of(name).split(".")
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        if base.split(".")[0] not in ROOTS:
            continue
        plain = [a.name for a in node.names if f"{base}.{a.name}" not in MODULES]
        out += [Edge(name, f"{base}.{a.name}", (), node.lineno) for a in node.names if f"{base}.{a.name}" in MODULES]
        if plain:
            out.append(Edge(name, base, tuple(plain), node.lineno))
    return out


EDGES = [edge for name in MODULES for edge in edges_of(name)]


def test_every_import_of_ours_names_a_module_that_exists() -> None:
    missing = [f"{e.source}:{e.line} imports {e.target}" for e in EDGES if e.target not in MODULES]
    assert missing == []


def test_layers_are_one_way() -> None:
    # cli.py -> xmr_cli -> retrieval -> index; nothing imports upward.
    upward = [
        f"{e.source}:{e.line} imports {e.target}"
        for e in EDGES
        if LAYERS[e.target.split(".")[0]] < LAYERS[e.source.split(".")[0]]
    ]
    assert upward == []


def test_product_rooms_never_import_training() -> None:
    product = [e for e in EDGES if e.source.startswith("retrieval") and not e.source.startswith(TRAINING)]
    assert [f"{e.source}:{e.line} imports {e.target}" for e in product if e.target.startswith(TRAINING)] == []


def test_no_module_imports_its_own_package_root() -> None:
    # `from retrieval import X` inside retrieval runs retrieval/__init__.py, which imports the
    # whole public API back: a circle. Submodules import what they need from its module.
    inside = [
        f"{e.source}:{e.line} imports {e.target}"
        for e in EDGES
        if e.target in ROOTS and e.source.startswith(e.target + ".")
    ]
    assert inside == []


def _cycles() -> list[list[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for e in EDGES:
        if e.target in MODULES and e.target != e.source:
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_no_import_circles() -> None:
    assert _cycles() == []


def _module_aliases(tree: ast.AST, name: str) -> dict[str, str]:
    """Local names bound to one of our modules: ``import a.b as m``, ``from a import b``."""
    aliases = {}
    for e_node in _imports(tree):
        if isinstance(e_node, ast.Import):
            for a in e_node.names:
                if a.name in MODULES and a.asname:
                    aliases[a.asname] = a.name
        elif e_node.module and e_node.module.split(".")[0] in ROOTS:
            for a in e_node.names:
                if f"{e_node.module}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{e_node.module}.{a.name}"
    return aliases


def test_no_private_name_crosses_a_module() -> None:
    crossings = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for e in edges_of(name):
            crossings += [f"{name}:{e.line} imports {e.target}.{n}" for n in e.names if n.startswith("_")]
        aliases = _module_aliases(tree, name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                if node.attr.startswith("_") and not node.attr.startswith("__"):
                    crossings.append(f"{name}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    assert crossings == []


@pytest.mark.parametrize("root", ["retrieval", "index", "xmr_cli"])
def test_rooms_are_packages_and_tests_mirror_them(root: str) -> None:
    rooms = sorted(p.parent.relative_to(REPO) for p in (REPO / root).rglob("__init__.py"))
    untested = [str(room) for room in rooms if not (REPO / "tests" / room).is_dir()]
    assert untested == []


def test_tests_import_no_other_test_module_and_no_benchmark() -> None:
    bad = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for target in names:
                last = target.rsplit(".", 1)[-1]
                if target.startswith("benchmarks") or (
                    target.startswith("tests.") and (last.startswith("test_") or last == "conftest")
                ):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {target}")
    assert bad == []
