"""Unrolled sequences as loops over t: stacked buffers and rolled statements.

An LSTM over T steps is T copies of one step (``h1_2`` from ``h1_1`` and ``x1_2``, ...).
Printed as it is, the kernel has one buffer per node per step (an epoch of ~460
arguments at T = 20) and T calls of each outlined step (:mod:`kernels.outline`), so its
text -- and numba's compile time -- grows with T. Here:

* **families**: the nodes that are one node of different steps (the graph records them:
  ``Program.repeats``, see :mod:`derive.tensor.tensor_graph`) are kept in one stacked
  buffer ``[T, rows, ...]`` per family (``h1_seq``; adjoints ``h1_seq_bar``), passed as
  one argument; step t's node is ``h1_seq[t - 1, :B]`` (element ``h1_seq[t - 1, n, i]``).
  A family may start at step 2 (from a zero state step 1 has no forget gate): its slot 0
  is then unused.
* **rolling**: consecutive statements (or groups of them) that differ only in integers
  changing by the same +1 or -1 from one to the next -- the step index -- become one
  loop over that integer. Inside a block this folds a weight gradient's sum over steps
  (``gemm(a_seq_bar[t].T, h_seq[t - 1], W_bar)`` for t = 2..T); between blocks it folds
  the outlined step calls (forward t = 2..T, backward t = T..1).
  The loop runs the same statements on the same arrays in the same order, so results
  are equal to the last bit, except the sums over steps of :func:`collapse_sums`, which
  accumulate into one scalar in step order instead of adding per-step partial sums.

Kernels without sequences have no families and are printed exactly as before.
"""
from __future__ import annotations

import re

INT = re.compile(r"(?<![\w.])\d+(?![\w.])")
MIN_ROLL = 3  # repetitions a run needs to become a loop
MAX_PERIOD = 4  # statements (or blocks) per repetition


class Families:
    """The stacked buffers of a Program's unrolled sequences (see the module docstring)."""

    def __init__(self, prog, names, shape_of, dtype_of, exclude=()):
        self.member = {}  # node name -> (stack name, step index from 0)
        self.stacks = {}  # stack name -> (shape [T, ...], dtype)
        taken = set(prog.tensors) | set(names)
        names = set(names)
        for _, steps in getattr(prog, "repeats", ()) or ():
            T = len(steps)
            fams = {}
            for t, defined in enumerate(steps, 1):
                for name in defined:
                    for num in (str(t).zfill(len(str(T))), str(t)):  # h1_05 or h1_5
                        if name.endswith(num):
                            fams.setdefault(name[:-len(num)], {})[t] = name
                            break
            for key, fam in fams.items():
                for suffix in ("", "_bar"):
                    members = {t: n + suffix for t, n in fam.items() if n + suffix in names}
                    if len(members) < 2 or any(m in exclude for m in members.values()):
                        continue
                    shapes = {tuple(shape_of(m)) for m in members.values()}
                    dtypes = {dtype_of(m) for m in members.values()}
                    if len(shapes) != 1 or len(dtypes) != 1:
                        continue
                    shape = shapes.pop()
                    base = (key.rstrip("_") or key) + "_seq"
                    while base + suffix in taken:
                        base += "_"
                    stack = base + suffix
                    taken.add(stack)
                    self.stacks[stack] = ((T,) + shape, dtypes.pop())
                    for t, m in members.items():
                        self.member[m] = (stack, t - 1)
        self._pattern = (re.compile(r"(?<![\w.])(" + "|".join(
            re.escape(m) for m in sorted(self.member, key=len, reverse=True))
            + r")(?!\w)(\[)?") if self.member else None)

    def __bool__(self):
        return bool(self.member)

    def names(self, names):
        """``names`` with each family member replaced by its stack (once, where the first
        member was)."""
        out = []
        for n in names:
            n = self.member.get(n, (n,))[0]
            if n not in out:
                out.append(n)
        return out

    def refer(self, lines):
        """``lines`` reading every member from its stack (comments kept as written)."""
        def ref(m):
            stack, k = self.member[m.group(1)]
            return f"{stack}[{k}, " if m.group(2) else f"{stack}[{k}, :B]"

        return [line if line.lstrip().startswith("#") else self._pattern.sub(ref, line)
                for line in lines]

    def lines(self, lines):
        """Printed statements with stacked members, sums over steps collapsed and repeated
        statements rolled into loops (before outlining)."""
        return roll_statements(collapse_sums(self.refer(lines)))


# -- sums over steps ------------------------------------------------------------------------
ACC_ZERO = re.compile(r"^(\s*)(acc\d*) = (.+)$")
ACC_ADD = re.compile(r"^(\s*)(acc\d*) \+= (.+)$")


def collapse_sums(lines):
    """A sum of per-step reductions printed as ``acc = 0; for n: acc += a1[n, i]; acc2 =
    0; for n: acc2 += a2[n, i]; ...; out[i] = acc + acc2 + ...`` accumulates into ``acc``
    alone (``out[i] = acc``), so the per-step loops differ only in the step index and
    :func:`roll_statements` can fold them."""
    out, k = [], 0
    while k < len(lines):
        got = _acc_chain(lines, k)
        if got is None:
            out.append(lines[k])
            k += 1
            continue
        end, pad, zero, target, loops = got
        out.append(f"{pad}acc = {zero}")
        for header, body in loops:
            out += [header, body]
        out.append(f"{pad}{target} = acc")
        k = end
    return out


