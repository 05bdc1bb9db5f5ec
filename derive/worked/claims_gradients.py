"""Claims about gradient flow, each a worked problem with every step shown.

* ``constant_init_symmetry``: a constant initialisation gives every hidden unit the same
  gradient -- derived with the scalar engine (:func:`derive.grad`) on a small MLP, then with
  every parameter one symbol;
* ``zero_one_loss_gradient`` and ``argmax_attention_gradient``: piecewise-constant maps
  pass no gradient (their derivatives are Dirac deltas, zero off a measure-zero set).
"""
from __future__ import annotations

import sympy as sp

from derive.budget import Timeout, deadline
from derive.derivation import Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import get
from derive.stepforms import ArgMax, Word, approx, minus, plus, times
from derive.worked.claims import Verdict, claim
from derive.worked.claims_proofs import read_seconds, read_vector
from derive.worked.common import array, key_choice, key_int, matrix, tidy, value


# -- constant initialisation ---------------------------------------------------------------------
def _mlp(n_in, hidden, activation):
    """Assignments of a one-hidden-layer MLP with a squared loss, for derive.grad."""
    net = {}
    for u in range(1, hidden + 1):
        net[f"z{u}"] = " + ".join([f"w{u}{i}*x{i}" for i in range(1, n_in + 1)] + [f"b{u}"])
        net[f"h{u}"] = f"{activation}(z{u})" if activation != "linear" else f"z{u}"
    net["yhat"] = " + ".join([f"v{u}*h{u}" for u in range(1, hidden + 1)] + ["c"])
    net["L"] = "(yhat - y)**2/2"
    return net


def _unit_params(u, n_in):
    return [f"w{u}{i}" for i in range(1, n_in + 1)] + [f"b{u}", f"v{u}"]


@claim("constant_init_symmetry", "when every weight starts at the same constant, every hidden "
       "unit receives the same gradient, so the units never become different",
       keys={"x", "y", "hidden", "init", "activation", "seconds"})
def constant_init_symmetry(spec, where, d):
    from derive.entry_points import grad

    x = read_vector(spec, "x", where, [1, 2])
    if len(x) > 9:
        raise ShapeError("at most 9 inputs", where=f"{where}: x")
    y = value(get(spec, "y", where, default=1), f"{where}: y", None)
    hidden = key_int(spec, "hidden", where, 3, minimum=2)
    if hidden > 9:
        raise ShapeError("at most 9 hidden units", where=f"{where}: hidden")
    c = value(get(spec, "init", where, default="1/2"), f"{where}: init", None)
    act = key_choice(spec, "activation", where, ("tanh", "sigmoid", "relu", "linear"), "tanh")
    seconds = read_seconds(spec, where)
    n = len(x)
    net = _mlp(n, hidden, act)
    params = [p for u in range(1, hidden + 1) for p in _unit_params(u, n)] + ["c"]
    at = {**{p: c for p in params}, **{f"x{i + 1}": v for i, v in enumerate(x)}, "y": y}
    d.note(f"A {n}-{hidden}-1 network: z_u = sum_i w_ui x_i + b_u, h_u = {act}(z_u), "
           f"yhat = sum_u v_u h_u + c, L = (yhat - y)^2 / 2; every weight and bias starts at "
           f"{c}. The gradients come from the scalar engine (derive.grad), node by node.")
    g = grad(net, wrt=params, at=at)
    d.nodes, d.edges, d.adjoints, d.gradients = g.nodes, g.edges, g.adjoints, g.gradients
    rows = [[tidy(g.gradients[p].value) for p in _unit_params(u, n)]
            for u in range(1, hidden + 1)]
    names = ", ".join(f"dL/dw_u{i}" for i in range(1, n + 1)) + ", dL/db_u, dL/dv_u"
    decimals = sp.Matrix([[approx(v) if not v.is_Rational else v for v in row] for row in rows])
    d.sections.append(Section(f"Gradients at the constant initialisation {c}", [
        Step(Word("row u"), [sp.Matrix(rows), decimals], f"row u: {names} (unit u's incoming "
             "weights, bias and outgoing weight), from the gradients above")]))
    same = all(sp.simplify(a - b) == 0 for row in rows[1:] for a, b in zip(row, rows[0]))
    if not same:  # cannot happen for a symmetric point: kept honest
        return Verdict("refuted", f"rows differ: {rows}"), {"gradients": rows}
    try:
        with deadline(seconds):
            proof = _symmetry_proof(d, g, n, hidden)
    except Timeout:
        proof = False
    d.note("Why: swapping hidden units u and u' (their rows of W, their biases and output "
           "weights) does not change the network, so L is symmetric under the swap. At a "
           "point the swap leaves fixed (all units equal) the gradient is fixed by it too, so "
           "units u and u' get equal gradients; a gradient step keeps them equal, and they "
           "stay copies of one unit for ever. Random initialisation breaks the symmetry.")
    answer = {"gradients": rows}
    if proof:
        return Verdict("proved", f"in a {n}-{hidden}-1 network the gradient rows of the "
                       f"{hidden} hidden units are equal for every input, target and constant "
                       "(symbolically); at the given numbers "
                       f"each row is {_decimals(rows[0])}"), answer
    return Verdict("shown", f"every unit's gradient row is {_decimals(rows[0])} at the "
                   "given numbers "
                   "(the symbolic check did not finish)"), answer


