"""Outlining: printed blocks that differ only in the arrays they touch become one function.

An unrolled RNN prints the same step twenty times (``a1_2, h1_2`` from ``h1_1`` and
``x1_2``; ``a1_3, h1_3`` from ``h1_2`` and ``x1_3``; ...). numba and LLVM then compile
twenty copies, and their time grows with the text: a 20-step RNN's epoch took 26 s
to compile. Here every block (a ``# targets`` comment and the statements under it, as
:func:`kernels.fuse.fuse` prints them) is reduced to a *shape*: its text with the arrays
it reads or writes numbered in order of appearance (``_a0, _a1, ...``), its loop
variables and local scalars numbered too, and its integer literals set aside. Blocks of
equal shape whose integers differ only in some places are one function of the arrays, the
scalars it reads from outside (``B``) and those integers (``x[n, 4, i]``: the step,
``step`` in the function); each block becomes a call::

    # a1_3, h1_3
    _block1(h1_2, W_hh1, a1_3, x1_3, W_xh1, b1, h1_3, B)

The function is printed with the first block's own names (arrays, loops, temporaries).

Calls run the same statements on the same arrays in the same order, so results are equal
to the last bit. A block that assigns a plain name at its top level (the loss ``L``) is
left alone: the name is read after it, and so is a block of one statement (a BLAS call
gains nothing from a call around it). Only shapes that occur at least :data:`MIN_REPEATS`
times are outlined, so MLP and conv kernels, whose layers differ, print as before.
"""
from __future__ import annotations

import re

MIN_REPEATS = 3
TOKEN = re.compile(r"(?P<float>(?<![\w.])\d+\.\d*(?:e[+-]?\d+)?)"
                   r"|(?P<int>(?<![\w.])\d+(?![\w.]))"
                   r"|(?P<name>(?<![\w.])[A-Za-z_]\w*)")
# names that are not data: Python, numpy, and the helper functions the kernels define
FIXED = {"for", "in", "range", "if", "else", "and", "or", "not", "True", "False", "None",
         "continue", "np", "min", "max", "abs", "int", "float", "tanh_f32", "gemm", "matmul",
         "count_correct"}
FOR = re.compile(r"^\s*for (\w+) in ")
ASSIGN = re.compile(r"^\s*(\w+)\s*(?:[-+*/]?=)(?!=)")


class Outliner:
    """Collects the outlined functions of one module (shared by all its kernels)."""

    def __init__(self, jit):
        self.jit = jit
        self.functions = {}  # (shape, varying integer places) -> (name, source lines)

    def __call__(self, lines):
        """``lines`` with each block of a shape seen MIN_REPEATS times replaced by a call."""
        blocks = _split(lines)
        shapes = [shape(body) if header else None for header, body in blocks]
        seen = {}
        for (header, _), s in zip(blocks, shapes):
            if s is not None:
                seen.setdefault(s[0], []).append((header, *s[1:]))
        out = []
        for (header, body), s in zip(blocks, shapes):
            if s is None or len(seen[s[0]]) < MIN_REPEATS:
                out += ([header] if header else []) + body
                continue
            key, ints, args, _ = s
            members = seen[key]
            varying = [k for k in range(len(ints)) if len({m[1][k] for m in members}) > 1]
            name, passed = self.function(key, varying, members)
            out += [header, f"{name}({', '.join(args + [ints[k] for k in passed])})"]
        return out

    def function(self, key, varying, members):
        """The name of the function for ``key`` (defined on first use), written with the
        first block's names so it reads as that block."""
        offsets = _offsets(varying, members)
        fkey = (key, tuple(varying)) + ((tuple(offsets),) if offsets and len(offsets) > 1 else ())
        passed = varying[:1] if offsets else varying
        if fkey not in self.functions:
            name = f"_block{len(self.functions)}"
            header, ints, args, local = members[0]
            steps = _step_names(len(passed), set(args) | set(local))
            fill = list(ints)
            if offsets:  # every varying integer is the step plus a constant
                for k, off in zip(varying, offsets):
                    fill[k] = (steps[0] if off == 0 else f"{steps[0]} + {off}" if off > 0
                               else f"{steps[0]} - {-off}")
            else:
                for k, step in zip(varying, steps):
                    fill[k] = step
            parts = {"@": fill, "_a": args, "_v": local}

            def name_of(m):
                kind, k = ("@", m.group(1)) if m.group(1) else (m.group(2), m.group(3))
                return parts[kind][int(k)]

            body = re.sub(r"@(\d+)@|\b(_a|_v)(\d+)\b", name_of, key)
            names = [m[0][2:] for m in members]
            blocks = ", ".join(names if len(names) <= 3 else
                               names[:2] + ["...", f"{names[-1]} ({len(names)} blocks)"])
            self.functions[fkey] = (name, [
                f"# the statements of {blocks}: one function, compiled once",
                self.jit, f"def {name}({', '.join(args + steps)}):"]
                + ["    " + line for line in body.split("\n")] + [""], passed)
        return self.functions[fkey][0], self.functions[fkey][2]

    def source(self):
        """The outlined functions' definitions (to print before their callers)."""
        return [line for _, src, _ in self.functions.values() for line in src]


