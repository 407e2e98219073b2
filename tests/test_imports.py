"""The package's import graph, read from the source (imports inside functions included): no cycles,
and the layer rules that keep the core usable without the Ray side (see CONTRIBUTING.md)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vgs"
# Libraries worth deferring into a function: slow to import, or absent on a GPU machine without Ray.
HEAVY = (
    "ray",
    "mlflow",
    "optuna",
    "matplotlib",
    "torchvision",
    "scipy",
    "sacrebleu",
    "jiwer",
    "rapidfuzz",
    "pyarrow",
    "soundfile",
    "yaml",
    "PIL",
    "torchaudio",
)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str  # a vgs module, or a third-party top-level package
    line: int
    in_function: bool


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, name: str, is_package: bool, modules: set[str]) -> list[str]:
    """Modules an import statement loads: vgs modules by full name, others by their top package."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        package = name if is_package else name.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join([*base, *([node.module] if node.module else [])])
        submodules = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
        names = submodules or [module]  # `from vgs import log` loads vgs.log (vgs itself is a given)
    out = []
    for n in names:
        if n.split(".")[0] != "vgs":
            out.append(n.split(".")[0])
            continue
        while n not in modules and "." in n:  # `from vgs.x import function` names module vgs.x
            n = n.rpartition(".")[0]
        out.append(n)
    return out


def import_edges(root: Path = PACKAGE) -> list[Edge]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in files}
    edges = []
    for path in files:
        name, tree = module_name(path, root), ast.parse(path.read_text(), str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inner = {id(n) for f in functions for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, name, path.name == "__init__.py", modules):
                    if target != name:
                        edges.append(Edge(name, target, node.lineno, id(node) in inner))
    return edges


def find_cycle(edges: list[Edge]) -> list[str] | None:
    """One cycle among the vgs modules (a list that starts and ends at the same module), or None."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.target.startswith("vgs"):
            graph.setdefault(e.source, set()).add(e.target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def in_layer(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def broken_rules(edges: list[Edge]) -> list[str]:
    """Every import that breaks a layer rule, as 'module:line imports target (rule)'."""
    rules = [
        (
            lambda s: in_layer(s, "vgs.config"),
            lambda t: t.startswith("vgs") and not in_layer(t, "vgs.config", "vgs.log"),
            "vgs.config imports no vgs module but vgs.log",
        ),
        (lambda s: in_layer(s, "vgs.models"), lambda t: in_layer(t, "vgs.tasks"), "models never import tasks"),
        (
            lambda s: in_layer(s, "vgs.tasks"),
            lambda t: in_layer(t, "vgs.train", "vgs.sweep", "vgs.results"),
            "tasks never import the training loop or the sweep and results sides",
        ),
        (
            lambda s: not in_layer(s, "vgs.sweep", "vgs.results", "vgs.tools", "vgs.cli"),
            lambda t: in_layer(t, "vgs.sweep", "vgs.results"),
            "the core never imports the sweep or results sides",
        ),
        (
            lambda s: in_layer(s, "vgs.results"),
            lambda t: in_layer(t, "vgs.sweep"),
            "results never import the sweep side (the sweep reads results; both read vgs.search_spaces)",
        ),
        (
            lambda s: not in_layer(s, "vgs.sweep", "vgs.tools.bench_overhead"),
            lambda t: t == "ray",
            "only the sweep side (and its overhead benchmark) imports Ray",
        ),
        (
            lambda s: not in_layer(s, "vgs.sweep", "vgs.results"),
            lambda t: t in ("mlflow", "optuna"),
            "only the sweep and results sides import MLflow and Optuna",
        ),
    ]
    return [
        f"{e.source}:{e.line} imports {e.target} ({why})"
        for e in edges
        for applies, forbidden, why in rules
        if applies(e.source) and forbidden(e.target)
    ]


def heavy_closure(edges: list[Edge]) -> set[str]:
    """vgs modules whose import (at module level, transitively) loads a heavy library."""
    top = [e for e in edges if not e.in_function]
    heavy = {e.source for e in top if e.target in HEAVY}
    while True:
        more = {e.source for e in top if e.target in heavy} - heavy
        if not more:
            return heavy
        heavy |= more


def needless_deferrals(edges: list[Edge]) -> list[str]:
    """Imports of vgs modules inside functions that defer no heavy library: such an import only hides
    a dependency (and, before, cycles)."""
    heavy = heavy_closure(edges)
    return [
        f"{e.source}:{e.line} imports {e.target} inside a function"
        for e in edges
        if e.in_function and e.target.startswith("vgs") and e.target not in heavy and not e.source.endswith("__main__")
    ]


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_edges()) is None, f"import cycle: {' -> '.join(find_cycle(import_edges()))}"


def test_every_layer_rule_holds():
    assert broken_rules(import_edges()) == []


def test_imports_inside_functions_only_defer_heavy_libraries():
    assert needless_deferrals(import_edges()) == []


@pytest.fixture
def package(tmp_path):
    """A small package on disk, to show that the checks catch what they claim to."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "vgs"
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            (folder / "__init__.py").touch()
        return root

    return make


def test_a_cycle_through_an_import_inside_a_function_is_found(package):
    root = package(
        {"config.py": "def f():\n    from vgs.tasks import x\n", "tasks/__init__.py": "from vgs.config import y\n"}
    )
    assert find_cycle(import_edges(root)) == ["vgs.config", "vgs.tasks", "vgs.config"]


def test_layer_rules_name_the_import_that_breaks_them(package):
    root = package(
        {
            "models/net.py": "from vgs.tasks.base import Task\n",
            "tasks/base.py": "",
            "train.py": "import ray\n",
            "evaluate.py": "import mlflow\nfrom vgs.results.report import r\n",
            "results/report.py": "",
        }
    )
    broken = broken_rules(import_edges(root))
    assert "vgs.models.net:1 imports vgs.tasks.base (models never import tasks)" in broken
    assert any(b.startswith("vgs.train:1 imports ray") for b in broken)
    assert any(b.startswith("vgs.evaluate:1 imports mlflow") for b in broken)
    assert any(b.startswith("vgs.evaluate:2 imports vgs.results.report") for b in broken)


def test_a_deferred_import_of_a_light_module_is_refused_and_of_a_heavy_one_kept(package):
    root = package(
        {
            "light.py": "import json\n",
            "heavy.py": "import mlflow\n",
            "user.py": "def f():\n    from vgs import light\n    from vgs import heavy\n",
        }
    )
    assert needless_deferrals(import_edges(root)) == ["vgs.user:2 imports vgs.light inside a function"]