def _decimals(row):
    return "[" + ", ".join(f"{float(v):.6g}" for v in row) + "]"


def _symmetry_proof(d, g, n, hidden):
    """Substitute one symbol for every parameter into the derived gradient expressions and
    compare the units' rows symbolically."""
    theta = sp.Symbol("theta")
    subs = {s: theta for p in g.gradients for s in g.gradients[p].expression.free_symbols
            if str(s)[0] in "wbvc"}
    rows = [[g.gradients[p].expression.subs(subs) for p in _unit_params(u, n)]
            for u in range(1, hidden + 1)]
    gaps = [sp.simplify(a - b) for row in rows[1:] for a, b in zip(row, rows[0])]
    d.sections.append(Section("Symbolically: every parameter equal to theta", [
        Step(sp.Symbol("dL/dw_u1"), [rows[0][0]], "the same expression for every unit u"),
        Step(minus(Word("row u"), Word("row 1")), [sp.Matrix([gaps[i * (n + 2):(i + 1) * (n + 2)]
                                                              for i in range(hidden - 1)])],
             "zero for every input x, target y and constant theta")]))
    return all(v == 0 for v in gaps)


# -- piecewise-constant maps pass no gradient ----------------------------------------------------
@claim("zero_one_loss_gradient", "the 0/1 loss has zero gradient almost everywhere",
       keys={"w", "x", "label"})
def zero_one_loss_gradient(spec, where, d):
    w_num = read_vector(spec, "w", where, [1, -2])
    x = read_vector(spec, "x", where, [3, 1])
    if len(w_num) != len(x):
        raise ShapeError(f"w has {len(w_num)} entries but x has {len(x)}", where=f"{where}: x")
    y = get(spec, "label", where, default=1)
    if y not in (1, -1):
        raise InputError(f"expected +1 or -1, got {y!r:.40}", where=f"{where}: label")
    w = [sp.Symbol(f"w_{i + 1}", real=True) for i in range(len(x))]
    margin = sp.Add(*[a * b for a, b in zip(w, x)]) * y
    loss = sp.Heaviside(-margin, 0)
    grads = [sp.diff(loss, wi) for wi in w]
    at = dict(zip(w, w_num))
    m_val = margin.subs(at)
    d.note("A linear classifier predicts sign(w.x); the 0/1 loss is 1 when the label y "
           "(+1 or -1) disagrees: L(w) = H(-y w.x), with H the unit step (H(0) = 0). Its "
           "derivative is a Dirac delta, zero wherever y w.x != 0.")
    d.sections.append(Section("Derivative of the 0/1 loss", [
        Step(sp.Symbol("L"), [loss]),
        Step(sp.Symbol("dL/dw"), [sp.Matrix([grads])],
             "chain rule: H'(u) = delta(u), which is 0 for every u != 0"),
        Step(Word("margin"), [m_val], f"at w = {list(w_num)}"),
        Step(sp.Symbol("L"), [loss.subs(at)]),
        Step(sp.Symbol("dL/dw"), [sp.Matrix([[gi.subs(at) for gi in grads]])])]))
    d.note("The 0/1 loss (argmax of several classes alike) is piecewise constant: it changes "
           "only where w.x crosses 0, a set of measure zero, and there it jumps, so gradient "
           "descent gets no signal (the exam's 'it will not work: not differentiable').")
    answer = {"loss": loss.subs(at), "gradient": [gi.subs(at) for gi in grads]}
    if m_val == 0:
        return Verdict("proved", "the gradient is y x delta(y w.x), zero off the hyperplane "
                       "w.x = 0; the given w lies on it, where the loss jumps"), answer
    return Verdict("proved", "the gradient is y x delta(y w.x): zero wherever w.x != 0 "
                   f"(almost everywhere); at the given w it is {answer['gradient']}"), answer


@claim("argmax_attention_gradient", "hard (argmax) attention passes no gradient to the "
       "queries and keys", keys={"keys", "values", "query"})
