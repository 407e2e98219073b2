"""A process pool whose every task runs in a fresh process (eSpeak NG keeps voice state for the life
of a process), forked in milliseconds from a fork server.

A forked worker still prepares itself as multiprocessing's spawn does: it re-runs the program's main
script or module as `__mp_main__`.  Run from a script that imports torch, Ray and MLflow (a sweep
driver, a tool), those imports took two seconds per task: 87 s for the 40 speakers of an 80-image
corpus, against 3 s without them.  The fork server's own `__main__` preload would avoid that, but
Python 3.11-3.13 never pass it the main path (CPython gh-126631).  So the fork server imports what
the main script or module imports, once; each task then re-runs only the main module's own body.
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import os
import sys
from multiprocessing.pool import Pool
from pathlib import Path


def main_module_preload() -> list[str]:
    """What the fork server should import so that its forks find the main module's imports done: the
    modules the main script or `-m` module imports at its top level (those this process has
    imported); nothing for an interactive or `-c` session, which has no main to re-run, or a
    package's `__main__.py`, which multiprocessing never re-runs.  (Not the `-m` module itself: runpy
    warns when a module it runs is already imported.)"""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and (spec.name == "__main__" or spec.name.endswith(".__main__")):
        return []
    path = getattr(main, "__file__", None)
    if not path or not os.path.exists(path):
        return []
    package = spec.parent if spec is not None else ""
    return [name for name in top_level_imports(Path(path).read_text(), package) if name in sys.modules]


def top_level_imports(source: str, package: str = "") -> list[str]:
    """The module names a script's top level imports (not those inside its functions); a relative
    import is resolved against `package` (left out without one)."""
    names: list[str] = []
    todo = list(ast.parse(source).body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level and package:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            names += [f"{base}.{node.module}"] if node.module else [base, *(f"{base}.{a.name}" for a in node.names)]
        elif isinstance(node, (ast.If, ast.Try)):  # `if TYPE_CHECKING:`, `try: import x` run at import too
            todo[:0] = [*node.body, *getattr(node, "handlers", []), *node.orelse, *getattr(node, "finalbody", [])]
        elif isinstance(node, ast.ExceptHandler):
            todo[:0] = node.body
    return list(dict.fromkeys(names))


def fresh_process_pool(workers: int, preload: list[str]) -> Pool:
    """A pool of `workers` processes, each used for one task (maxtasksperchild=1), forked from a fork
    server that has imported `preload` and the program's main module."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([*preload, *main_module_preload()])
    return ctx.Pool(max(1, workers), maxtasksperchild=1)
