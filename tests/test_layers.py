"""The package's layer contract, read from the source.

Layers, top to bottom (a module imports only from layers below its own, or
from its own package; no circles; no other module's underscore names, perflaw._core
aside; no module over 800 lines):

    commands > report > cluster > sweep > law, training > quality, eval > ingest > the bottom

Every ``import`` statement counts, also inside functions, so a lazy import
cannot hide a dependency; only imports under ``if TYPE_CHECKING:`` are left
out, as they never run. The checker is also run on small made-up packages,
so that it is known to catch what it is meant to catch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "perflaw"
MAX_LINES = 800

# Top to bottom. A unit is a module or a subpackage (with all its modules).
LAYERS: list[tuple[str, ...]] = [
    ("perflaw.cli", "perflaw.commands"),
    ("perflaw.report",),
    ("perflaw.cluster",),
    ("perflaw.sweep",),
    ("perflaw.tracking",),
    ("perflaw.law", "perflaw.training"),
    ("perflaw.quality", "perflaw.eval"),
    ("perflaw.ingest", "perflaw.synth"),
    # the bottom: the in-memory form and what everything shares
    ("perflaw", "perflaw._core", "perflaw.sequences", "perflaw.store", "perflaw.sizing", "perflaw.atomic",
     "perflaw.sampling", "perflaw.errors", "perflaw.progress", "perflaw.fields", "perflaw.blocks", "perflaw.ids", "perflaw.grouping", "perflaw.arrays"),
]
BOTTOM = len(LAYERS) - 1


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported
    names: tuple[str, ...]  # names taken from it (``from target import a, b``)
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
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


def imports_of(path: Path, root: Path) -> list[Import]:
    """The package-internal imports of one file, relative imports resolved."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    top = root.name
    found = []
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([target] if target else []))
            if target == top or target.startswith(top + "."):
                found.append(Import(me, target, tuple(a.name for a in node.names), node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == top or alias.name.startswith(top + "."):
                    found.append(Import(me, alias.name, (), node.lineno))
    return found


def private_attribute_uses(path: Path, root: Path) -> list[str]:
    """``alias._name`` where ``alias`` is a package module bound by an import."""
    tree = ast.parse(path.read_text())
    top = root.name
    modules = all_modules(root)
    aliases: set[str] = set()
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(top + ".") and alias.asname:
                    aliases.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(top):
            for alias in node.names:
                if alias.name != "_core" and f"{node.module}.{alias.name}" in modules:
                    aliases.add(alias.asname or alias.name)
    bad = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            bad.append(f"{module_name(path, root)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return bad


def all_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def unit_of(module: str, layers: list[tuple[str, ...]]) -> tuple[int, str]:
    """(layer index, unit) of a module: the longest unit name that contains it."""
    best: tuple[int, str] | None = None
    for index, units in enumerate(layers):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (index, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best


def targets_of(imp: Import, modules: dict[str, Path]) -> set[str]:
    """The modules an import loads: ``from perflaw.law import fitting`` loads perflaw.law.fitting."""
    found = {f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in modules}
    if len(found) < len(imp.names) or not imp.names:
        found.add(imp.target)
    return found


def layer_violations(root: Path, layers: list[tuple[str, ...]]) -> list[str]:
    """Imports that go up, or sideways into another unit of the same layer (the bottom aside)."""
    bad = []
    bottom = len(layers) - 1
    modules = all_modules(root)
    for path in modules.values():
        for imp in imports_of(path, root):
            for target in sorted(targets_of(imp, modules)):
                mine, theirs = unit_of(imp.module, layers), unit_of(target, layers)
                if mine[1] == theirs[1] or theirs[0] > mine[0] or theirs[0] == mine[0] == bottom:
                    continue
                where = "up" if theirs[0] < mine[0] else "sideways"
                bad.append(f"{imp.module}:{imp.line} imports {target} ({where}: {mine[1]} -> {theirs[1]})")
    return bad


def private_imports(root: Path) -> list[str]:
    bad = []
    for path in all_modules(root).values():
        for imp in imports_of(path, root):
            for name in imp.names:
                if name.startswith("_") and not name.startswith("__") and not (imp.target == root.name and name == "_core"):
                    bad.append(f"{imp.module}:{imp.line} imports {imp.target}.{name}")
        bad.extend(private_attribute_uses(path, root))
    return bad


def import_cycles(root: Path) -> list[str]:
    modules = all_modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imp in imports_of(path, root):
            graph[name].update(t for t in targets_of(imp, modules) if t in modules and t != name)
    cycles: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            cycles.append(" -> ".join(trail[trail.index(node):] + [node]))
            return
        state[node] = "open"
        for dep in sorted(graph[node]):
            visit(dep, trail + [node])
        state[node] = "done"

    for module in sorted(graph):
        visit(module, [])
    return cycles


def long_modules(root: Path, limit: int = MAX_LINES) -> list[str]:
    return [f"{name}: {n} lines" for name, path in all_modules(root).items()
            if (n := len(path.read_text().splitlines())) > limit]


# ------------------------------------------------------------------ the contract
def test_every_import_goes_down_the_layers():
    assert layer_violations(PACKAGE, LAYERS) == []


def test_no_module_imports_another_modules_private_names():
    assert private_imports(PACKAGE) == []


def test_no_import_cycles():
    assert import_cycles(PACKAGE) == []


def test_no_module_is_over_800_lines():
    assert long_modules(PACKAGE) == []


def test_the_graph_is_really_read():
    edges = {(i.module, i.target) for p in all_modules(PACKAGE).values() for i in imports_of(p, PACKAGE)}
    assert ("perflaw.law.panels", "perflaw.law.fitting") in edges
    assert ("perflaw.training.loop", "perflaw.eval") in edges
    assert any(module == "perflaw.sweep" and target.startswith("perflaw.training") for module, target in edges)


# ------------------------------------------------- the checker catches what it should
def made_up_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "perflaw"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    "files,expected",
    [
        ({"sequences.py": "def f():\n    from perflaw.sweep import run_sweep\n", "sweep.py": ""}, "up"),
        ({"law/fitting.py": "from perflaw.training import train\n", "training/__init__.py": "def train(): pass\n"},
         "sideways"),
        ({"quality.py": "from perflaw.report import make_report\n", "report.py": ""}, "up"),
    ],
)
def test_the_checker_catches_an_upward_or_sideways_import(tmp_path, files, expected):
    root = made_up_package(tmp_path, files)
    found = layer_violations(root, LAYERS)
    assert len(found) == 1 and f"({expected}:" in found[0], found


def test_the_checker_catches_private_names_and_cycles(tmp_path):
    root = made_up_package(tmp_path, {
        "quality.py": "def _check_m(m): return m\n",
        "cluster.py": "from perflaw.quality import _check_m\nfrom perflaw import quality\nquality._summarize\n",
        "law/a.py": "def f():\n    from perflaw.law.b import g\n",
        "law/b.py": "from perflaw.law.a import f\n",
    })
    assert len(private_imports(root)) == 2
    assert import_cycles(root) == ["perflaw.law.a -> perflaw.law.b -> perflaw.law.a"]


def test_type_checking_imports_do_not_count(tmp_path):
    root = made_up_package(tmp_path, {
        "sequences.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from perflaw.sweep import Spec\n",
        "sweep.py": "",
    })
    assert layer_violations(root, LAYERS) == []


# ------------------------------------------------------------------ names
WRAPPED_LIBRARIES = ("io", "ray", "torch", "numpy", "pandas", "pyarrow", "scipy", "mlflow", "tensorboard")


def test_no_module_is_named_like_a_library_it_wraps_and_io_is_the_standard_library():
    for name in all_modules(PACKAGE):
        assert name.rpartition(".")[2] not in WRAPPED_LIBRARIES, f"{name} shadows a library's name"
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if (alias.asname or alias.name.split(".")[0]) == "io":
                        assert isinstance(node, ast.Import) and alias.name == "io" and not alias.asname, path