def argmax_attention_gradient(spec, where, d):
    keys = array(get(spec, "keys", where, default=[[1, 2, 0], [0, 3, 4], [5, 0, 0], [0, 0, 1]]),
                 f"{where}: keys", ndim=2, name="the keys")
    vals = array(get(spec, "values", where,
                     default=[[2, 0, 1], [1, 4, 3], [0, -1, 4], [1, 0, -1]]),
                 f"{where}: values", ndim=2, name="the values")
    q_num = read_vector(spec, "query", where, [1, 1, 2])
    if len(keys) != len(vals) or len(keys[0]) != len(q_num):
        raise ShapeError(f"{len(keys)} keys of size {len(keys[0])}, {len(vals)} values and a "
                         f"query of size {len(q_num)} do not fit", where=f"{where}: keys")
    n, dv = len(keys), len(vals[0])
    scores = [sp.Add(*[a * b for a, b in zip(q_num, k)]) for k in keys]
    best = max(range(n), key=lambda j: (scores[j], -j))
    tie = scores.count(scores[best]) > 1
    out = vals[best]
    j = sp.Symbol("j", integer=True, positive=True)
    d.note("Argmax attention: a = one-hot(argmax_j q.k_j), o = sum_j a_j v_j (all weight on "
           "the most similar key; on a tie, the first). Written with unit steps, "
           "a_j = prod_{l != j} H(s_j - s_l), so its derivatives are Dirac deltas.")
    d.sections.append(Section("Forward", [
        *[Step(sp.Symbol(f"s_{i + 1}"), [plus(*[times(a, b) for a, b in zip(q_num, keys[i])]),
                                         scores[i]]) for i in range(n)],
        Step(sp.Symbol("j^*"), [ArgMax(sp.Indexed("s", j), j), best + 1]),
        Step(sp.Symbol("a"), [matrix([int(i == best) for i in range(n)])]),
        Step(sp.Symbol("o"), [sp.Symbol(f"v_{best + 1}"), matrix(out)])]))
    sv = [sp.Symbol(f"s_{i + 1}", real=True) for i in range(n)]
    a = [sp.Mul(*[sp.Heaviside(sv[i] - sv[m], 0) for m in range(n) if m != i]) for i in range(n)]
    at = dict(zip(sv, scores))
    da = sp.Matrix([[sp.diff(ai, sl) for sl in sv] for ai in a])
    da_num = da.subs(at)
    Vt, Km, qm = sp.Matrix(vals).T, sp.Matrix(keys), sp.Matrix([q_num])
    do_ds = Vt * da_num
    do_dq = do_ds * Km
    do_dk = [do_ds[:, r] * qm for r in range(n)]
    steps = [Step(sp.Symbol(f"a_{best + 1}"), [a[best]]),
             Step(sp.Derivative(sp.Symbol(f"a_{best + 1}"), sv[best]), [da[best, best]],
                  "H'(u) = delta(u): every term carries a delta(s_j - s_l)"),
             Step(sp.Symbol("da/ds"), [da_num], "no two given scores tie, so every delta is "
                  "0" if not tie else "two scores tie: the deltas are undefined here"),
             Step(sp.Symbol("do/ds"), [times(sp.Symbol("V^T"), sp.Symbol("da/ds")), do_ds],
                  "o = V^T a"),
             Step(sp.Symbol("do/dq"), [times(sp.Symbol("do/ds"), sp.Symbol("K")), do_dq],
                  "s_l = q.k_l, so ds_l/dq = k_l")]
    steps += [Step(sp.Symbol(f"do/dk_{r + 1}"), [times(sp.Symbol(f"do/ds_{r + 1}"),
                                                       sp.Symbol("q^T")), do_dk[r]])
              for r in range(n)]
    steps += [Step(sp.Symbol(f"do/dv_{r + 1}"), [sp.eye(dv) if r == best else sp.zeros(dv)],
                   f"a_{r + 1} = {int(r == best)}") for r in range(n)]
    d.sections.append(Section("Backward", steps))
    d.note("Only the selected value v_j* receives a gradient (the identity); the queries and "
           "keys receive none, so training cannot learn which key to attend to. Softmax "
           "attention is smooth and passes gradient to all of them.")
    zero = all(v == 0 for v in do_dq) and all(v == 0 for m in do_dk for v in m)
    answer = {"scores": scores, "selected": best, "output": out}
    if tie or not zero:
        return Verdict("undecided", "two scores tie at the given query: the gradient is "
                       "undefined there (the claim holds off ties)"), answer
    return Verdict("proved", "do/dq and do/dk_j are sums of delta(s_j - s_l) terms, zero "
                   f"unless two scores tie; at the given numbers (scores {scores}) all are 0 "
                   f"and only v_{best + 1} gets the identity"), answer
