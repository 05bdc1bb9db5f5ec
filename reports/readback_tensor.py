"""Printed = computed for a tensor derivation's LaTeX and CLI text (see reports.readback).

Every matrix form a tensor document prints (forward definitions, adjoints, gradients,
each edge's contribution and the contributions into an adjoint as the backward pass adds
them, and the worked steps' matrix forms) is printed by the one LaTeX printer, read back
by the answer reader in matrix mode (juxtaposition and ``\\,`` are matrix products,
``\\odot`` elementwise, ``^{\\top}`` a transpose, ``\\mathbf{1}_{B}`` a column of ones),
evaluated with ``derive.verify.tensor.answer_eval`` at the random instance
``derive.tensor.printed.instance(program, seed)`` and compared entry by entry with the
program's arrays. The summary text of each gradient (``z_bar.T @ X``, ``ones(1, B) @
z_bar``) is read by the tensor answer parser the same way.

Index forms (``\\left[\\sum_{j} W_{i,j} x_{n,j}\\right]_{n,i}``) are not read: the reader
reads no sums. They are skipped and counted with that reason (``derive.tensor.printed``
evaluates their SymPy objects).
"""
from __future__ import annotations

import re

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.tensor.display import ElementForm
from derive.tensor.printed import PrintedFormError, instance
from derive.verify.tensor.answer_eval import ShapeMismatch, Tree

from reports.readback import (UNREADABLE, DisplayNames, Printed, names_of, new_counts, reason,
                              shown_in, skip)

RTOL, ATOL = 1e-7, 1e-9
#: ... for a form that holds a decimal (printed to 6 significant digits)
FLOAT_RTOL = 1e-4
DECIMAL = re.compile(r"\d\.\d")
#: what evaluating a form read back may raise when it cannot be evaluated here (a name
#: with no array at the instance): skipped and counted. Shapes that do not fit are not
#: this: a printed form whose shapes do not fit is wrong (PrintedFormError).
NO_VALUE = (KeyError, IndexError, ArithmeticError)
INDEX_FORM = "index form (Σ and subscripts): the answer reader reads matrix forms only"


def _is_matrix(e):
    return isinstance(e, sp.Basic) and getattr(e, "is_Matrix", False)


class MatrixForm:
    """A printed matrix form: ``tex`` as printed, read back and compared with ``target``
    (the name of a program array); ``parts`` (texts) are read and added up instead when
    an adjoint's contributions are printed one by one (the edge table)."""

    def __init__(self, what, tex, target, parts=None):
        self.what, self.tex, self.target, self.parts = what, tex, target, parts


def tensor_forms(d, names=None):
    """(forms, index forms) a tensor document of ``d`` may print: MatrixForms, and the
    (what, tex) of every index form (skipped, not read)."""
    from reports.backward_chains import signed_sum

    names = names_of(d) if names is None else names
    tex_of, forms, index = Printed(names), [], []

    def add(what, expr, target, tex=None):
        tex = tex_of(expr) if tex is None else tex
        if isinstance(expr, ElementForm):
            index.append((what, tex))
        elif _is_matrix(expr):
            forms.append(MatrixForm(what, tex, target))

    for n in d.nodes:
        add(f"{n.name} (forward definition)", n.definition, n.name)
    edges = {}
    for e in d.edges:
        edges.setdefault(e.src, []).append(e)
        if isinstance(e.partial, ElementForm):
            index.append((f"∂{e.dst}/∂{e.src} (local partial)", tex_of(e.partial)))
        add(f"contribution of {e.dst} to {e.src}_bar", e.contribution, None,
            tex_of(e.contribution))  # as contribution_tex(e, names, tensor=True) prints it
    partial = set(d.meta.get("elided_uses", ()))  # uses in elided steps are not listed
    for src, into in edges.items():
        if src not in partial and all(_is_matrix(e.contribution) for e in into):
            parts = [tex_of(e.contribution) for e in into]
            forms.append(MatrixForm(f"{src}_bar (adjoint, contributions added)",
                                    signed_sum(parts).tex, f"{src}_bar"))
            if len(into) > 1:  # the edge table's cells, read one by one and added
                forms.append(MatrixForm(f"contributions into {src}_bar (edge table cells, "
                                        "added)", None, f"{src}_bar", parts))
    for a in d.adjoints:
        for field in ("as_sum", "in_nodes", "in_inputs"):
            expr = getattr(a, field, None)
            if field != "as_sum" or not edges.get(a.name):
                add(f"{a.name}_bar (adjoint, {field})", expr, f"{a.name}_bar")
    grads = d.program.grads
    for w, g in d.gradients.items():
        add(f"d/d{w} (gradient)", g.expression, grads.get(w, f"{w}_bar"))
    for section in d.sections:
        for step in section.steps:
            lhs = getattr(step, "lhs", None)
            if isinstance(lhs, sp.Indexed) and isinstance(step.rhs, (list, tuple)):
                for k, form in enumerate(step.rhs):
                    what = f"{lhs.base} ({section.title}, form {k + 1})"
                    if _is_matrix(form):
                        forms.append(MatrixForm(what, tex_of(form), str(lhs.base)))
                    elif isinstance(form, sp.Basic) and form.has(sp.Indexed):
                        index.append((what, tex_of(form)))
    return forms, index