def shape(body):
    """(key, integers, arguments, locals) of a block's statements, or None to keep it
    inline.

    The key is the text with arguments numbered ``_a0, _a1, ...`` (arrays, and scalars
    read from outside such as ``B``), loop variables and local scalars ``_v0, ...``, and
    integer literals ``@0@, @1@, ...``; comments are dropped. ``locals`` are the names
    ``_v0, ...`` stand for."""
    if len([line for line in body if line.strip()]) < 2:
        return None  # one call (a BLAS product) gains nothing from a call around it
    local = set()
    for line in body:
        m = FOR.match(line)
        if m:
            local.add(m.group(1))
        m = ASSIGN.match(line)
        if m:
            if not line.startswith(" "):
                return None  # a plain name set at the top level is read after the block
            local.add(m.group(1))
    names, ints, pieces, last = {}, [], [], 0
    text = "\n".join(re.sub(r"\s+#.*$", "", line) for line in body)
    n_args = 0
    for m in TOKEN.finditer(text):
        pieces.append(text[last:m.start()])
        last = m.end()
        tok = m.group()
        if m.group("int"):
            pieces.append(f"@{len(ints)}@")
            ints.append(tok)
        elif m.group("float") or tok in FIXED:
            pieces.append(tok)
        elif tok in local:
            pieces.append(names.setdefault(tok, f"_v{len(names) - n_args}"))
        else:
            if tok not in names:
                names[tok] = f"_a{n_args}"
                n_args += 1
            pieces.append(names[tok])
    pieces.append(text[last:])
    args = [n for n, v in names.items() if v.startswith("_a")]
    local = [n for n, v in names.items() if v.startswith("_v")]
    return "".join(pieces), tuple(ints), args, local


def _offsets(varying, members):
    """The varying integers' offsets from the first when every member's differ by the
    same constants (an unrolled step reads ``h[t - 1]`` and writes ``a[t]``: one
    parameter, ``step``), else None (one parameter per varying integer). A single varying
    integer is its own offset 0."""
    if len(varying) < 2:
        return [0] * len(varying) if varying else None
    offsets = {tuple(int(m[1][k]) - int(m[1][varying[0]]) for k in varying) for m in members}
    return list(offsets.pop()) if len(offsets) == 1 else None


def _step_names(n, taken):
    """Parameter names for the ``n`` integers that differ between the outlined blocks
    (an unrolled network's step): ``step``, or ``step1``, ``step2``, ..."""
    out, k = [], 0
    while len(out) < n:
        k += 1
        name = "step" if n == 1 and k == 1 else f"step{k}"
        if name not in taken:
            out.append(name)
    return out


def _split(lines):
    """[(header or None, lines)]: a block runs from a column-0 ``# `` comment to the next."""
    blocks = []
    for line in lines:
        if line.startswith("# "):
            blocks.append((line, []))
        elif blocks:
            blocks[-1][1].append(line)
        else:
            blocks.append((None, [line]))
    return blocks
