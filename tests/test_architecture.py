"""The package's floors: no module imports a higher floor, and no import cycle.

The floor order is written once, here (``docs/architecture.md`` draws it).
Every ``import``/``from … import`` of a zenrec module counts, at module level
or inside a function, under ``TYPE_CHECKING`` or not: a lazy import is still a
dependency.  A layer may import its own floor and any lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "zenrec"

#: lowest first; a module imports only from its own floor or a lower one
FLOORS: list[set[str]] = [
    {"zenrec", "zenrec._io", "zenrec.errors"},
    {"zenrec.data", "zenrec.datasets"},
    {"zenrec.retrieval", "zenrec.features", "zenrec.train"},
    {"zenrec.evaluate"},
    {"zenrec.models"},
    {"zenrec.store", "zenrec.experiments", "zenrec.testing"},
    {"zenrec.retrain"},
    {"zenrec.serve"},
    {"zenrec.cli"},
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The zenrec modules ``name`` imports (a ``from pkg import sub`` counts as ``pkg.sub`` when that is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            if t == "zenrec" or t.startswith("zenrec."):
                while t not in known and "." in t:
                    t = t.rpartition(".")[0]
                out.add(t)
    out.discard(name)
    return out


def floor_of(module: str) -> int:
    """The floor of a module: that of the longest package prefix named in :data:`FLOORS`."""
    best, level = "", None
    for i, names in enumerate(FLOORS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > len(best):
                best, level = n, i
    if level is None:
        raise AssertionError(f"{module} is on no floor; add its package to FLOORS in this test")
    return level


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def test_every_module_is_on_a_floor():
    for name in _modules():
        floor_of(name)


def test_no_module_imports_a_higher_floor():
    bad = []
    for name, deps in sorted(_graph().items()):
        if name == "zenrec":
            continue  # the package's own __init__ re-exports errors only (checked below)
        for d in sorted(deps):
            if floor_of(d) > floor_of(name):
                bad.append(f"{name} (floor {floor_of(name)}) imports {d} (floor {floor_of(d)})")
    assert not bad, "imports of a higher floor:\n" + "\n".join(bad)


def test_the_top_package_imports_only_the_bottom_floor():
    deps = _graph()["zenrec"]
    assert all(floor_of(d) == 0 for d in deps), deps


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_reexports(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with a package's ``__init__`` edges to its own submodules removed.

    ``pkg/__init__.py`` re-exporting ``pkg.sub`` while ``pkg.sub`` imports a
    sibling through ``pkg.other`` is how Python packages are built, not a
    design cycle; every other edge counts.
    """
    mods = _modules()
    out = {}
    for name, deps in graph.items():
        if mods[name].name == "__init__.py":
            deps = {d for d in deps if not d.startswith(name + ".")}
        out[name] = deps
    return out


def test_no_import_cycle():
    cycles = _cycles(_without_package_reexports(_graph()))
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_floor_check_catches_an_upward_import(tmp_path):
    """The import walker sees a lazy import inside a function, the kind that hid base.py → registry."""
    f = tmp_path / "mod.py"
    f.write_text("def g():\n    from zenrec.serve.app import create_app\n    return create_app\n")
    deps = _imports("zenrec.models.fake", f, set(_modules()))
    assert "zenrec.serve.app" in deps
    assert floor_of("zenrec.serve.app") > floor_of("zenrec.models.fake")
