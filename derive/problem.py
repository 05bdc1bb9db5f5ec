"""Problem files: YAML in, Derivation out, through a registry of problem kinds.

A problem kind is a function ``solve(spec, where) -> Derivation`` registered with
:func:`problem_kind`. ``spec`` is the mapping read by :mod:`derive.yamlio` (safe loading,
bounded size, depth and alias expansion); ``where`` is the location prefix for errors
("rnn.yaml"). Each kind validates its own keys with the helpers below so that every error
names the file and key.

Before a kind sees a spec, what every kind needs is checked here, naming file and key:
text holds only the allowed LaTeX (:mod:`derive.latexsubset`), ``latex:`` display names
are in the display-name subset, numbers are finite, and a value ``{file: X.npy}`` (or
``{file: D.npz, key: X}``) under ``values:`` or ``upstream:`` is replaced by that array,
read with ``allow_pickle=False`` from the problem's own folder.
"""
from __future__ import annotations

import math
import os

from derive import yamlio
from derive.errors import InputError, UnsupportedError
from derive.latexsubset import check_display_name, check_text

KINDS = {}
IMPORT_FLAG = "--allow-import"  # the command-line opt-in for a problem's module: key


def problem_kind(*names):
    """Register ``solve(spec, where)`` under one or more ``kind:`` names."""

    def register(fn):
        for name in names:
            KINDS[name] = fn
        return fn

    return register


def infer_kind(spec):
    """The ``kind:`` of a spec, inferring graph problems from their keys."""
    if "kind" in spec:
        return spec["kind"]
    if "tensors" in spec:
        return "tensor_graph"
    if "nodes" in spec or "expression" in spec:
        return "graph"
    return None


def kind_of(spec, where, sep=": "):
    """The registered kind of ``spec`` (InputError without one, UnsupportedError for a
    kind no module registers; ``where + sep + "kind"`` locates it)."""
    _load_kinds()
    kind = infer_kind(spec)
    if kind is None:
        raise InputError("no 'kind:' and no 'nodes:', 'expression:' or 'tensors:' key",
                         where=where)
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise UnsupportedError(f"unknown problem kind {kind!r} (known: {known})",
                               where=f"{where}{sep}kind")
    return kind


def read(path):
    """All YAML documents of ``path`` as a list of mappings (InputError if unreadable)."""
    docs = yamlio.load_all(path, "problem file")
    if not docs:
        raise InputError("the file is empty", where=str(path))
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise InputError("a problem must be a mapping of keys to values",
                             where=f"{path} (document {i + 1})")
    return docs


def solve_spec(spec, where="problem", folder=None, allow_import=False):
    """Solve one problem mapping and return its Derivation.

    ``folder`` is where ``{file: ...}`` values are read from (the problem file's folder;
    the current directory for a mapping given in Python). A ``module:`` reference (your
    own PyTorch model) is imported, which runs its code, only with ``allow_import=True``.
    """
    if not isinstance(spec, dict):
        raise InputError("a problem must be a mapping of keys to values", where=where)
    folder = os.getcwd() if folder is None else folder
    if "module" in spec:
        # refused before anything else is read: importing a module runs the user's code
        if not allow_import:
            raise InputError(f"'module:' imports and runs Python code; pass {IMPORT_FLAG} "
                             "(dv.solve(path, allow_import=True)) to allow it",
                             where=f"{where}: module")
        from derive.torch_module import solve_module

        spec = prepare(spec, where, folder)
        derivation = solve_module(spec, where, folder)
        derivation.meta.setdefault("source", where)
        derivation.meta.setdefault("kind", "module")
        return derivation
    spec = prepare(spec, where, folder)
    kind = kind_of(spec, where)
    derivation = KINDS[kind](spec, where)
    derivation.meta.setdefault("source", where)
    derivation.meta.setdefault("kind", kind)
    return derivation


def solve(path, allow_import=False):
    """Solve every problem in a YAML file; a list of Derivations, one per document.

    ``allow_import`` lets a ``module:`` key import the user's Python file (see solve_spec).
    """
    docs = read(path)
    name = os.path.basename(str(path))
    folder = os.path.dirname(os.path.abspath(path))
    if len(docs) == 1:
        return [solve_spec(docs[0], name, folder, allow_import)]
    return [solve_spec(d, f"{name} (document {i + 1})", folder, allow_import)
            for i, d in enumerate(docs)]


# -- what every kind needs checked ------------------------------------------------------------
ARRAY_KEYS = ("values", "upstream")  # where a value may be {file: X.npy}
ARRAY_SUFFIXES = (".npy", ".npz")
MAX_ARRAY_BYTES = 200_000_000


