"""The import rule of docs/architecture.md, enforced: a layer imports only layers below it, and
no two modules import each other, directly or around a loop (imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "refundlens"

# Lowest first. A top-level package or module of refundlens may import its own layer's and the
# layers below; never a layer above.
LAYERS: list[set[str]] = [
    {"errors", "config", "threads", "calibration", "metrics", "logs", "storable"},
    {"media", "forensics", "store"},
    {"detectors", "reuse", "synth"},
    {"fusion"},
    {"pipeline"},
    {"cases", "rendering", "runtime"},
    {"report"},
    {"workers"},
    {"service"},
    {"cli", "__main__", "demo"},
]
# Imports that cross the rule, each to be removed; the test fails when one is added, and when
# one listed is gone (the list only shrinks). Empty now.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _imports(path: Path) -> set[str]:
    """The refundlens modules ``path`` imports (absolute names without the package prefix)."""
    name = _module_name(path)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
                for alias in node.names:
                    found.add(
                        ".".join([*target, alias.name]) if not node.module else ".".join(target)
                    )
            elif node.module and node.module.startswith("refundlens."):
                found.add(node.module.removeprefix("refundlens."))
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("refundlens.")
                for a in node.names
                if a.name.startswith("refundlens.")
            }
    return {f for f in found if f}


def _layer(name: str) -> int:
    top = name.split(".")[0]
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{top} is in no layer of docs/architecture.md")


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(path):
            # "from .x import y": y may be a module or a name; keep the longest module.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def test_every_layer_imports_only_its_own_and_lower_layers() -> None:
    uphill = {
        (name, target.split(".")[0])
        for name, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(name)
    }
    assert uphill == KNOWN_EXCEPTIONS


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ re-exporting its own modules is not a cycle of code.
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
    return names


def test_the_workflow_sees_the_store_only_through_its_interface() -> None:
    """cases/ and detectors/ import neither SQLAlchemy nor the SQL store: the workflow works on
    the store interface (so it runs on the memory store), the detectors on Context protocols."""
    crossings = set()
    graph = _graph()
    for folder in ("cases", "detectors"):
        for path in (PACKAGE / folder).rglob("*.py"):
            name = _module_name(path)
            if "sqlalchemy" in _third_party_imports(path):
                crossings.add((name, "sqlalchemy"))
            crossings |= {
                (name, target)
                for target in graph[name]
                if target.startswith("store.sql") or target == "store"
            }
    assert crossings == set()
