"""The layering of perflaw.ingest and of the bottom modules under it, read from the source.

Every ``import`` statement counts, also inside functions (a lazy import cannot
hide a dependency). Bottom modules (sequences, ids, grouping, arrays) never
import perflaw.ingest; ingest's modules import each other without a circle,
never a private name of another module, and nothing above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "perflaw"
BOTTOM = ("perflaw.sequences", "perflaw.ids", "perflaw.grouping", "perflaw.arrays")
BELOW_INGEST = BOTTOM + ("perflaw._core", "perflaw.store", "perflaw.sizing", "perflaw.atomic", "perflaw.errors")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules["perflaw._core"] = PACKAGE / "_core.pyi"  # the Rust extension, by its stubs
    return modules


def _imports(path: Path, known: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every perflaw import in the file."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names if alias.name.startswith("perflaw")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("perflaw"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                out.append((child, None) if child in known else (node.module, alias.name))
    return out


def test_ingest_modules_are_short():
    for path in (PACKAGE / "ingest").glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines < 800, f"{path.name} has {lines} lines"
    init = PACKAGE / "ingest" / "__init__.py"
    assert len(init.read_text().splitlines()) < 60


def test_the_bottom_modules_do_not_import_ingest():
    known = _modules()
    for name in BOTTOM:
        for module, _ in _imports(known[name], known):
            assert not module.startswith(("perflaw.ingest", "perflaw.quality", "perflaw.eval")), (name, module)


def test_ingest_imports_only_itself_and_what_is_below_it():
    known = _modules()
    for name, path in known.items():
        if not name.startswith("perflaw.ingest"):
            continue
        for module, _ in _imports(path, known):
            assert module.startswith("perflaw.ingest") or module in BELOW_INGEST, f"{name} imports {module}"


def test_no_private_name_crosses_a_module():
    known = _modules()
    owners = ("perflaw.ingest", "perflaw.ids", "perflaw.grouping", "perflaw.arrays")
    for name, path in known.items():
        for module, imported in _imports(path, known):
            if module.startswith(owners) and module != name:
                assert imported is None or not imported.startswith("_"), f"{name} imports {module}.{imported}"


def test_no_import_circle_under_ingest():
    known = _modules()
    scope = {n for n in known if n.startswith("perflaw.ingest") or n in BOTTOM}
    graph = {}
    for name in scope:
        deps = {m for m, _ in _imports(known[name], known) if m in scope and m != name}
        # a submodule "imports" its package only by Python's machinery; the package re-exports it
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
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
    assert "perflaw.ingest.rows" in graph["perflaw.ingest.tokens"]  # the graph is really read


def test_io_means_the_standard_library_in_ingest():
    assert not (PACKAGE / "ingest" / "io.py").exists()
    for path in (PACKAGE / "ingest").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    if bound == "io":
                        assert isinstance(node, ast.Import) and alias.name == "io" and not alias.asname, path.name
