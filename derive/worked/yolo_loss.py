"""The YOLO v1 loss by hand (the ``loss`` task of the ``detection`` kind).

The ground truth is encoded as in the ``encode`` task; in each cell holding an object the
predictor whose box has the highest IoU with it is responsible; the loss is the paper's
sum of squares

    lambda_coord sum [(x - x^)^2 + (y - y^)^2]
    + lambda_coord sum [(s_w - s^_w)^2 + (s_h - s^_h)^2] + sum (C - C^)^2
    + lambda_noobj sum_(not responsible) C^2 + sum_(cells with an object) sum_c (p_c - p^_c)^2

(``s_w = sqrt(w)``, hats are targets), and its gradient with respect to every prediction is
derived from the responsible predictor's terms by SymPy and evaluated.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Section, Step
from derive.errors import ShapeError
from derive.problem import check_keys, get
from derive.stepforms import Word, minus, over, plus, power, times
from derive.worked.common import (all_exact, array, key_choice, key_number, matrix, said, symbol,
                                  tidy, with_approx)
from derive.worked.detection import (COMMON, ENCODE_KEYS, LAYOUT_NOTE, _boxes, _classes, _encode,
                                     _image, _iou_steps, _sizes, _start, corners)

LC, LN = sp.symbols("lambda_coord lambda_noobj")
PRED = sp.symbols("x y s_w s_h C")  # one predictor's outputs, s_w = sqrt(w)
TRUE = sp.symbols("xhat yhat shat_w shat_h Chat")  # its targets (hats, as in the paper)
P_C, PHAT_C, C_IDX = sp.symbols("p_c phat_c c")
LOSS_KEYS = ENCODE_KEYS | {"B", "predictions", "lambda_coord", "lambda_noobj",
                           "confidence_target"}


def loss_task(spec, where):
    check_keys(spec, COMMON | LOSS_KEYS, where)
    S, B, C = _sizes(spec, where)
    boxes, fmt = _boxes(spec, where)
    classes = _classes(spec, where, len(boxes), C)
    image = _image(spec, where)
    pred = _predictions(spec, where, S, B, C)
    lc = key_number(spec, "lambda_coord", where, sp.Integer(5))
    ln = key_number(spec, "lambda_noobj", where, sp.Rational(1, 2))
    conf = key_choice(spec, "confidence_target", where, ("iou", "one"), "iou")
    d = _start(spec, where, "The YOLO v1 loss and its gradient",
               all_exact(boxes, image, pred, lc, ln))
    d.note(LAYOUT_NOTE)
    d.note("Hats mark targets, as in the paper: x is predicted, x-hat is the ground truth; "
           "s_w = sqrt(w) and s_h = sqrt(h) are the network's size outputs.")
    cells = _encode(d, boxes, fmt, classes, image, S, C, where)
    chosen = [_responsible(d, cell, pred, S, B) for cell in cells]
    d.note(f"lambda_coord = {said(lc)}, lambda_noobj = {said(ln)}. The confidence target of a "
           "responsible predictor is " + ("its IoU with the ground truth (as in the paper), "
                                          "a constant for the gradient" if conf == "iou" else
                                          "1") + "; every other predictor's target is 0.")
    terms = _terms(d, cells, chosen, pred, B, C, lc, ln, conf)
    grad = _gradient(d, cells, chosen, pred, S, B, C, lc, ln, conf)
    d.result = {"loss": terms["total"], **{k: v for k, v in terms.items() if k != "total"},
                "responsible": [{"box": c["box"], "cell": [c["row"], c["col"]], "predictor": j}
                                for c, (j, _) in zip(cells, chosen)],
                "gradient": grad}
    return d


def _predictions(spec, where, S, B, C):
    pred = array(get(spec, "predictions", where, types=list), f"{where}: predictions",
                 ndim=3, name="predictions")
    want = (S, S, B * 5 + C)
    got = (len(pred), len(pred[0]), len(pred[0][0]))
    if got != want:
        raise ShapeError(f"predictions must be S x S x (B*5 + C) = {'x'.join(map(str, want))}, "
                         f"got {'x'.join(map(str, got))}", where=f"{where}: predictions")
    return pred


def _predicted_box(p, row, col, S):
    """A predictor's (x, y, sqrt w, sqrt h) as (cx, cy, w, h) in fractions of the image."""
    x, y, sw, sh = p[:4]
    return [tidy((col + x) / S), tidy((row + y) / S), tidy(sw ** 2), tidy(sh ** 2)]


