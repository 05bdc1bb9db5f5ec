"""The generated training module: train_step, loss_step, predict_step, epoch, evaluate.

:class:`Kernel` assembles the module's text for one Program and one optimizer from the
printed statements (:class:`kernels.statements.Statements`): ``train_step`` (forward +
backward of one minibatch), ``loss_step`` (forward to the loss) and ``predict_step``
(forward to the prediction), then ``epoch``, ``evaluate`` and ``forward`` (see
:mod:`kernels.model`), with the optimizer's update rule pasted in from :mod:`kernels.optim`
and fused into the parameter loop (:mod:`kernels.update_loop`). ``train_step`` and
``epoch`` run train mode (Dropout masks drawn by :mod:`kernels.masks`, BatchNorm batch
statistics and running-statistics updates); ``loss_step``, ``predict_step``, ``evaluate``
and ``forward`` run eval mode, the derivation's own eval-mode record (``Program.inference``,
made in :mod:`derive.tensor.modes`). Which node is the prediction is the record's too.
Blocks repeated with other arrays (an unrolled RNN's steps) become one function each
(:mod:`kernels.outline`); the text is laid out by :mod:`kernels.source_text`.
"""
from __future__ import annotations

import re

import sympy as sp

from derive.errors import UnsupportedError
from derive.tensor.modes import prediction_candidates

from .fuse import fuse
from .masks import draw_masks, mask_info, mask_setup, stat_info
from .outline import Outliner
from .sequence_loops import Families, pad_steps, roll_blocks, typed_steps
from .printer import helpers
from .source_text import (COUNT_CORRECT, HEADER, JIT, indent, literal, title_lines,
                          wrap_lines)
from .statements import Statements
from .update_loop import product_updates, typed_literals, update

RESERVED = {"np", "njit", "META", "train_step", "loss_step", "predict_step", "epoch",
            "evaluate", "forward", "count_correct", "B", "X2", "Y", "X", "order", "lrs", "bs",
            "t0", "hyper", "wd", "theta", "grad", "x2", "out", "rseed"}
CHUNK = 256  # rows per call in evaluate/forward


