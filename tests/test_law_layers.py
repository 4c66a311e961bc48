"""The law fitter's layering: a table in, SciPy, no trainer, no sweep runner, no circles.

The import graph is read from the source (every ``import`` statement, also
inside functions, so a lazy import cannot hide a dependency; only imports for
type annotations under ``if TYPE_CHECKING:`` are left out, as they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

LAW = Path(__file__).resolve().parents[1] / "python" / "perflaw" / "law"


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (type-only imports run never)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("perflaw")}


def _graph() -> dict[str, set[str]]:
    modules = {f"perflaw.law.{p.stem}": p for p in LAW.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}


def test_the_law_imports_neither_the_trainer_nor_the_sweep_runner():
    for path in LAW.glob("*.py"):
        forbidden = {m for m in _imports(path) if m.startswith(("perflaw.train", "perflaw.sweep", "perflaw.cluster"))}
        assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


def test_the_law_modules_import_each_other_without_a_circle():
    graph = _graph()
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import circle: " + " -> ".join(trail + [node])
        state[node] = "open"
        for dep in sorted(graph[node]):
            visit(dep, trail + [node])
        state[node] = "done"

    for module in sorted(graph):
        visit(module, [])
    assert "perflaw.law.fitting" in graph["perflaw.law.panels"]  # the graph is really read