class Reader:
    """The answer reader in matrix mode over a tensor derivation's names, and the values
    of those names at the random instance (``derive.tensor.printed``)."""

    def __init__(self, d, seed=0):
        from derive.tensor.printed import _display_names
        from derive.verify.answers import Vocabulary
        from derive.verify.tensor.answer_eval import tree_builders

        prog = d.program
        values, _, self.arrays, env = instance(prog, seed)
        self.runnable = values is not None
        self.why = None if self.runnable else f"the program cannot run: {env}"
        self.env = {}
        if self.runnable:  # an alias (v5_bar = v6_bar) is named on the page too
            self.arrays.update({a: self.arrays[t] for a, t in prog.aliases.items()
                                if t in self.arrays and a not in self.arrays})
            self.env = _display_names(env, self.arrays)
            for k, v in getattr(prog, "constants", {}).items():  # epsilon
                self.env.setdefault(str(k), float(v))
        words = [n.name for n in d.nodes] + [str(s) for s in prog.dims] + \
            [str(s) for s in getattr(prog, "constants", {})]
        self.vocab = Vocabulary(list(dict.fromkeys(words)), d.meta.get("latex_names"))
        self.display = DisplayNames(names_of(d))
        self.builders = tree_builders()
        self.functions = dict(self.builders["functions"], onehot=self._onehot, lse=_Lse)
        self.classes = {t.name: t.meta["classes"] for t in prog.tensors.values()
                        if "classes" in (t.meta or {})}
        self.parsed = {}

    def _onehot(self, labels):
        """``onehot(y)``: y's labels as rows of an indicator matrix with as many columns as
        y has classes (the problem says how many; the printed form does not)."""
        name = str(labels.args[0] if isinstance(labels, Tree) else labels)
        if name not in self.classes:
            raise InputError(f"onehot({name}): {name} is not a tensor of class labels")
        classes = sp.sympify(self.classes[name])
        sizes = {s: self.env.get(str(s)) for s in classes.free_symbols}
        if None in sizes.values():
            raise InputError(f"onehot({name}): the number of classes {classes} is not known")
        return _OneHot(labels, int(classes.xreplace({s: int(v) for s, v in sizes.items()})))

    def parse(self, text, latex_text):
        """The answer tree of ``text`` (cached); InputError and friends when unreadable."""
        from derive.verify.answers import parse_answer

        key = (text, latex_text)
        if key not in self.parsed:
            b = self.builders
            if latex_text:
                text = self.display.literal(text)
            expr = parse_answer(text, self.vocab, matrix=b["matmul"], transpose=b["T"],
                                functions=self.functions, combine=b["combine"],
                                latex=latex_text)
            self.parsed[key] = expr if isinstance(expr, Tree) else Tree.leaf(expr)
        return self.parsed[key]

    def disagreement(self, trees, want, target, rtol=RTOL):
        """How the sum of ``trees``' values disagrees with ``want`` (None: it agrees);
        NoNumber when it cannot be evaluated here."""
        try:
            with np.errstate(all="ignore"):
                got = sum(np.asarray(t.value(self.env), dtype=float) for t in trees)
        except ShapeMismatch as e:
            return f"its shapes do not fit ({e.message})"
        except NO_VALUE as e:
            raise NoNumber(f"no value at the instance: {reason(e)}") from None
        shaped = _against(got, want)
        if shaped is None:
            return f"{got.size} entries, where the program's {target} has {want.size}"
        return _disagreement(shaped, want, rtol)