def _responsible(d, cell, pred, S, B):
    """(index of the predictor with the highest IoU, that IoU), with the steps shown."""
    row, col = cell["row"], cell["col"]
    truth = [tidy((col + cell["x"]) / S), tidy((row + cell["y"]) / S), cell["w"], cell["h"]]
    steps, ious = [Step(Word("target box"), [sp.Tuple(*truth)],
                        "(cx, cy, w, h) in the image: ((column + x)/S, (row + y)/S, w, h)")], []
    for j in range(B):
        p = pred[row][col][5 * j:5 * j + 5]
        box = _predicted_box(p, row, col, S)
        steps.append(Step(Word(f"predictor {j + 1} box"), [sp.Tuple(
            over(plus(col, p[0]), S), over(plus(row, p[1]), S), power(p[2], 2), power(p[3], 2)),
            sp.Tuple(*box)], "(cx, cy, w, h) from (x, y, sqrt(w), sqrt(h))"))
        value, iou_steps = _iou_steps(corners(box, "centre"), corners(truth, "centre"),
                                      "corners", names=(f"p{j + 1}", "t"))
        steps += iou_steps[:-1] + [Step(symbol("IoU", j + 1), iou_steps[-1].rhs)]
        ious.append(value)
    best = max(range(B), key=lambda j: (ious[j], -j))
    steps.append(Step(Word("responsible"), [Word(f"predictor {best + 1}")],
                      "the highest IoU" + (" (a tie goes to the first)"
                                           if ious.count(ious[best]) > 1 else "")))
    d.sections.append(Section(f"Cell (row {row}, column {col}): the responsible predictor",
                              steps, text=f"Box {cell['box'] + 1}'s centre is in this cell."))
    return best, ious[best]


def _targets(cell, iou_value, conf):
    return [cell["x"], cell["y"], cell["sqrt_w"], cell["sqrt_h"],
            iou_value if conf == "iou" else sp.Integer(1)]


def _squares(pairs):
    return plus(*[power(minus(a, b), 2) for a, b in pairs])


def _terms(d, cells, chosen, pred, B, C, lc, ln, conf):
    coord, size, obj, cls = [], [], [], []
    for cell, (j, v) in zip(cells, chosen):
        p = pred[cell["row"]][cell["col"]]
        t = _targets(cell, v, conf)
        q = p[5 * j:5 * j + 5]
        coord.append(list(zip(q[:2], t[:2])))
        size.append(list(zip(q[2:4], t[2:4])))
        obj.append([(q[4], t[4])])
        cls.append(list(zip(p[5 * B:], cell["one_hot"])))
    busy = {(c["row"], c["col"], j) for c, (j, _) in zip(cells, chosen)}
    noobj = [p[5 * j + 4] for r, row in enumerate(pred) for c, p in enumerate(row)
             for j in range(B) if (r, c, j) not in busy]
    flat = lambda groups: [pair for g in groups for pair in g]  # noqa: E731
    value = lambda pairs: tidy(sp.Add(*[(a - b) ** 2 for a, b in pairs]))  # noqa: E731
    x_, y_, sw, sh, c_ = PRED
    xh, yh, swh, shh, ch = TRUE
    rows = [("coord", "centre, responsible predictors",
             times(LC, plus(power(minus(x_, xh), 2), power(minus(y_, yh), 2))), lc, flat(coord)),
            ("size", "size, responsible predictors",
             times(LC, plus(power(minus(sw, swh), 2), power(minus(sh, shh), 2))), lc, flat(size)),
            ("obj", "confidence, responsible", power(minus(c_, ch), 2), 1, flat(obj)),
            ("noobj", "confidence, not responsible", times(LN, power(c_, 2)), ln,
             [(v, 0) for v in noobj]),
            ("class", "class probabilities, cells with an object",
             sp.Sum((P_C - PHAT_C) ** 2, (C_IDX, 1, C)), 1, flat(cls))]
    steps, out = [], {}
    for key, what, form, weight, pairs in rows:
        out[key] = tidy(weight * value(pairs)) if pairs else sp.Integer(0)
        written_ = (times(weight, _squares(pairs)) if weight != 1 else _squares(pairs)) \
            if pairs else sp.Integer(0)
        steps.append(Step(symbol("L", key), [form, written_, *with_approx(out[key])],
                          what + ("" if pairs else ": no such predictor")))
    out["total"] = tidy(sp.Add(*out.values()))
    steps.append(Step(sp.Symbol("L"), [plus(*[symbol("L", k) for k, *_ in rows]),
                                       plus(*[out[k] for k, *_ in rows]),
                                       *with_approx(out["total"])]))
    d.sections.append(Section("The loss, term by term", steps, text=(
        "The centre, size and confidence terms sum over the responsible predictors, the "
        "no-object term over every other predictor (target confidence 0), the class term "
        "over the cells that hold an object.")))
    return out