def _acc_chain(lines, k):
    m = ACC_ZERO.match(lines[k])
    if not m or m.group(2) != "acc":
        return None
    pad, zero, names, loops = m.group(1), m.group(3), [], []
    while k + 2 < len(lines):
        z = ACC_ZERO.match(lines[k])
        if not z or z.group(1) != pad or z.group(3) != zero or \
                z.group(2) != ("acc" if not names else f"acc{len(names) + 1}"):
            break
        header, body = lines[k + 1], lines[k + 2]
        a = ACC_ADD.match(body)
        if not header.startswith(pad + "for ") or len(header) - len(header.lstrip()) != \
                len(pad) or not a or a.group(2) != z.group(2) or \
                len(a.group(1)) != len(pad) + 4:
            break
        names.append(z.group(2))
        loops.append((header, f"{a.group(1)}acc += {a.group(3)}"))
        k += 3
    if len(names) < 2 or k >= len(lines):
        return None
    total = re.match(rf"^{pad}(\S.*?) = (acc\d*(?: \+ acc\d*)+)$", lines[k])
    if not total or sorted(total.group(2).split(" + ")) != sorted(names):
        return None  # (SymPy orders the partial sums by name: acc, acc10, acc2, ...)
    return k + 1, pad, zero, total.group(1), loops


# -- rolling --------------------------------------------------------------------------------
def _units(lines):
    """[(line, children lines)]: each line with the deeper-indented lines under it."""
    units = []
    for line in lines:
        depth = len(line) - len(line.lstrip())
        if units and line.strip() and depth > units[-1][2]:
            units[-1][1].append(line)
        else:
            units.append((line, [], depth))
    return [(head, kids) for head, kids, _ in units]


def roll_statements(lines):
    """``lines`` with runs of statements (a statement: a line and what is indented under
    it) repeated with the step index shifted by one each time folded into loops; the
    statements under each are rolled first."""
    units = [[head] + (roll_statements(kids) if kids else []) for head, kids in _units(lines)]
    return [line for unit in _roll(units, _statement_loop) for line in unit]


def _statement_loop(groups, var, first, rng):
    pad = re.match(r"\s*", groups[0][0][0]).group()
    body = first([line for unit in groups[0] for line in unit])
    return [[f"{pad}for {var} in {rng}:"] + ["    " + line for line in body]]


def roll_blocks(lines):
    """After outlining: runs of blocks (a ``# targets`` comment and its statements, mostly
    one outlined call) repeated with the step index shifted by one become one loop."""
    from .outline import _split

    blocks = [[header] + body if header else body for header, body in _split(lines)]
    return [line for block in _roll(blocks, _block_loop) for line in block]


def _block_loop(groups, var, first, rng):
    names = [g[0][0][2:] if g[0][0].startswith("# ") else "" for g in groups]
    body = first([line for block in groups[0] for line in block])
    return [[f"# {len(groups)} steps in one loop over {var} ({names[0]}; ...; {names[-1]}), "
             "written with the first step's names:", f"for {var} in {rng}:"]
            + ["    " + line for line in body]]


def _code(lines):
    return [line for line in lines if not line.lstrip().startswith("#")]


def _roll(units, loop):
    """Fold runs of ``units`` (lists of lines; comments are not compared) whose
    repetitions differ only in integers that change by the same +1 or -1 each time."""
    keys = []
    for u in units:
        text = "\n".join(_code(u))
        keys.append((INT.sub("@", text), tuple(int(i) for i in INT.findall(text))))
    out, k = [], 0
    while k < len(units):
        best = None
        for p in range(1, MAX_PERIOD + 1):
            run = _run(keys, k, p)
            if run and (best is None or run[0] * p > best[0] * best[1]):
                best = (run[0], p, run[1], run[2])
        if best is None:
            out.append(units[k])
            k += 1
            continue
        reps, p, step, varying = best
        groups = [units[k + r * p:k + (r + 1) * p] for r in range(reps)]
        joined = "\n".join(line for u in groups[0] for line in u)
        var = "_ts"
        while re.search(rf"\b{var}\b", joined):
            var += "t"
        ints = [i for j in range(p) for i in keys[k + j][1]]
        v0 = ints[varying[0]]
        stop = v0 + step * reps
        rng = f"range({v0}, {stop})" if step == 1 else f"range({v0}, {stop}, -1)"

        def first(lines, _ints=ints, _var=var, _v0=v0, _varying=set(varying)):
            return _substitute(lines, _ints, _varying, _var, _v0)

        out += loop(groups, var, first, rng)
        k += reps * p
    return out


