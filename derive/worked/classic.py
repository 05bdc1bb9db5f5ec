"""Classic non-gradient worked examples: the perceptron rule, k-nearest neighbours, decoding.

* ``perceptron``: Rosenblatt's rule ``w <- w + eta (y - y_hat) x`` on AND / OR / NAND / XOR
  (or given data) until an epoch makes no mistake; XOR never gets there, and the derivation
  proves why (no line separates it) and detects the cycle.
* ``knn``: distances (L1, L2 or both) from a query to every training point, the k nearest,
  and the majority vote (a tie goes to the class of the nearest tied neighbour).
* ``decoding``: greedy, beam and exhaustive search on a given tree of log-probabilities;
  with a ``target`` sequence, teacher forcing (training: the ground-truth previous token is
  fed at each step, the loss is the sum of -log p of the target tokens) beside free running
  (inference: the model's own previous prediction is fed, as greedy decoding does).
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Word, minus, plus, power, root, times, written
from derive.worked.common import (EXACT_NOTE, all_exact, array, key_choice, key_int, key_number, matrix,
                     products, said, symbol, tidy, with_approx)

W, B, ETA, X_, Y_, YHAT = sp.symbols("w b eta x y yhat")
_P = sp.Function("p")  # a token's probability given the prefix before it

_GATES = {
    "AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "NAND": [1, 1, 1, 0], "NOR": [1, 0, 0, 0],
    "XOR": [0, 1, 1, 0],
}
_INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]


# -- perceptron ----------------------------------------------------------------------------
@problem_kind("perceptron")
def perceptron(spec, where):
    """Perceptron learning rule, example by example, epoch by epoch."""
    check_keys(spec, {"kind", "title", "function", "X", "y", "w", "b", "lr", "epochs",
                      "step_at_zero"}, where)
    X, y, name = _data(spec, where)
    n = len(X[0])
    w = array(get(spec, "w", where, default=[0] * n), f"{where}: w", ndim=1, name="w")
    if len(w) != n:
        raise ShapeError(f"w has {len(w)} entries but inputs have {n}", where=f"{where}: w")
    b = key_number(spec, "b", where, sp.Integer(0))
    lr = key_number(spec, "lr", where, sp.Integer(1))
    epochs = key_int(spec, "epochs", where, 10)
    at_zero = key_choice(spec, "step_at_zero", where, (0, 1), 0)
    d = Derivation(title=get(spec, "title", where,
                             default=f"Perceptron on {name or 'the given data'}"),
                   kind="perceptron")
    d.note(f"Prediction y_hat = step(w . x + b) with step(z) = 1 for z > 0, 0 for z < 0 and "
           f"step(0) = {at_zero}. Update on every example: w <- w + eta (y - y_hat) x, "
           f"b <- b + eta (y - y_hat), eta = {said(lr)}.")
    if all_exact(X, w, b, lr):
        d.note(EXACT_NOTE)
    seen, converged = {}, False
    for epoch in range(1, epochs + 1):
        state = (tuple(w), b)
        if state in seen:
            d.sections.append(Section("Cycle", [], text=(
                f"The weights at the start of epoch {epoch} equal those at the start of epoch "
                f"{seen[state]}: the rule repeats forever and will never converge.")))
            break
        seen[state] = epoch
        w, b, mistakes = _epoch(d, X, y, w, b, lr, at_zero, epoch)
        if mistakes == 0:
            converged = True
            break
    d.sections.append(Section("Result", [Step(W, [matrix(w)]), Step(B, [b])], text=(
        f"Converged after {epoch} epoch(s): every example is classified correctly."
        if converged else f"Not converged after {epoch} epoch(s).")))
    if not converged:
        _xor_proof(d, X, y)
    d.result = {"w": w, "b": b, "converged": converged, "epochs": epoch}
    return d


def _data(spec, where):
    if "function" in spec:
        if "X" in spec or "y" in spec:
            raise InputError("give either 'function' or 'X' and 'y'", where=where)
        name = str(get(spec, "function", where)).upper()
        if name not in _GATES:
            raise InputError(f"unknown function {name!r} (known: {', '.join(_GATES)})",
                             where=f"{where}: function")
        return ([[sp.Integer(v) for v in x] for x in _INPUTS],
                [sp.Integer(v) for v in _GATES[name]], name)
    X = array(get(spec, "X", where), f"{where}: X", ndim=2, name="X")
    y = array(get(spec, "y", where), f"{where}: y", ndim=1, name="y")
    if len(y) != len(X):
        raise ShapeError(f"{len(X)} examples but {len(y)} labels", where=f"{where}: y")
    if any(v not in (0, 1) for v in y):
        raise InputError("labels must be 0 or 1", where=f"{where}: y")
    return X, y, None


def _epoch(d, X, y, w, b, lr, at_zero, epoch):
    steps, mistakes = [], 0
    for i, (x, target) in enumerate(zip(X, y)):
        z = tidy(sp.Add(*[wi * xi for wi, xi in zip(w, x)]) + b)
        pred = sp.Integer(1 if z > 0 else 0 if z < 0 else at_zero)
        err = target - pred
        x_i = sp.MatrixSymbol(f"x_{i + 1}", len(x), 1)
        dot = plus(*products(list(zip(w, x))).args[0].args, b) if len(x) > 1 else \
            plus(times(w[0], x[0]), b)
        steps.append(Step(symbol("z", i + 1),
                          [plus(sp.DotProduct(sp.MatrixSymbol("w", len(x), 1), x_i), B), dot, z],
                          f"x = ({', '.join(map(said, x))}), y = {target}, y_hat = {pred}"))
        if err != 0:
            mistakes += 1
            w = [tidy(wi + lr * err * xi) for wi, xi in zip(w, x)]
            b = tidy(b + lr * err)
            steps.append(Step(W, [plus(W, times(ETA, minus(Y_, YHAT), X_)), matrix(w)],
                              f"mistake: y - y_hat = {err}"))
            steps.append(Step(B, [plus(B, times(ETA, minus(Y_, YHAT))), b]))
    d.sections.append(Section(f"Epoch {epoch}", steps,
                              text=f"{mistakes} mistake(s) in this epoch."))
    return w, b, mistakes


def _xor_proof(d, X, y):
    """No (w1, w2, b) classifies XOR: the four inequalities contradict each other."""
    if [list(map(int, x)) for x in X] != _INPUTS or list(map(int, y)) != _GATES["XOR"]:
        return
    w1, w2 = sp.symbols("w_1 w_2")
    d.sections.append(Section("Why XOR cannot be learned", [
        Step(sp.Le(B, 0), [], "input (0, 0) must give 0"),
        Step(sp.Gt(plus(w2, B), 0), [], "input (0, 1) must give 1"),
        Step(sp.Gt(plus(w1, B), 0), [], "input (1, 0) must give 1"),
        Step(sp.Le(plus(w1, w2, B), 0), [], "input (1, 1) must give 0"),
        Step(sp.Gt(plus(w1, w2, times(2, B)), 0), [], "adding the middle two"),
        Step(sp.Gt(plus(w1, w2, B), -B), [],
             "that is, and -b >= 0 by the first line: this contradicts the last line, so no "
             "line separates XOR"),
    ], text="A perceptron outputs 1 exactly on one side of the line w . x + b = 0. XOR's "
            "positive points (0,1), (1,0) and negative points (0,0), (1,1) are not linearly "
            "separable, so the perceptron convergence theorem does not apply and the rule "
            "cycles. A hidden layer (e.g. XOR = AND(OR, NAND)) fixes it."))


# -- k nearest neighbours -----------------------------------------------------------------------
@problem_kind("knn")
def knn(spec, where):
    """k-nearest-neighbour classification of one or more queries."""
    check_keys(spec, {"kind", "title", "X", "y", "query", "k", "metric"}, where)
    X = array(get(spec, "X", where), f"{where}: X", ndim=2, name="X")
    labels = get(spec, "y", where, types=list)
    if len(labels) != len(X):
        raise ShapeError(f"{len(X)} training points but {len(labels)} labels", where=f"{where}: y")
    q = array(get(spec, "query", where), f"{where}: query", ndim=(1, 2), name="query")
    queries = q if isinstance(q[0], list) else [q]
    if len(queries[0]) != len(X[0]):
        raise ShapeError(f"queries have {len(queries[0])} features, training points "
                         f"{len(X[0])}", where=f"{where}: query")
    k = key_int(spec, "k", where, 1)
    if k > len(X):
        raise ShapeError(f"k = {k} but there are only {len(X)} training points",
                         where=f"{where}: k")
    metric = key_choice(spec, "metric", where, ("l1", "l2", "both"), "l2")
    d = Derivation(title=get(spec, "title", where, default=f"{k}-nearest neighbours"),
                   kind="knn")
    d.note("L1: sum_i |x_i - q_i|; L2: sqrt(sum_i (x_i - q_i)^2). Majority vote over the k "
           "nearest; a tied vote goes to the class of the nearest tied neighbour; equal "
           "distances keep the training order.")
    result = {}
    for m in (("l1", "l2") if metric == "both" else (metric,)):
        result[m] = [_classify(d, X, labels, qq, k, m, j, len(queries))
                     for j, qq in enumerate(queries)]
        if len(queries) == 1:
            result[m] = result[m][0]
    d.result = result if metric == "both" else result[metric]
    return d


def _classify(d, X, labels, q, k, metric, j, n_q):
    steps, dists = [], []
    for i, x in enumerate(X):
        if metric == "l1":
            terms = [sp.Abs(minus(a, b), evaluate=False) for a, b in zip(x, q)]
            dist = tidy(sp.Add(*[sp.Abs(a - b) for a, b in zip(x, q)]))
            rhs = [plus(*terms), *with_approx(dist)]
        else:
            terms = [power(minus(a, b), 2) for a, b in zip(x, q)]
            dist = tidy(sp.sqrt(sp.Add(*[(a - b) ** 2 for a, b in zip(x, q)])))
            rhs = [root(plus(*terms)), *with_approx(dist)]
        dists.append(dist)
        steps.append(Step(symbol("d", i + 1), rhs, f"label {labels[i]}"))
    order = sorted(range(len(X)), key=lambda i: (dists[i], i))[:k]
    votes = {}
    for i in order:
        votes[labels[i]] = votes.get(labels[i], 0) + 1
    top = max(votes.values())
    winner = next(labels[i] for i in order if votes[labels[i]] == top)
    steps.append(Step(Word("nearest"), [sp.Tuple(*[i + 1 for i in order])],
                      f"the {k} smallest distances"))
    steps.append(Step(Word("votes"), [sp.Dict({Word(str(lab)): c for lab, c in votes.items()})]))
    steps.append(Step(YHAT, [Word(str(winner))]))
    title = f"{metric.upper()} distance" + (f", query {j + 1}" if n_q > 1 else "")
    d.sections.append(Section(title, steps, text=f"Query q = ({', '.join(map(said, q))})."))
    return winner


# -- decoding ---------------------------------------------------------------------------------
@problem_kind("decoding")
def decoding(spec, where):
    """Greedy, beam and exhaustive search on a tree of next-token log-probabilities."""
    check_keys(spec, {"kind", "title", "tree", "beam", "target", "start"}, where)
    tree = _tree(get(spec, "tree", where, types=dict), f"{where}: tree")
    width = key_int(spec, "beam", where, 2)
    target = _target(spec, where, tree)
    start = str(get(spec, "start", where, types=(str, int), default="<sos>"))
    d = Derivation(title=get(spec, "title", where, default="Greedy, beam and exhaustive search"),
                   kind="decoding")
    d.note("A sequence's score is the sum of its tokens' log-probabilities (the log of the "
           "product of probabilities). A leaf ends the sequence.")
    greedy = _greedy(d, tree)
    beam = _beam(d, tree, width)
    best = _exhaustive(d, tree)
    d.sections.append(Section("Comparison", [
        Step(Word("greedy"), [_sequence(greedy[0]), *with_approx(greedy[1])]),
        Step(Word(f"beam ({width})"), [_sequence(beam[0]), *with_approx(beam[1])]),
        Step(Word("exhaustive"), [_sequence(best[0]), *with_approx(best[1])])],
        text="Greedy commits to the locally best token; beam search keeps the best few "
             "prefixes; only exhaustive search is guaranteed to find the best sequence."))
    d.result = {name: {"sequence": seq, "score": score}
                for name, (seq, score) in (("greedy", greedy), ("beam", beam),
                                           ("exhaustive", best))}
    if target is not None:
        d.result["teacher_forcing"] = _teacher_forcing(d, tree, target, start)
        d.result["free_running"] = _free_running(d, greedy[0], target, start)
    return d


def _target(spec, where, tree):
    """The ``target`` tokens, checked to be a path of the tree (None when absent)."""
    if "target" not in spec:
        return None
    raw = get(spec, "target", where, types=list)
    at = f"{where}: target"
    if not raw:
        raise InputError("the target sequence is empty", where=at)
    tokens, node = [], tree
    for t, token in enumerate(raw):
        if isinstance(token, bool) or not isinstance(token, (str, int)):
            raise InputError(f"a token is a word, got {token!r:.30}", where=f"{at}[{t}]")
        token = str(token)
        if node is None:
            raise InputError(f"the target has {len(raw)} tokens but the tree's sequence "
                             f"{' '.join(tokens)} ends after {t} (its last token is a leaf)",
                             where=at)
        if token not in node:
            after = f"after {' '.join(tokens)}" if tokens else "at the start"
            raise InputError(f"{token!r} is not a next token {after} (the tree has "
                             f"{', '.join(node)})", where=f"{at}[{t}]")
        tokens.append(token)
        node = node[token][1]
    return tokens


def _tree(node, where):
    """{token: {logp|p: number, next: {...}}} -> {token: (logp, subtree)}."""
    if not node:
        raise InputError("an empty set of next tokens", where=where)
    out = {}
    for token, entry in node.items():
        w = f"{where}.{token}"
        if not isinstance(entry, dict):
            raise InputError("expected {logp: number, next: {...}} or {p: ...}", where=w)
        check_keys(entry, {"logp", "p", "next"}, w)
        if ("logp" in entry) == ("p" in entry):
            raise InputError("give exactly one of 'logp' and 'p'", where=w)
        if "p" in entry:
            p = key_number(entry, "p", w)
            if not 0 < p <= 1:
                raise InputError(f"probability must be in (0, 1], got {p}", where=f"{w}.p")
            logp = sp.log(p)
        else:
            logp = key_number(entry, "logp", w)
            if logp > 0:
                raise InputError(f"a log-probability cannot be positive, got {logp}",
                                 where=f"{w}.logp")
        nxt = entry.get("next")
        out[str(token)] = (logp, _tree(nxt, f"{w}.next") if nxt else None)
    return out


def _greedy(d, tree):
    seq, score, steps, node = [], sp.Integer(0), [], tree
    while node:
        token = max(node, key=lambda t: node[t][0])
        options = sp.Dict({Word(t): lp for t, (lp, _) in node.items()})
        score = score + node[token][0]
        seq.append(token)
        steps.append(Step(Word(f"step {len(seq)}"), [options, Word(token)],
                          "the log-probabilities of the next tokens, then the most probable"))
        node = node[token][1]
    steps.append(Step(Word("score of " + " ".join(seq)), [*with_approx(tidy(score))]))
    d.sections.append(Section("Greedy", steps))
    return seq, tidy(score)


def _beam(d, tree, width):
    beams = [([], sp.Integer(0), tree)]  # (prefix, score, subtree or None when finished)
    steps, depth = [], 0
    while any(node for _, _, node in beams):
        depth += 1
        cands = []
        for seq, score, node in beams:
            if node is None:
                cands.append((seq, score, None))
                continue
            cands += [(seq + [t], score + lp, sub) for t, (lp, sub) in node.items()]
        cands.sort(key=lambda c: -c[1])
        beams = cands[:width]
        listed = sp.Dict({_sequence(s): tidy(v) for s, v, _ in cands})
        steps.append(Step(Word(f"depth {depth}"), [listed,
                                                   sp.Tuple(*[_sequence(s) for s, _, _ in beams])],
                          f"candidates, then the best {width} kept (finished sequences compete)"))
    seq, score, _ = beams[0]
    d.sections.append(Section(f"Beam search (width {width})", steps))
    return seq, tidy(score)


def _exhaustive(d, tree):
    paths = []

    def walk(node, seq, score):
        for t, (lp, sub) in node.items():
            if sub:
                walk(sub, seq + [t], score + lp)
            else:
                paths.append((seq + [t], tidy(score + lp)))

    walk(tree, [], sp.Integer(0))
    steps = [Step(_sequence(s), [*with_approx(v)]) for s, v in paths]
    best = max(paths, key=lambda p: p[1])
    d.sections.append(Section("Exhaustive search (every complete sequence)", steps,
                              text=f"The best of {len(paths)} sequences is "
                                   f"{' '.join(best[0])}."))
    return best


def _sequence(seq):
    return Word(" ".join(seq))


def _teacher_forcing(d, tree, target, start):
    """Training: at step t the decoder is fed the true token y_(t-1), whatever it predicted."""
    steps, node, losses, predictions = [], tree, [], []
    fed = [start] + target[:-1]
    for t, (given, token) in enumerate(zip(fed, target), 1):
        best = max(node, key=lambda k: node[k][0])
        logp = node[token][0]
        losses.append(sp.log(1 / logp.args[0]) if isinstance(logp, sp.log) else tidy(-logp))
        predictions.append(best)
        steps += [
            Step(symbol("w", t), [Word(given)], "fed: " + (
                "the start token" if t == 1 else f"the true previous token y_{t - 1}")),
            Step(Word(f"prediction {t}"),
                 [sp.Dict({Word(k): lp for k, (lp, _) in node.items()}), Word(best)],
                 "the log-probabilities of the next token, then the most probable"),
            Step(symbol("ell", t), [sp.Mul(-1, sp.log(_P(Word(token))), evaluate=False),
                                    written(sp.Mul(-1, logp, evaluate=False)),
                                    *with_approx(losses[-1])],
                 f"the true token y_{t} = {token}" + (
                     "" if best == token else f"; the model said {best}, but y_{t} is fed next"))]
        node = node[token][1]
    total = tidy(sp.Add(*losses))
    steps.append(Step(sp.Symbol("L"), [plus(*losses), *with_approx(total)],
                      "the sum over the steps of -log p(true token)"))
    text = ("Training feeds the ground-truth previous token at every step (the model's own "
            "prediction is never fed back), so every step's loss is -log p of the true token "
            f"given the true prefix. Target: {' '.join(target)}.")
    if node is not None:
        text += " The target stops before a leaf: the loss covers its tokens only."
    d.sections.append(Section("Teacher forcing (training)", steps, text=text))
    return {"inputs": fed, "predictions": predictions, "loss": total}


def _free_running(d, greedy, target, start):
    """Inference: the decoder is fed its own previous prediction (greedy decoding)."""
    fed = [start] + greedy[:-1]
    forced = [start] + target[:-1]
    steps = []
    for t, given in enumerate(fed, 1):
        same = t <= len(forced) and forced[t - 1] == given
        note = "the start token" if t == 1 else f"the model's own prediction at step {t - 1}"
        if t <= len(forced) and not same:
            note += f"; teacher forcing fed {forced[t - 1]} here"
        steps.append(Step(symbol("w", t), [Word(given)], note))
    steps.append(Step(Word("output"), [_sequence(greedy)],
                      "the greedy sequence" + ("" if greedy == target else
                                               f", not the target {' '.join(target)}")))
    d.sections.append(Section("Free running (inference, greedy)", steps, text=(
        "At inference there is no target: each step is fed the token the model chose at the "
        "step before (its most probable one, as in greedy search), so an early mistake is fed "
        "back and changes what follows.")))
    return {"inputs": fed, "predictions": greedy}
