"""The house rules of docs/ARCHITECTURE.md, checked on the real code.

Every module under denoiser/ is parsed (nothing is imported, so this runs in a second) and
every import of a `denoiser` module is collected: at the top of a file, inside functions,
under `if TYPE_CHECKING:` (a type-only import still ties one part's design to another's),
relative ones and `importlib.import_module("denoiser....")`. Then:

- imports go down the layers only: core <- train, deploy <- run <- bench, app <- cli, with
  the package's own `__init__`/`__main__` on top; never up, never sideways between train and
  deploy or between bench and app; every subpackage is one of these layers;
- no import cycle between modules, of any length;
- no file over MAX_FILE_LINES lines and no function over MAX_FUNCTION_LINES lines.

The last test runs the same checks on a small made-up package, so a checker that silently
finds nothing cannot pass.
"""

from __future__ import annotations

import ast
from collections import deque
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "denoiser"
# Layer -> rank. A module may import from its own layer and from layers of a lower rank.
LAYERS = {"core": 0, "train": 1, "deploy": 1, "run": 2, "bench": 3, "app": 3, "cli": 4}
TOP = "(top)"  # denoiser/__init__.py and denoiser/__main__.py: the facade over every layer
TOP_RANK = 5
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 120


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `package` (a package is its __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _targets(node: ast.AST, module: str, files: dict[str, Path]) -> list[str]:
    """The dotted names of the package's modules an AST node imports (empty if it imports none).

    `from a.b import c` imports module a.b.c where that is a module, else (c is a name in it) a.b.
    """
    root = next(iter(files)).split(".")[0]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == root]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's own package, one level up per extra dot
            package = module.split(".") if files[module].name == "__init__.py" else module.split(".")[:-1]
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        if base.split(".")[0] != root:
            return []
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
        return subs + ([base] if len(subs) < len(node.names) else [])
    if (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and node.args[0].value.split(".")[0] == root):
        return [node.args[0].value]
    return []


def import_graph(package: Path) -> tuple[dict[str, set[str]], list[str]]:
    """(module -> the package's modules it imports, imports that name no module of the package)."""
    files = module_files(package)
    graph: dict[str, set[str]] = {name: set() for name in files}
    unknown = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, name, files):
                if target not in files:
                    unknown.append(f"{name} imports {target}, which is no module of the package")
                elif target != name:
                    graph[name].add(target)
    return graph, unknown