def _gradient(d, cells, chosen, pred, S, B, C, lc, ln, conf):
    """dL/d(prediction tensor); the steps for each responsible predictor, derived by SymPy."""
    grad = [[[sp.Integer(0)] * (5 * B + C) for _ in range(S)] for _ in range(S)]
    x_, y_, sw, sh, c_ = PRED
    xh, yh, swh, shh, ch = TRUE
    l_resp = (LC * ((x_ - xh) ** 2 + (y_ - yh) ** 2) + LC * ((sw - swh) ** 2 + (sh - shh) ** 2)
              + (c_ - ch) ** 2)
    l_other = LN * c_ ** 2
    steps = [Step(sp.Symbol("L_j"), [l_resp], "the terms of a responsible predictor j")]
    busy = {}
    for cell, (j, v) in zip(cells, chosen):
        r, c = cell["row"], cell["col"]
        busy[(r, c, j)] = True
        q, t = pred[r][c][5 * j:5 * j + 5], _targets(cell, v, conf)
        at = {**dict(zip(PRED, q)), **dict(zip(TRUE, t)), LC: lc}
        for k, s in enumerate(PRED):
            form = sp.factor(sp.diff(l_resp, s))
            weight = sp.diff(form, s)  # the derivative is weight * (s - s-hat)
            if sp.expand(form - weight * (s - TRUE[k])) != 0:
                raise AssertionError(f"dL/d{s} is not linear in {s} - {TRUE[k]}: {form}")
            value = tidy(form.xreplace(at))
            grad[r][c][5 * j + k] = value
            steps.append(Step(sp.Derivative(sp.Symbol("L"), s), [
                times(*_factors(weight), minus(s, TRUE[k])),
                times(*_factors(weight, at), minus(q[k], t[k])),
                *with_approx(value)], f"cell ({r}, {c}), predictor {j + 1}"))
        for k in range(C):
            grad[r][c][5 * B + k] = tidy(2 * (pred[r][c][5 * B + k] - cell["one_hot"][k]))
    if sp.diff(l_other, c_) != 2 * LN * c_:
        raise AssertionError("dL/dC of a predictor that is not responsible is not 2 lambda C")
    steps.append(Step(sp.Derivative(sp.Symbol("L"), c_), [times(2, LN, c_)],
                      "for every predictor that is not responsible; its x, y, sqrt(w), "
                      "sqrt(h) get no gradient"))
    for r in range(S):
        for c in range(S):
            for j in range(B):
                if (r, c, j) not in busy:
                    grad[r][c][5 * j + 4] = tidy(2 * ln * pred[r][c][5 * j + 4])
    others = [(r, c, j) for r in range(S) for c in range(S) for j in range(B)
              if (r, c, j) not in busy]
    steps += [Step(sp.Derivative(sp.Symbol("L"), c_),
                   [times(2, ln, pred[r][c][5 * j + 4]), *with_approx(grad[r][c][5 * j + 4])],
                   f"cell ({r}, {c}), predictor {j + 1}") for r, c, j in others]
    for cell in cells:
        r, c = cell["row"], cell["col"]
        steps.append(Step(sp.Derivative(sp.Symbol("L"), P_C), [
            times(2, minus(P_C, PHAT_C)),
            matrix([times(2, minus(a, b)) for a, b in zip(pred[r][c][5 * B:], cell["one_hot"])]),
            matrix(grad[r][c][5 * B:])], f"cell ({r}, {c}), the classes c = 1..{C} in turn"))
    d.sections.append(Section("The gradient with respect to the predictions", steps, text=(
        "Each term is a square, so each partial derivative is 2 (prediction - target) times "
        "its weight; derived symbolically from L_j, then evaluated. Every other entry of "
        "dL/d(predictions) is 0.")))
    return grad


def _factors(weight, at=None):
    """``2 lambda_coord`` as the factors 2, lambda_coord (with the values ``at``: 2, 5)."""
    coeff, rest = weight.as_coeff_Mul()
    if rest == 1:
        return [coeff]
    return [coeff, rest.xreplace(at) if at else rest]