class Kernel(Statements):
    """Source text of the training module for one Program (see the module docstring)."""

    def __init__(self, prog, *, dtype="float32", title=""):
        prog = pad_steps(prog)  # T >= 10: every step prints alike (h1_09, h1_10)
        super().__init__(prog, dtype=dtype, title=title)
        t = prog.tensors
        self.x = _one(prog, ("input",), "an input")
        self.y = _one(prog, ("label", "target"), "labels")
        self.batch = t[self.x].shape[0]
        if not isinstance(self.batch, sp.Symbol):
            raise UnsupportedError(f"the input {self.x} must have a symbolic batch axis first")
        others = [d for d in prog.dims if d != self.batch]
        if others:
            raise UnsupportedError(f"dimension(s) {', '.join(map(str, others))} are still "
                                   "symbolic; give every layer concrete sizes to compile it")
        self.pred = prog.prediction
        if self.pred is None:
            raise UnsupportedError(f"cannot tell which node holds the predictions (candidates: "
                                   f"{prediction_candidates(prog)})")
        shape = t[self.pred].shape
        if len(shape) != 2 or shape[0] != self.batch:
            raise UnsupportedError(f"the predictions {self.pred} {list(shape)} are not one row "
                                   "of class scores per example ([B, classes])")
        self.outline = Outliner(JIT)  # repeated block shapes (unrolled steps) -> functions
        self.printer.names[self.batch] = "B"
        # an unrolled sequence's nodes: one stacked [T, B, ...] buffer per node of the step
        # (kernels.sequence_loops); none without sequences
        self.families = Families(
            prog, [n for n, info in t.items() if info.role in ("node", "adjoint")
                   and info.shape and self.batched(n)],
            self.shape_of, lambda n: t[n].dtype, exclude={self.pred})
        # Dropout masks (drawn per minibatch in the epoch, given to train_step) and
        # BatchNorm running statistics (read like parameters, updated in place)
        self.masks, self.stats = list(prog.random), prog.state
        for m in self.masks:
            if not self.batched(m):
                raise UnsupportedError(f"mask {m} {list(t[m].shape)} needs the batch axis first")

    def batched(self, name):
        shape = self.shape_of(name)
        return bool(shape) and shape[0] == self.batch

    def shape_of(self, name):
        stacks = getattr(self, "families", None)
        if stacks and name in stacks.stacks:
            return stacks.stacks[name][0]
        return super().shape_of(name)

    def lay_out(self, lines):
        """Printed statements as the kernel runs them: repeated blocks outlined, and for
        an unrolled sequence its nodes read from their stacks and its steps looped over
        (:mod:`kernels.sequence_loops`)."""
        if not self.families:
            return self.outline(lines)
        return typed_steps(roll_blocks(self.outline(self.families.lines(lines))))

    # -- functions ----------------------------------------------------------------------
    def forward_until(self, name, prog=None):
        out = []
        for a in (prog or self.prog).forward:
            out.append(a)
            if a.target == name:
                return out
        raise UnsupportedError(f"no forward assignment computes {name}")

    def eval_statements(self):
        """Statements printing the eval-mode forward (the record's ``inference``, see
        :mod:`derive.tensor.modes`); ``self`` when train and eval mode compute the same.
        Temporaries are shared."""
        prog = self.prog.eval_mode()
        if prog is self.prog:
            return self
        ev = Statements(prog, dtype=self.dtype, title=self.title)
        ev.temps = self.temps
        ev.printer.names[self.batch] = "B"
        return ev

    def used_buffers(self, assignments, lines):
        """Arrays ``lines`` (printed from ``assignments``) write: nodes and temporaries."""
        text = "\n".join(lines)
        nodes = [a.target for a in assignments if a.indices]
        return self.families.names(
            nodes + [t for t in self.temps if re.search(rf"\b{t}\b", text)])

    def function(self, name, args, body, ret):
        shapes = [f"B = {self.x}.shape[0]"]
        return ([JIT, f"def {name}({', '.join(args)}):"] + indent(shapes + body + [f"return {ret}"])
                + [""])

    def functions(self):
        """train_step, loss_step, predict_step (temporaries are created while printing)."""
        p = self.prog
        params = p.params + self.stats
        fwd = self.statements(p.forward)
        upd = self.statements(p.updates)  # running statistics, from this batch's forward
        # the backward is kept block by block: the epoch prints it again with some
        # gradients' products turned into in-place updates (product_updates)
        self.backward_blocks = [(a.target, self.assignment(a)) for a in p.backward]
        bwd = [f"{p.seed} = {self.printer._one()}"] + fuse(self.backward_blocks)
        # evaluate/forward run the eval-mode forward (no masks, running statistics);
        # printing an assignment again names new BLAS temporaries, so each function's
        # buffers are read off its own printed lines
        ev = self.eval_statements()
        train_bufs = self.families.names(self.masks + self.buffers())
        loss = fwd if ev is self else ev.statements(ev.prog.forward)
        fwd_bufs = self.used_buffers(ev.prog.forward, loss)
        until = self.forward_until(self.pred, ev.prog)
        pred = ev.statements(until)
        pred_bufs = self.used_buffers(until, pred)
        args = [self.x, self.y] + params
        self.signature = {"train": train_bufs, "loss": fwd_bufs, "predict": pred_bufs}
        self.train_body = self.lay_out(fwd + upd + bwd)
        loss, pred = self.lay_out(loss), self.lay_out(pred)
        self.forward_lines = fwd + upd
        return (self.function("train_step", args + train_bufs, self.train_body, p.output)
                + self.function("loss_step", args + fwd_bufs, loss, p.output)
                + self.function("predict_step", [self.x] + params + pred_bufs, pred, "0"))

    def views(self, names):
        return [f"{b}[:_n]" if self.batched(b) else b for b in names]

    def input_shape(self):
        return [int(d) for d in self.prog.tensors[self.x].shape[1:]]

    def epoch(self, optimizer):
        """The epoch: gather each minibatch, forward and backward (the same statements as
        train_step, printed inline), then one fused update loop.

        Parameters, gradients and optimizer state are flat vectors (``theta``, ``grad``,
        ``state_k``) and the per-tensor arrays are views of them made by the caller, so
        the update is a single loop over every parameter element. ``X2``/``x2`` are the
        inputs and the input buffer seen as 2-D (row = one sample).
        """
        from .optim import signature

        p = self.prog
        sig = signature(optimizer.rule)
        states = [f"state_{k}" for k in range(len(sig["state"]))]
        bufs = self.signature["train"]
        batched = [self.x, self.y] + [b for b in bufs if self.batched(b)]
        args = (["X2", "Y", "order", "lrs", "bs", "t0", "hyper", "wd", "theta", "grad"]
                + states + ["x2"] + [f"{b}_buf" for b in batched[:2]] + p.params + self.stats
                + [f"{b}_buf" if b in batched else b for b in bufs]
                + (["rseed"] if self.masks else []))
        # the update runs in the parameters' precision (float32 SIMD is twice as wide)
        cast = self.cast()
        body = [f"{h} = {cast}(hyper[{k}])" for k, h in enumerate(sig["hyper"])]
        body.append(f"wd = {cast}(wd)")
        # bookkeeping names start with "_" so no index of the printed statements (n, k,
        # t, ...) can overwrite them; _t is a float so beta**_t is a pow LLVM can hoist
        body += ["_N = order.shape[0]", "_total = 0.0", "_correct = 0", f"_t = {cast}(t0)"]
        if self.masks:  # the masks' generator, seeded per call by the Model
            body += mask_setup(p)
        body.append("for _s in range(0, _N, bs):")
        loop = ["_n = min(bs, _N - _s)", "for _r in range(_n):",
                "    _k = order[_s + _r]", "    for _c in range(X2.shape[1]):",
                "        x2[_r, _c] = X2[_k, _c]", f"    {self.y}_buf[_r] = Y[_k]"]
        loop += draw_masks(p, self.printer)
        loop += [f"{b} = {b}_buf[:_n]" for b in batched] + ["B = _n",
                                                            f"_lr = {cast}(lrs[_s // bs])"]
        # the same statements as train_step (their text compiled once more), except that
        # a plain-SGD-like update may happen inside a weight gradient's product
        inplace = product_updates(self, optimizer)
        blocks = list(self.backward_blocks)
        for name, (after, line) in sorted(inplace.items(), key=lambda kv: -kv[1][0]):
            blocks.insert(after + 1, (f"{name} (updated in its gradient's product)", [line]))
        blocks = [b for b in blocks if b[0] not in {p.grads[q] for q in inplace}]
        loop += (self.lay_out(self.forward_lines + [f"{p.seed} = {self.printer._one()}"]
                              + fuse(blocks))
                 + [f"_total += {p.output} * _n",
                    f"_correct += count_correct({self.pred}, {self.y})", f"_t += {cast}(1)"])
        loop += update(self, sig, optimizer, states, skip=set(inplace))
        body += indent(loop) + ["return _total, _correct"]
        return [JIT, f"def epoch({', '.join(args)}):"] + indent(body) + [""]

    def cast(self):
        """The kernel's float constructor, for values that must stay in its precision."""
        return "np.float32" if self.dtype == "float32" else "np.float64"

    def evaluators(self):
        """evaluate (loss and correct count) and forward (predictions), chunk by chunk."""
        p = self.prog
        loss_bufs, pred_bufs = self.signature["loss"], self.signature["predict"]
        chunk = [f"for _s in range(0, _N, {CHUNK}):", f"    _n = min({CHUNK}, _N - _s)"]
        params = p.params + self.stats
        call = ", ".join(["X[_s:_s + _n]", "Y[_s:_s + _n]"] + params + self.views(loss_bufs))
        ev = ["_N = X.shape[0]", "_total = 0.0", "_correct = 0"] + chunk + indent([
            f"_loss = loss_step({call})", "_total += _loss * _n",
            f"_correct += count_correct({self.pred}[:_n], Y[_s:_s + _n])"])
        ev.append("return _total, _correct")
        call = ", ".join(["X[_s:_s + _n]"] + params + self.views(pred_bufs))
        fw = ["_N = X.shape[0]"] + chunk + indent([
            f"predict_step({call})", f"out[_s:_s + _n] = {self.pred}[:_n]"])
        return ([JIT, f"def evaluate({', '.join(['X', 'Y'] + params + loss_bufs)}):"]
                + indent(ev) + [""]
                + [JIT, f"def forward({', '.join(['X', 'out'] + params + pred_bufs)}):"]
                + indent(fw) + [""])

    def meta(self, optimizer, description):
        p = self.prog

        def shape(n):
            return ["B" if d == self.batch else int(d) for d in self.shape_of(n)]

        return {"description": description, "title": self.title, "dtype": self.dtype,
                "params": [[q, shape(q)] for q in p.params],
                "grads": [p.grads[q] for q in p.params],
                "input": self.x, "labels": self.y, "input_shape": self.input_shape(),
                "token_ids": self.token_ids(),
                "n_outputs": int(self.shape_of(self.pred)[1]), "prediction": self.pred,
                "buffers": {n: shape(n) for names in self.signature.values() for n in names},
                "int_buffers": [n for names in self.signature.values() for n in names
                                if (p.tensors[n].dtype if n in p.tensors else
                                    self.families.stacks.get(n, (0, None))[1]) == "int"],
                "stats": [[n, shape(n), v] for n, v in stat_info(p)],
                "masks": mask_info(p), "running": bool(p.updates),
                "signature": self.signature, "chunk": CHUNK,
                "optimizer": optimizer.name, "state": list(optimizer.state_names)}

    def token_ids(self):
        """How many tokens an integer input (an Embedding's ids) indexes; None otherwise."""
        info = self.prog.tensors[self.x]
        classes = info.meta.get("classes") if info.dtype == "int" else None
        if classes is None or not sp.sympify(classes, strict=True).is_Integer:
            return None
        return int(classes)

    def source(self, optimizer, description=""):
        """The whole module's text for ``optimizer`` (an :class:`kernels.optim.Optimizer`)."""
        clash = RESERVED & set(self.prog.tensors)
        if clash:
            raise UnsupportedError(f"tensor name(s) {sorted(clash)} clash with kernel names")
        funcs = self.functions()
        rules = optimizer.source()
        if self.dtype == "float32":
            rules = typed_literals(rules, "np.float32")
        rules = rules.replace("\ndef ", "\n" + JIT + "\ndef ")
        rules = JIT + "\n" + rules if not rules.startswith("@") else rules
        meta = literal(self.meta(optimizer, description), start=len("META = "))
        parts = [HEADER.format(title=title_lines(self.title), rule=optimizer.name, meta=meta),
                 COUNT_CORRECT, "", rules, ""]
        code = funcs + self.epoch(optimizer) + self.evaluators()
        code = self.outline.source() + code
        parts += [helpers("\n".join(code))] + wrap_lines(code)
        return "\n".join(parts).rstrip() + "\n"


def _one(prog, roles, what):
    names = [n for n, t in prog.tensors.items() if t.role in roles]
    if len(names) != 1:
        raise UnsupportedError(f"training needs exactly one {what} tensor, found "
                               f"{names or 'none'}")
    return names[0]
