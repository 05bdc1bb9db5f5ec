"""Imports point one way: kernels/ and reports/ read derive/; derive/ imports neither.

derive/command_line.py is the one module allowed to wire them (lazily, per command). Everything
else reaches reports through the renderer registry it fills (derive.derivation.RENDERERS).
"""
import ast
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIRING = {"derive.command_line", "derive.command_exam", "derive.__main__"}  # the command line: imports them per command
OTHERS = ("reports", "kernels")


def run(code):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_importing_derive_and_every_submodule_loads_neither_reports_nor_kernels():
    out = run(f"""
        import importlib, pkgutil, sys
        import derive
        names = [m.name for m in pkgutil.walk_packages(derive.__path__, "derive.")
                 if m.name not in {sorted(WIRING)!r}]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {OTHERS!r})
        print(len(names), loaded)
    """)
    count, loaded = out.split(" ", 1)
    assert int(count) > 50
    assert loaded.strip() == "[]"


def test_no_module_of_derive_but_the_cli_names_reports_or_kernels_in_an_import():
    # lazy imports inside functions count too: only the command line wires packages
    offenders = []
    folder = os.path.join(ROOT, "derive")
    for base, _, files in os.walk(folder):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(base, f)
            module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            module = module.removesuffix(".__init__")
            if module in WIRING:
                continue
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                    else []
                offenders += [f"{module}:{node.lineno} {n}" for n in names
                              if n.split(".")[0] in OTHERS]
    assert offenders == []


def test_packages_import_in_any_order_without_a_cycle():
    for first in ("derive", "reports", "kernels", "derive.command_line"):
        run(f"import {first}, derive, reports, kernels, derive.command_line")


@pytest.mark.slow
def test_a_derivation_displays_once_reports_is_imported_or_offered_as_an_entry_point():
    # derive alone: no renderer, so Jupyter falls back to text and to_dict says why ...
    out = run("""
        import derive as dv
        from derive import derivation
        from derive.errors import UnsupportedError
        derivation.ENTRY_POINTS = "no.such.group"  # whatever the installed metadata says
        d = dv.grad("x*y", wrt=["x"])
        print(d._repr_markdown_() is None, d._repr_latex_() is None)
        try:
            d.to_dict()
        except UnsupportedError as exc:
            print(exc)
    """).splitlines()
    assert out[0] == "True True" and "import reports" in out[1]
    # ... the entry point setup.cfg declares registers reports on first display ...
    out = run("""
        import importlib.metadata as md, sys
        import derive as dv
        ep = md.EntryPoint("reports", "reports:register", "derivekit.renderers")
        md.entry_points = lambda group=None: [ep] if group == "derivekit.renderers" else []
        d = dv.grad("x*y", wrt=["x"])
        print("reports" in sys.modules, d._repr_markdown_().startswith("#"),
              "reports" in sys.modules, d.to_dict()["title"] == d.title)
    """)
    assert out.split() == ["False", "True", "True", "True"]
    with open(os.path.join(ROOT, "setup.cfg"), encoding="utf-8") as fh:
        assert "derivekit.renderers =\n    reports = reports:register" in fh.read()
    # ... and importing reports registers it directly
    out = run("""
        import derive as dv, reports
        d = dv.grad("x*y", wrt=["x"])
        print(d._repr_markdown_() == reports.render(d, "md"))
    """)
    assert out.strip() == "True"