class _OneHot(Tree):
    def __init__(self, labels, count):
        super().__init__("onehot", [Tree.leaf(labels)])
        self.count = count

    def value(self, env):
        labels = np.asarray(self.args[0].value(env)).astype(int).reshape(-1)
        return np.eye(self.count)[labels]


class _Lse(Tree):
    """``lse(Z)``: the log-sum-exp of each row of Z, as one row (the matrix display's)."""

    def __init__(self, z):
        super().__init__("lse", [Tree.leaf(z)])

    def value(self, env):
        z = np.atleast_2d(np.asarray(self.args[0].value(env), dtype=float))
        top = z.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True))).T


class NoNumber(Exception):
    """A form read back that cannot be evaluated at the instance (skipped)."""


def _against(got, want):
    """``got`` shaped as ``want`` (a row for a vector, one number broadcast), or None."""
    want = np.asarray(want, dtype=float)
    if got.size == want.size:
        return got.reshape(want.shape)
    if got.size == 1:
        return np.broadcast_to(got.reshape(()), want.shape)
    return None


def _disagreement(got, want, rtol=RTOL):
    diff = np.abs(got - want)
    bad = ~(diff <= ATOL + rtol * np.abs(want))
    if not np.any(bad):
        return None
    idx = np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), want.shape) \
        if want.shape else ()
    entry = "(" + ",".join(str(int(i)) for i in idx) + ")"
    return f"{float(got[idx]):.6g} where the program computes {float(want[idx]):.6g} " \
        f"at entry {entry}"


def matrix_readback(d, seed=0, shown=None):
    """Read back every matrix form a tensor document of ``d`` prints; index forms are
    skipped (see the module). Counts as :func:`reports.readback.latex_readback`."""
    counts = new_counts()
    reader = Reader(d, seed)
    shown = shown_in(d, shown)
    forms, index = tensor_forms(d)
    for what, tex in index:
        if tex in shown:
            skip(counts, what, INDEX_FORM)
    for form in forms:
        texts = form.parts if form.parts else [form.tex]
        if not all(t in shown for t in texts):
            continue  # dropped by a pass: not printed
        if form.target is None:
            continue  # one contribution: read with the others into its adjoint
        if not reader.runnable or form.target not in reader.arrays:
            skip(counts, form.what, reader.why or f"the program computes no {form.target}")
            continue
        want = np.asarray(reader.arrays[form.target], dtype=float)
        try:
            trees = [reader.parse(t, True) for t in texts]
        except UNREADABLE as e:
            skip(counts, form.what, reason(e))
            continue
        try:
            wrong = reader.disagreement(trees, want, form.target, FLOAT_RTOL if any(
                DECIMAL.search(t) for t in texts) else RTOL)
        except NoNumber as e:
            skip(counts, form.what, str(e))
            continue
        if wrong:
            back = " + ".join(str(t) for t in trees)
            raise PrintedFormError(f"the LaTeX of printed {form.what}, {' + '.join(texts)}, "
                                   f"reads back as {back}: {wrong}", where=d.title)
        counts["read"] += 1
    return counts


def matrix_text_readback(d, seed=0):
    """The summary text of each gradient of a tensor derivation (``text(expression)``),
    read by the tensor answer parser and compared with the program's gradient array."""
    from reports.text_printer import text

    counts = new_counts()
    reader = Reader(d, seed)
    grads = d.program.grads
    for w, g in d.gradients.items():
        what = f"d/d{w} (gradient, summary text)"
        if isinstance(g.expression, ElementForm):
            skip(counts, what, INDEX_FORM)
            continue
        target = grads.get(w)
        if not reader.runnable or target not in reader.arrays:
            skip(counts, what, reader.why or f"the program computes no gradient of {w}")
            continue
        line = text(g.expression)
        want = np.asarray(reader.arrays[target], dtype=float)
        try:
            tree = reader.parse(line, False)
        except UNREADABLE as e:
            skip(counts, what, reason(e))
            continue
        try:
            wrong = reader.disagreement([tree], want, target)
        except NoNumber as e:
            skip(counts, what, str(e))
            continue
        if wrong:
            raise PrintedFormError(f"the summary text of {what}, {line}, reads back as "
                                   f"{tree}: {wrong}", where=d.title)
        counts["read"] += 1
    return counts
