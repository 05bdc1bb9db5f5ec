"""A problem file's ``module:`` key: your own PyTorch model, derived.

``module: path/to/file.py:ClassName`` (relative to the problem file's folder) or
``module: package.file:ClassName`` names a ``torch.nn.Module`` class. Importing it runs
its code, so :func:`derive.problem.solve_spec` refuses the key unless the caller opted in
(``derivekit solve --allow-import``, ``dv.solve(path, allow_import=True)``); this module
is reached only after that. The reference is validated (identifier characters, a ``.py``
path) before anything is imported; the class is instantiated with no arguments or with
``args:`` given as plain numbers, converted with ``from_torch`` (``input_shape:``, and the
loss ``loss:`` names) and derived as ``derivekit layer`` derives a layer.

Keys: ``module`` (required), ``input_shape`` (required: a list of positive integers, the
batch first), ``args`` (a list of numbers, or a mapping of argument names to numbers),
``loss`` (one of :data:`LOSSES`: the torch loss the model is trained with), ``title``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys

from derive.errors import InputError
from derive.problem import check_keys, get

KEYS = ("module", "input_shape", "args", "loss", "title")
#: the ``loss:`` names and the torch loss each stands for (mean reduction)
LOSSES = {"cross_entropy": "CrossEntropyLoss", "mse": "MSELoss",
          "bce_logits": "BCEWithLogitsLoss", "bce": "BCELoss"}
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PATH = re.compile(r"[A-Za-z0-9_./\\-]+\.py")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_reference(text, where):
    """``(kind, target, class_name)``: kind is 'file' (a .py path) or 'module' (dotted)."""
    at = f"{where}: module"
    if not isinstance(text, str) or text.count(":") != 1 and not _windows_drive(text):
        raise InputError("expected 'path/to/file.py:ClassName' or 'package.file:ClassName', "
                         f"got {text!r:.80}", where=at)
    target, _, name = text.strip().rpartition(":")
    if not _NAME.fullmatch(name):
        raise InputError(f"{name!r:.60} is not a class name (letters, digits, _)", where=at)
    if target.endswith(".py"):
        if not _PATH.fullmatch(target):
            raise InputError(f"{target!r:.80} is not a plain file path (letters, digits, "
                             "_ - . /)", where=at)
        return "file", target, name
    if not _DOTTED.fullmatch(target):
        raise InputError(f"{target!r:.80} is neither a .py file nor a dotted module name",
                         where=at)
    return "module", target, name


def _windows_drive(text):
    return isinstance(text, str) and text.count(":") == 2 and re.match(r"[A-Za-z]:[\\/]", text)


def load_class(reference, where, folder):
    """Import the module a reference names and return its class (InputError if absent)."""
    kind, target, name = parse_reference(reference, where)
    at = f"{where}: module"
    if kind == "file":
        path = os.path.join(folder, target)
        if not os.path.isfile(path):
            raise InputError(f"{target} does not exist (paths are relative to the problem "
                             "file's folder)", where=at)
        module_name = "derivekit_user_" + re.sub(r"\W", "_", os.path.splitext(
            os.path.basename(path))[0])
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
    else:
        added = [p for p in (folder, os.getcwd()) if p not in sys.path]
        sys.path[:0] = added
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise InputError(f"cannot import {target} ({exc})", where=at) from None
        finally:
            for p in added:
                if p in sys.path:
                    sys.path.remove(p)
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise InputError(f"{target} has no class {name}", where=at)
    return cls


def _arguments(spec, where):
    """``(args, kwargs)`` from ``args:``: plain numbers only."""
    args = spec.get("args", [])

    def number(value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a plain number, got {value!r:.60}",
                             where=f"{where}: args{key}")
        return value

    if isinstance(args, list):
        return [number(v, f"[{i}]") for i, v in enumerate(args)], {}
    if isinstance(args, dict):
        for k in args:
            if not isinstance(k, str) or not _NAME.fullmatch(k):
                raise InputError(f"{k!r:.60} is not an argument name", where=f"{where}: args")
        return [], {k: number(v, f".{k}") for k, v in args.items()}
    raise InputError("expected a list of numbers or a mapping of names to numbers",
                     where=f"{where}: args")


def _input_shape(spec, where):
    shape = get(spec, "input_shape", where, list)
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
        raise InputError(f"expected a list of positive integers (batch first), got {shape!r:.60}",
                         where=f"{where}: input_shape")
    return tuple(shape)


def solve_module(spec, where, folder):
    """The Derivation of the PyTorch class ``spec['module']`` names (the caller opted in)."""
    check_keys(spec, KEYS, where)
    shape = _input_shape(spec, where)
    args, kwargs = _arguments(spec, where)
    title = get(spec, "title", where, str, None)
    loss = _loss_name(spec, where)  # checked before anything is imported
    cls = load_class(spec["module"], where, folder)
    from derive.pytorch import from_torch

    try:
        module = cls(*args, **kwargs)
    except TypeError as exc:
        raise InputError(f"cannot make {cls.__name__}({', '.join(map(str, args))}): {exc}",
                         where=f"{where}: args") from None
    net = from_torch(module, input_shape=shape, loss=_torch_loss(loss))
    d = net.derive()
    if title:
        d.title = title
    d.meta["module"] = spec["module"]
    return d


def _loss_name(spec, where):
    """The ``loss:`` name (None without the key); one line for a name not in LOSSES."""
    name = get(spec, "loss", where, str, None)
    if name is not None and name not in LOSSES:
        raise InputError(f"unknown loss {name!r} (use {', '.join(LOSSES)})",
                         where=f"{where}: loss")
    return name


def _torch_loss(name):
    if name is None:
        return None
    import torch.nn

    return getattr(torch.nn, LOSSES[name])()
