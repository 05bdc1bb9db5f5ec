"""Reading YAML files within bounds: every YAML file derivekit reads comes through here.

A YAML file is data, and hostile data must be answered or refused in bounded time and
memory. Three limits hold for problem files, answers files and training configs alike:

* ``MAX_BYTES`` (5 MB) of text; large arrays belong in ``.npy``/``.npz`` files that a
  problem references (``{file: X.npy}``, see :mod:`derive.problem`);
* ``MAX_DEPTH`` (50) levels of nesting, counted after aliases are expanded;
* ``MAX_NODES`` (100,000) scalars and collections, counted after aliases are expanded,
  so a kilobyte "billion laughs" (``a1: [*a0, *a0, ...]`` nine times over) is refused
  instead of growing to 10^9 nodes.

The checks run before any Python object is built: first over the parser's events (depth
and node count, stopping at the first excess, so a 5 MB matrix is refused in a fraction
of a second), then over the composed node graph, where an alias is the same node object
as its anchor; a walk that remembers each node's expanded size and height visits every
node once, however large the expansion. Only then are objects constructed, with
``yaml.CSafeLoader`` (libyaml) when it is installed and ``yaml.SafeLoader`` otherwise;
no tag can make either build anything but plain data.
"""
from __future__ import annotations

import os

import yaml

from derive.errors import InputError

MAX_BYTES = 5_000_000
MAX_DEPTH = 50
MAX_NODES = 100_000

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_NODE = _OPEN + (yaml.ScalarEvent, yaml.AliasEvent)


def load(path, what="YAML file"):
    """The one document of the YAML file ``path`` (None when it is empty).

    ``what`` names the file in errors ("answers file", "config"). Raises InputError (one
    line naming the file, and the limit or the line and column) when the file cannot be
    read, is not YAML, or exceeds a limit.
    """
    docs = load_all(path, what)
    if len(docs) > 1:
        raise InputError(f"expected one YAML document, found {len(docs)}", where=os.fspath(path))
    return docs[0] if docs else None


def load_all(path, what="YAML file"):
    """Every document of the YAML file ``path``, as plain Python data (see :func:`load`)."""
    where = os.fspath(path)
    return loads_all(read_text(where, what), where)


def read_text(path, what="YAML file"):
    """The UTF-8 text of ``path``, refused past ``MAX_BYTES`` without reading it all."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", where=where) from None
    if len(data) > MAX_BYTES:
        raise InputError(f"{what} is larger than the limit of {MAX_BYTES:,} bytes "
                         "(put large arrays in .npy files)", where=where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text (byte {exc.start})", where=where) from None


def loads_all(text, where="YAML"):
    """Every document of YAML ``text``; errors are located at ``where`` (a file name)."""
    try:
        _check_events(text, where)
        loader = Loader(text)
        try:
            nodes = []
            while loader.check_node():
                nodes.append(loader.get_node())
            for node in nodes:
                _check_expansion(node, where)
            return [d for d in map(loader.construct_document, nodes) if d is not None]
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"not valid YAML ({problem})", where=_at(where, mark)) from None
    except ValueError as exc:  # a constructor's own check, e.g. an integer of 10^5 digits
        reason = str(exc).splitlines()[0].split(";")[0]
        raise InputError(f"not valid YAML ({reason})", where=where) from None


def _at(where, mark):
    return f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where


def _check_events(text, where):
    """Depth and size as written (aliases counted once), before anything is composed.

    libyaml's parser keeps its own stack, so this pass cannot run out of recursion
    however deep the text nests; it stops at the first event past a limit.
    """
    depth = count = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, _NODE):
            count += 1
            if count > MAX_NODES:
                raise _too_many(_at(where, event.start_mark))
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(_at(where, event.start_mark))
        elif isinstance(event, _CLOSE):
            depth -= 1


def _check_expansion(root, where):
    """Size and depth with every alias expanded, in one visit per distinct node.

    ``seen`` maps a node to the (size, height) of its expansion, so an alias used a
    billion times over is counted by multiplication, not by walking. A node reached
    again while still being walked is an alias to one of its own ancestors: a recursive
    structure, refused.
    """
    seen, open_ = {}, set()

    def walk(node, level):
        key = id(node)
        if key in open_:
            raise InputError("an alias refers to a collection that contains it (a "
                             "recursive structure)", where=_at(where, node.start_mark))
        if key not in seen:
            if level > MAX_DEPTH:
                raise _too_deep(_at(where, node.start_mark))
            open_.add(key)
            size, height = 1, 1
            for child in _children(node):
                child_size, child_height = walk(child, level + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_NODES:
                    raise _too_many(_at(where, node.start_mark))
            open_.discard(key)
            seen[key] = size, height
        size, height = seen[key]
        if level + height - 1 > MAX_DEPTH:
            raise _too_deep(_at(where, node.start_mark))
        return size, height

    walk(root, 1)


def _children(node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return ()


def _too_deep(where):
    return InputError(f"nested deeper than the limit of {MAX_DEPTH} levels", where=where)


def _too_many(where):
    return InputError(f"more than the limit of {MAX_NODES:,} values and collections (aliases "
                      "expanded; put large arrays in .npy files)", where=where)
