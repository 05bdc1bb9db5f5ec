"""Problem files: YAML in, Derivation out, through a registry of problem kinds.

A problem kind is a function ``solve(spec, where) -> Derivation`` registered with
:func:`problem_kind`. ``spec`` is the mapping read with ``yaml.safe_load`` (never
``yaml.load``); ``where`` is the location prefix for errors ("rnn.yaml"). Each kind
validates its own keys with the helpers below so that every error names the file and key.
"""
from __future__ import annotations

import os

import yaml

from .errors import InputError, UnsupportedError

KINDS = {}


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


def read(path):
    """All YAML documents of ``path`` as a list of mappings (InputError if unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    except OSError as exc:
        raise InputError(f"cannot read problem file ({exc.strerror})", where=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"not valid YAML ({getattr(exc, 'problem', exc)})", where=loc) from None
    if not docs:
        raise InputError("the file is empty", where=str(path))
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise InputError("a problem must be a mapping of keys to values",
                             where=f"{path} (document {i + 1})")
    return docs


def solve_spec(spec, where="problem"):
    """Solve one problem mapping and return its Derivation."""
    _load_kinds()
    kind = infer_kind(spec)
    if kind is None:
        raise InputError("no 'kind:' and no 'nodes:', 'expression:' or 'tensors:' key",
                         where=where)
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise UnsupportedError(f"unknown problem kind {kind!r} (known: {known})",
                               where=f"{where}: kind")
    derivation = KINDS[kind](spec, where)
    derivation.meta.setdefault("source", where)
    derivation.meta.setdefault("kind", kind)
    return derivation


def solve(path):
    """Solve every problem in a YAML file; a list of Derivations, one per document."""
    docs = read(path)
    name = os.path.basename(str(path))
    if len(docs) == 1:
        return [solve_spec(docs[0], name)]
    return [solve_spec(d, f"{name} (document {i + 1})") for i, d in enumerate(docs)]


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

    for module in ("derive.graph", "derive.tensor", "derive.worked"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
