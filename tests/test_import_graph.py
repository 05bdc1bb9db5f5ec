"""No import cycle: every module of derive.tensor imports on its own in a fresh
interpreter, the graph of derive's module-level imports is acyclic, and so is
derive.tensor's even counting the imports inside functions (a lazy import that closes a
cycle, like the one the layer catalogue once had through attention, is still a knot)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules(package):
    """Dotted name -> path of every module under ``package`` (a folder of ROOT)."""
    out = {}
    for base, _, files in os.walk(os.path.join(ROOT, *package.split("."))):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(base, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def _module_level(body):
    """The statements run at import: the body, and the bodies of its ifs and trys."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            parts = [node.body, node.orelse, getattr(node, "finalbody", [])]
            parts += [h.body for h in getattr(node, "handlers", [])]
            for part in parts:
                yield from _module_level(part)


def import_graph(package, inside_functions=False):
    """Module -> the modules of ``package`` it imports (``from . import x`` and
    ``from .x import y`` name the module ``x``; a name that is no module names the
    module it is imported from)."""
    mods = modules(package)
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        statements = ast.walk(tree) if inside_functions else _module_level(tree.body)
        package_of = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for node in statements:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package_of.split(".")
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def find_cycle(graph):
    """One cycle of ``graph`` as a list of modules (first repeated at the end), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_module_level_imports_of_derive_form_no_cycle():
    graph = import_graph("derive")
    assert len(graph) > 50 and graph["derive.layers.catalog"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("package", ["derive.tensor", "derive.layers"])
def test_the_engine_and_the_layers_have_no_cycle_even_through_imports_inside_functions(package):
    graph = import_graph(package, inside_functions=True)
    if package == "derive.layers":
        assert "derive.layers.catalog" in graph["derive.layers.layerfile"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_tensor_engine_does_not_import_the_layer_library():
    graph = import_graph("derive", inside_functions=True)
    assert any(d.startswith("derive.layers") for d in graph["derive.command_line"])
    assert not [(m, d) for m, deps in graph.items() if m.startswith("derive.tensor")
                for d in deps if d.startswith("derive.layers")]


def test_a_cycle_is_found_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


TENSOR_MODULES = sorted(m for p in ("derive.tensor", "derive.layers") for m in modules(p))


@pytest.mark.parametrize("module", TENSOR_MODULES)
def test_each_tensor_module_imports_alone_in_a_fresh_interpreter(module):
    out = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr[-2000:]