def layer_of(module: str) -> str:
    """The subpackage a module is in, or TOP for the package's own __init__ and __main__ (a module
    straight under the package is a layer of its own name, and so reported as unplaced)."""
    parts = module.split(".")
    return TOP if len(parts) == 1 or parts[1:] == ["__main__"] else parts[1]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports up the layers or sideways between two layers of one rank, and unplaced subpackages."""
    problems = set()
    for module, targets in graph.items():
        here = layer_of(module)
        if here != TOP and here not in LAYERS:
            problems.add(f"{module}: subpackage {here!r} is not a layer of the house ({', '.join(LAYERS)})")
            continue
        for target in sorted(targets):
            there = layer_of(target)
            if there == here or there not in LAYERS:
                continue  # own layer; an unplaced subpackage is reported where it stands
            rank, other = LAYERS.get(here, TOP_RANK), LAYERS[there]
            if other > rank:
                problems.add(f"{module} imports {target}: upward ({here} is below {there})")
            elif other == rank:
                problems.add(f"{module} imports {target}: sideways ({here} and {there} stand side by side)")
        if here == TOP:
            continue
        for target in targets:
            if layer_of(target) == TOP:
                problems.add(f"{module} imports {target}: the package's top sits on every layer")
    return sorted(problems)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (first module repeated at the end) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph has tens of modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_shortest_cycle(graph, group) for group in groups)


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    came_from = {start: ""}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & group):
            if w == start:
                path = [v]
                while came_from[path[-1]]:
                    path.append(came_from[path[-1]])
                return path[::-1] + [start]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group always has one


def long_files(package: Path, limit: int) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > limit:
            out.append(f"{path.relative_to(package.parent)}: {n} lines")
    return out


def long_functions(package: Path, limit: int) -> list[str]:
    """Functions (methods and nested ones too) longer than `limit` lines, from `def` to their last line."""
    out = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name}: {n} lines")
    return out


@lru_cache(maxsize=1)
def real_graph() -> tuple[dict[str, set[str]], list[str]]:
    return import_graph(PACKAGE)


def _listing(problems: list) -> str:
    return "\n  " + "\n  ".join(" -> ".join(p) if isinstance(p, list) else p for p in problems)


def test_the_real_package_is_read():
    graph, _ = real_graph()
    # The checks below see the whole package: every layer, and imports made inside functions
    # (the CLI imports the run layer only when a subcommand runs).
    assert {layer_of(m) for m in graph} >= set(LAYERS) | {TOP}
    assert "denoiser.run.inference" in graph["denoiser"]  # `from denoiser import Denoiser`, a lazy import
    assert sum(map(len, graph.values())) > 100


def test_every_import_names_a_module_of_the_package():
    _, unknown = real_graph()
    assert not unknown, "imports of modules that do not exist:" + _listing(unknown)


def test_imports_go_down_the_house_only():
    problems = layer_violations(real_graph()[0])
    assert not problems, "imports against the house (docs/ARCHITECTURE.md):" + _listing(problems)


def test_no_import_cycles():
    found = cycles(real_graph()[0])
    assert not found, "modules that import each other in a circle:" + _listing(found)


def test_no_file_over_the_limit():
    found = long_files(PACKAGE, MAX_FILE_LINES)
    assert not found, f"files over {MAX_FILE_LINES} lines:" + _listing(found)


def test_no_function_over_the_limit():
    found = long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:" + _listing(found)


def test_the_checks_catch_what_they_claim(tmp_path):
    """A made-up package with one of each fault, and allowed imports that must not be flagged."""
    pkg = tmp_path / "denoiser"
    files = {
        "__init__.py": "def __getattr__(name):\n    from denoiser.run.x import X\n    return X\n",
        "__main__.py": "from denoiser.cli.main import main\n",
        "core/__init__.py": "",
        "core/a.py": "def f():\n    from denoiser.run import x  # upward, inside a function\n",
        "core/b.py": "import denoiser.core.a\nfrom . import a\nfrom .a import f\n",
        "core/c1.py": "from denoiser.core import c2\n",
        "core/c2.py": "from denoiser.core.c3 import k\nfrom denoiser.core import a\n",
        "core/c3.py": "def k():\n    import denoiser.core.c1\n",
        "train/__init__.py": "",
        "train/t.py": "from denoiser.deploy.d import g  # sideways\nfrom denoiser.core import b\n",
        "deploy/__init__.py": "",
        "deploy/d.py": "from denoiser.core.config import C  # no such module\ndef g():\n    pass\n",
        "run/__init__.py": "",
        "run/x.py": "from denoiser.deploy import d\n" + "\n".join("import os" for _ in range(40)) + "\n",
        "run/y.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from denoiser.run.z import Z\n"),
        "run/z.py": "import importlib\ndef h():\n    return importlib.import_module('denoiser.run.y')\n",
        "bench/__init__.py": "",
        "bench/b.py": "from denoiser.run.x import X\nfrom ..app import p  # sideways, relative\n",
        "app/__init__.py": "",
        "app/p.py": "from denoiser.train import t\nfrom denoiser import __version__  # the top, from below\n",
        "cli/__init__.py": "",
        "cli/main.py": ("from denoiser.bench import b\nfrom denoiser.app import p\n\n\ndef main():\n"
                        + "    x = 1\n" * 12 + "\n\nclass K:\n    def m(self):\n        async def inner():\n"
                        + "            pass\n" * 9),
        "extra/__init__.py": "from denoiser.core import a\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)

    graph, unknown = import_graph(pkg)
    assert graph["denoiser.core.b"] == {"denoiser.core.a"}
    assert graph["denoiser.run.z"] == {"denoiser.run.y"}
    assert unknown == ["denoiser.deploy.d imports denoiser.core.config, which is no module of the package"]
    assert layer_violations(graph) == [
        "denoiser.app.p imports denoiser: the package's top sits on every layer",
        "denoiser.bench.b imports denoiser.app.p: sideways (bench and app stand side by side)",
        "denoiser.core.a imports denoiser.run.x: upward (core is below run)",
        "denoiser.extra: subpackage 'extra' is not a layer of the house (core, train, deploy, run, bench, app, cli)",
        "denoiser.train.t imports denoiser.deploy.d: sideways (train and deploy stand side by side)",
    ]
    assert cycles(graph) == [["denoiser.core.c1", "denoiser.core.c2", "denoiser.core.c3", "denoiser.core.c1"],
                             ["denoiser.run.y", "denoiser.run.z", "denoiser.run.y"]]
    assert long_files(pkg, 35) == ["denoiser/run/x.py: 41 lines"]
    assert long_functions(pkg, 10) == ["denoiser/cli/main.py:5 main: 13 lines",
                                       "denoiser/cli/main.py:21 m: 11 lines"]