def prepare(spec, where, folder):
    """``spec`` with file references read; InputError (naming the key) on bad text or numbers."""
    if isinstance(spec.get("latex"), dict):
        for name, tex in spec["latex"].items():
            check_display_name(tex, _key_where(where, ("latex", name)))
    for path, value, is_key in _leaves(spec, where):
        if isinstance(value, str):
            check_text(value, _key_where(where, path))
            if path[:1] == ("values",) and not is_key:
                _check_number_text(value, where, path)
        elif isinstance(value, float) and not math.isfinite(value):
            raise _not_finite(value, where, path)
    spec = dict(spec)
    for key in ARRAY_KEYS:
        if key in spec:
            spec[key] = _read_arrays(spec[key], where, (key,), folder)
    return spec


def _leaves(value, where, path=()):
    """``(path, leaf, is_key)`` for every leaf and key of a nested spec, in file order.

    A mapping built in Python may nest without bound or hold itself; the walk stops at
    ``yamlio.MAX_DEPTH`` levels as a file's reading does.
    """
    if len(path) > yamlio.MAX_DEPTH:
        raise InputError(f"nested deeper than the limit of {yamlio.MAX_DEPTH} levels",
                         where=_key_where(where, path[:1]))
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,), k, True
            yield from _leaves(v, where, path + (k,))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _leaves(v, where, path + (i,))
    else:
        yield path, value, False


def _key_where(where, path):
    """``rnn.yaml: values.W[0][1]`` for the key path ``("values", "W", 0, 1)``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"{where}: {text}" if text else where


def _not_finite(value, where, path):
    return InputError(f"expected a finite number, got {value}", where=_key_where(where, path))


def _check_number_text(text, where, path):
    """A number written as text ("1e999", "nan") must be finite too."""
    try:
        value = float(text.strip())
    except ValueError:
        return  # "1/2", "sqrt(2)": the kind parses it
    if not math.isfinite(value):
        raise _not_finite(value, where, path)


def _read_arrays(value, where, path, folder):
    """``value`` with every ``{file: ...}`` mapping inside it replaced by its array."""
    if isinstance(value, dict):
        if "file" in value and set(value) <= {"file", "key"}:
            return _read_array(value, where, path, folder)
        return {k: _read_arrays(v, where, path + (k,), folder) for k, v in value.items()}
    return value


def _read_array(ref, where, path, folder):
    """The array a ``{file: X.npy}`` / ``{file: D.npz, key: X}`` reference names."""
    import numpy as np

    at = _key_where(where, path)
    name = ref["file"]
    if not isinstance(name, str) or not name.endswith(ARRAY_SUFFIXES):
        raise InputError(f"file must name a .npy or .npz file, got {name!r:.60}", where=at)
    file = _inside(folder, name, at)
    try:
        if os.path.getsize(file) > MAX_ARRAY_BYTES:
            raise InputError(f"{name} is larger than the limit of {MAX_ARRAY_BYTES:,} bytes",
                             where=at)
        if name.endswith(".npz"):
            with np.load(file, allow_pickle=False) as data:
                array = _npz_member(data, ref, name, at)
        else:
            array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read {name} ({_reason(exc)})", where=at) from None
    if array.dtype.kind not in "biuf":
        raise InputError(f"{name} holds {array.dtype} values, not numbers", where=at)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise _not_finite(array[index], where, path + index)
    return array


def _npz_member(data, ref, name, at):
    key = ref.get("key")
    if key is None and len(data.files) == 1:
        key = data.files[0]
    if key not in data.files:
        raise InputError(f"{name} holds {', '.join(data.files) or 'no arrays'}; say which "
                         "with key:", where=at)
    return data[key]


def _inside(folder, name, at):
    """``name`` resolved in ``folder``, refused when it leads outside it."""
    root = os.path.realpath(folder)
    file = os.path.realpath(os.path.join(root, name))
    if os.path.isabs(name) or os.path.commonpath([root, file]) != root:
        raise InputError(f"{name} is outside the problem's folder (arrays are read only from "
                         "the folder of the problem file)", where=at)
    return file


def _reason(exc):
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else \
        str(exc).splitlines()[0][:120]


# -- helpers every kind uses to read its keys -----------------------------------------------
_MISSING = object()


def get(spec, key, where, types=None, default=_MISSING):
    """``spec[key]`` checked against ``types``; errors name ``where: key``."""
    if key not in spec:
        if default is _MISSING:
            raise InputError(f"missing required key '{key}'", where=where)
        return default
    value = spec[key]
    if types is not None and not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise InputError(f"expected {names}, got {type(value).__name__} {value!r:.60}",
                         where=f"{where}: {key}")
    return value


def check_keys(spec, allowed, where):
    """Reject keys a kind does not know (a typo should not be silently ignored)."""
    unknown = [k for k in spec if k not in allowed]
    if unknown:
        raise InputError(f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})",
                         where=where)


def _load_kinds():
    """Import the modules that register kinds (late, so derive.problem stays light)."""
    import importlib

    for module in ("derive.scalar.scalar_graph", "derive.tensor", "derive.worked"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