def _run(keys, k, p):
    """(repetitions, step, varying integer places) of the longest run of period ``p`` at
    ``k``, or None when shorter than MIN_ROLL."""
    if k + 2 * p > len(keys):
        return None
    group = [keys[k + j] for j in range(p)]
    shape = tuple(g[0] for g in group)
    reps, delta = 1, None
    while k + (reps + 1) * p <= len(keys):
        nxt = [keys[k + reps * p + j] for j in range(p)]
        if tuple(g[0] for g in nxt) != shape:
            break
        ints = [i for g in nxt for i in g[1]]
        prev = [i for j in range(p) for i in keys[k + (reps - 1) * p + j][1]]
        d = [a - b for a, b in zip(ints, prev)]
        if delta is None:
            steps = {x for x in d if x}
            if len(steps) != 1 or steps.pop() not in (1, -1):
                break
            delta = d
        elif d != delta:
            break
        reps += 1
    if reps < MIN_ROLL or delta is None:
        return None
    step = next(x for x in delta if x)
    return reps, step, [j for j, x in enumerate(delta) if x]


def _substitute(lines, ints, varying, var, v0):
    """The first repetition's ``lines`` with its varying integers written from ``var``."""
    count = [0]

    def put(m):
        j = count[0]
        count[0] += 1
        if j not in varying:
            return m.group()
        off = ints[j] - v0
        return var if off == 0 else f"{var} + {off}" if off > 0 else f"{var} - {-off}"

    return [INT.sub(put, line) if not line.lstrip().startswith("#") else line
            for line in lines]


CALL = re.compile(r"^(\s*_block\d+\()(.*)\)$")


def typed_steps(lines):
    """Outlined calls with a step number written as ``np.int64(k)``: numba compiles a
    function once per *literal* integer argument (``_block0(..., 0)`` and ``_block0(...,
    1)`` would be two compilations), once in all for an int64."""
    out = []
    for line in lines:
        m = CALL.match(line)
        if m:
            args = [f"np.int64({a})" if a.isdigit() else a for a in m.group(2).split(", ")]
            line = f"{m.group(1)}{', '.join(args)})"
        out.append(line)
    return out


# -- step numbers ---------------------------------------------------------------------------
def pad_steps(prog):
    """``prog`` with an unrolled sequence's step numbers written to one width (``h1_9`` ->
    ``h1_09`` when T >= 10), so that SymPy, which orders a sum's terms and a product's
    factors by name, orders every step's statements alike (``c1_9`` before ``c1_10_bar``
    as ``c1_8`` before ``c1_9_bar``) and repeated steps print alike. Only names change:
    each right-hand side is the same expression with the tensors renamed, its matrix form
    recognised again. ``prog`` itself when nothing needs renaming."""
    from dataclasses import replace

    import sympy as sp

    from derive.derivation import BAR_SUFFIX
    from derive.tensor.matrix import recognise

    mapping = {}
    for _, steps in getattr(prog, "repeats", ()) or ():
        width = len(str(len(steps)))
        for t, names in enumerate(steps, 1):
            if len(str(t)) == width:
                continue
            for n in names:
                if n.endswith(str(t)):
                    new = n[:-len(str(t))] + str(t).zfill(width)
                    mapping[n], mapping[n + BAR_SUFFIX] = new, new + BAR_SUFFIX
    mapping = {o: n for o, n in mapping.items() if o in prog.tensors}
    if not mapping or set(mapping.values()) & set(prog.tensors):
        return prog
    return _renamed(prog, mapping, sp, replace, recognise)


def _renamed(prog, mapping, sp, replace, recognise):
    bases = {sp.IndexedBase(o): sp.IndexedBase(n) for o, n in mapping.items()}
    bases.update({sp.Symbol(o): sp.Symbol(n) for o, n in mapping.items()})
    tensors = {mapping.get(k, k): (replace(v, name=mapping[k]) if k in mapping else v)
               for k, v in prog.tensors.items()}

    def assign(a):
        rhs = a.rhs.xreplace(bases) if isinstance(a.rhs, sp.Basic) else a.rhs
        lhs = a.lhs
        if lhs is not None:
            lhs = tuple(x.xreplace(bases) if isinstance(x, sp.Basic) else x for x in lhs)
        matrix = None
        if a.matrix is not None:
            matrix = recognise(rhs, a.indices, tensors)
        return replace(a, target=mapping.get(a.target, a.target), rhs=rhs, lhs=lhs,
                       matrix=matrix)

    def name(n):
        return mapping.get(n, n) if isinstance(n, str) else n

    inference = prog.inference
    if inference is not None and inference is not prog:
        inference = _renamed(inference, mapping, sp, replace, recognise)
    return replace(
        prog, tensors=tensors, forward=[assign(a) for a in prog.forward],
        backward=[assign(a) for a in prog.backward],
        updates=[assign(a) for a in prog.updates], output=name(prog.output),
        seed=name(prog.seed), grads={w: name(g) for w, g in prog.grads.items()},
        random={name(k): v for k, v in prog.random.items()},
        prediction=name(prog.prediction), inference=inference,
        aliases={name(k): name(v) for k, v in prog.aliases.items()},
        repeats=[(layer, [[mapping.get(n, n) for n in names] for names in steps])
                 for layer, steps in prog.repeats])
