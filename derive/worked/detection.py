"""Object detection by hand, YOLO v1 (Redmon et al. 2016): one ``detection`` kind, five tasks.

* ``output``: the S x S x (B*5 + C) output tensor of a config, the layout of one cell, and
  the head's shapes and parameters (a linear head from a feature vector, as in the paper,
  or a 1x1 convolution on an S x S feature map);
* ``encode``: ground-truth boxes into the target tensor: the cell holding the box centre is
  responsible, the centre's offsets in that cell, sqrt(w), sqrt(h), the class one-hot;
* ``iou``: intersection over union of two boxes (0 when they do not overlap);
* ``loss``: the YOLO v1 sum-squared loss (lambda_coord, lambda_noobj) on a small tensor of
  predictions, the responsible predictor of each object (highest IoU), and the gradient of
  the loss with respect to every prediction, derived symbolically and evaluated;
* ``nms``: non-maximum suppression, step by step, per class.

Boxes are ``[x1, y1, x2, y2]`` (``format: corners``, the default) or ``[cx, cy, w, h]``
(``format: centre``). The helpers :func:`iou` and :func:`nms` are the exact arithmetic the
worked steps show; ``dv.solve({"kind": "detection", "task": ..., ...})`` is the worked form.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import MaxOf, Word, minus, over, plus, root, times
from derive.worked.common import (EXACT_NOTE, all_exact, array, key_choice, key_int, key_number,
                                  matrix, said, symbol, tidy, with_approx)

__all__ = ["corners", "iou", "nms"]

TASKS = ("output", "encode", "iou", "loss", "nms")
FORMATS = ("corners", "centre")
COMMON = {"kind", "title", "task"}
IOU_S, W_I, H_I, A_I, A_U = sp.symbols("IoU w_I h_I A_I A_U")
LAYOUT_NOTE = ("Each cell's vector holds, for each of its B predictors, (x, y, sqrt(w), "
               "sqrt(h), confidence), then C class probabilities P(class | object): x, y "
               "are the box centre's offsets inside the cell (0..1), w, h fractions of the "
               "image (the network predicts their square roots, as in the paper).")


@problem_kind("detection")
def detection(spec, where):
    """YOLO v1 by hand: ``task`` is output, encode, iou, loss or nms."""
    get(spec, "task", where)
    task = key_choice(spec, "task", where, TASKS, None)
    if task == "loss":
        from derive.worked.yolo_loss import loss_task  # it reads this module's steps

        return loss_task(spec, where)
    return {"output": _output, "encode": _encode_task, "iou": _iou_task,
            "nms": _nms_task}[task](spec, where)


# -- plain exact helpers (the arithmetic of the steps) -----------------------------------------
def corners(box, fmt="corners"):
    """``[x1, y1, x2, y2]`` of a box given in ``fmt``."""
    if fmt == "corners":
        return list(box)
    cx, cy, w, h = box
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def iou(a, b, fmt="corners"):
    """Intersection over union of two boxes, exact for exact inputs (0 when they do not
    overlap; both boxes of zero area: 0)."""
    a, b = corners(a, fmt), corners(b, fmt)
    inter = _overlap(a[0], a[2], b[0], b[2]) * _overlap(a[1], a[3], b[1], b[3])
    union = _area(a) + _area(b) - inter
    return sp.Integer(0) if union == 0 else tidy(inter / union)


def nms(boxes, scores, threshold=sp.Rational(1, 2), classes=None, fmt="corners"):
    """Indices (0-based) kept by non-maximum suppression, in order of decreasing score; with
    ``classes`` each class is suppressed on its own (boxes of other classes never compete).
    A box is suppressed when its IoU with a kept box is greater than ``threshold``."""
    classes = classes or [0] * len(boxes)
    kept = []
    for cls in dict.fromkeys(classes):
        kept += [i for i, _ in _suppress([i for i, c in enumerate(classes) if c == cls],
                                         boxes, scores, threshold, fmt)[0]]
    return sorted(kept, key=lambda i: (-scores[i], i))


def _overlap(lo_a, hi_a, lo_b, hi_b):
    return sp.Max(0, sp.Min(hi_a, hi_b) - sp.Max(lo_a, lo_b))


def _area(c):
    return (c[2] - c[0]) * (c[3] - c[1])


def _suppress(members, boxes, scores, threshold, fmt):
    """``([(kept index, [(other, iou, suppressed)])], order)`` of one class."""
    order = sorted(members, key=lambda i: (-scores[i], i))
    left, rounds = list(order), []
    while left:
        top, rest = left[0], left[1:]
        checks = [(j, iou(boxes[top], boxes[j], fmt)) for j in rest]
        checks = [(j, v, bool(v > threshold)) for j, v in checks]
        rounds.append((top, checks))
        left = [j for j, _, gone in checks if not gone]
    return rounds, order


# -- reading -------------------------------------------------------------------------------------
def _sizes(spec, where, keys=("S", "B", "C")):
    return [key_int(spec, k, where) for k in keys]


def _boxes(spec, where, key="boxes", count=None):
    fmt = key_choice(spec, "format", where, FORMATS, "corners")
    boxes = array(get(spec, key, where, types=list), f"{where}: {key}", ndim=2, name=key)
    if len(boxes[0]) != 4:
        raise ShapeError(f"a box has 4 numbers ({_form(fmt)}), got {len(boxes[0])}",
                         where=f"{where}: {key}")
    if count is not None and len(boxes) != count:
        raise ShapeError(f"expected {count} boxes, got {len(boxes)}", where=f"{where}: {key}")
    for i, box in enumerate(boxes):
        w, h = (box[2] - box[0], box[3] - box[1]) if fmt == "corners" else box[2:]
        for size, name in ((w, "width"), (h, "height")):
            if size < 0:
                raise InputError(f"box {i + 1} has a negative {name} ({said(tidy(size))}); "
                                 f"boxes are {_form(fmt)}", where=f"{where}: {key}[{i}]")
    return boxes, fmt


def _form(fmt):
    return "[x1, y1, x2, y2], corners" if fmt == "corners" else "[cx, cy, w, h], centre and size"


def _classes(spec, where, n, C, required=True):
    if "classes" not in spec and not required:
        return None
    labels = get(spec, "classes", where, types=list)
    if len(labels) != n:
        raise ShapeError(f"{n} boxes but {len(labels)} classes", where=f"{where}: classes")
    for i, c in enumerate(labels):
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < (C or 10 ** 9):
            rng = f"0..{C - 1}" if C else "0 or more"
            raise InputError(f"a class is an integer in {rng} (0-based), got {c!r:.30}",
                             where=f"{where}: classes[{i}]")
    return labels


def _start(spec, where, title, exact):
    d = Derivation(title=get(spec, "title", where, default=title), kind="detection")
    if exact:
        d.note(EXACT_NOTE)
    return d


# -- output --------------------------------------------------------------------------------------
def _output(spec, where):
    check_keys(spec, COMMON | {"S", "B", "C", "in_features", "in_channels", "image"}, where)
    S, B, C = _sizes(spec, where)
    if "in_features" in spec and "in_channels" in spec:
        raise InputError("give in_features (a linear head) or in_channels (a 1x1 conv head), "
                         "not both", where=where)
    D = B * 5 + C
    d = _start(spec, where, f"YOLO v1 output for S = {S}, B = {B}, C = {C}", True)
    d.note(LAYOUT_NOTE)
    steps = [Step(sp.Symbol("D"), [plus(times(B, 5), C), D],
                  "numbers per cell: B boxes of 5 numbers, then C class probabilities"),
             Step(Word("output shape"), [Word(f"{S} x {S} x {D}")]),
             Step(sp.Symbol("N_out"), [times(S, S, D), S * S * D], "numbers in the output")]
    layout = [(f"box {b + 1}", f"{5 * b + 1}..{5 * b + 5}", "x, y, sqrt(w), sqrt(h), confidence")
              for b in range(B)] + [("classes", f"{5 * B + 1}..{D}", f"P(class 1..{C} | object)")]
    steps += [Step(Word(name), [Word(f"entries {span}")], what) for name, span, what in layout]
    d.sections.append(Section("The output tensor", steps))
    result = {"shape": [S, S, D], "size": S * S * D, "per_cell": D}
    if "image" in spec:
        image = key_int(spec, "image", where)
        cell = sp.Rational(image, S)
        d.sections.append(Section("The grid on the image", [Step(Word("cell size"), [
            over(image, S), *with_approx(cell)], "pixels per cell side")]))
        result["cell_size"] = cell
    head = _head(spec, where, S, D)
    if head:
        d.sections.append(head[0])
        result.update(head[1])
    d.result = result
    return d


def _head(spec, where, S, D):
    if "in_features" in spec:
        n = key_int(spec, "in_features", where)
        out = S * S * D
        steps = [Step(Word("weight shape"), [Word(f"{out} x {n}")],
                      f"a linear layer from the {n}-vector to all S*S*D = {out} outputs, "
                      "reshaped to S x S x D"),
                 Step(Word("weights"), [times(out, n), out * n]),
                 Step(Word("biases"), [out]),
                 Step(Word("parameters"), [plus(out * n, out), out * n + out])]
        return (Section("The head: a linear layer (as in the paper)", steps),
                {"head": "linear", "weights": out * n, "biases": out, "parameters": out * n + out})
    if "in_channels" in spec:
        n = key_int(spec, "in_channels", where)
        steps = [Step(Word("input"), [Word(f"{S} x {S} x {n}")],
                      "the backbone's last feature map must already be S x S"),
                 Step(Word("kernel shape"), [Word(f"{D} x {n} x 1 x 1")],
                      "one 1x1 filter per output number of a cell, shared by every cell"),
                 Step(Word("weights"), [times(D, n), D * n]),
                 Step(Word("biases"), [D]),
                 Step(Word("parameters"), [plus(D * n, D), D * n + D])]
        return (Section("The head: a 1x1 convolution", steps),
                {"head": "conv1x1", "weights": D * n, "biases": D, "parameters": D * n + D})
    return None


# -- encode --------------------------------------------------------------------------------------
ENCODE_KEYS = {"S", "C", "boxes", "classes", "format", "image"}


def _encode_task(spec, where):
    check_keys(spec, COMMON | ENCODE_KEYS, where)
    S, C = _sizes(spec, where, ("S", "C"))
    boxes, fmt = _boxes(spec, where)
    classes = _classes(spec, where, len(boxes), C)
    image = _image(spec, where)
    d = _start(spec, where, "Encoding ground-truth boxes for YOLO v1", all_exact(boxes, image))
    cells = _encode(d, boxes, fmt, classes, image, S, C, where)
    target = [[[sp.Integer(0)] * (5 + C) for _ in range(S)] for _ in range(S)]
    for c in cells:
        target[c["row"]][c["col"]] = [c["x"], c["y"], c["sqrt_w"], c["sqrt_h"], sp.Integer(1),
                                      *c["one_hot"]]
    d.note(f"The target tensor is S x S x (5 + C) = {S} x {S} x {5 + C}: (x, y, sqrt(w), "
           "sqrt(h), 1, one-hot class) in a responsible cell, zeros elsewhere; each of the "
           "cell's B predictors is compared with it, and the loss picks the responsible one.")
    d.result = {"cells": cells, "target": target}
    return d


def _image(spec, where):
    raw = get(spec, "image", where, default=1)
    size = array(raw, f"{where}: image", ndim=(0, 1), name="image")
    size = size if isinstance(size, list) else [size, size]
    if len(size) != 2 or any(v <= 0 for v in size):
        raise InputError("image is a positive size or [width, height]", where=f"{where}: image")
    return size


def _encode(d, boxes, fmt, classes, image, S, C, where):
    d.note("The cell whose square holds the box centre is responsible for the box: column "
           "floor(S cx / W), row floor(S cy / H), counted from 0 at the top left (a centre "
           "on the far edge belongs to the last cell). x, y are the centre's offsets inside "
           "that cell; w, h are fractions of the image.")
    cells, taken = [], {}
    for i, (box, cls) in enumerate(zip(boxes, classes)):
        cell, steps = _encode_box(box, fmt, cls, image, S, C, f"{where}: boxes[{i}]")
        cell["box"] = i
        text = f"Box {i + 1}, class {cls}."
        key = (cell["row"], cell["col"])
        if key in taken:
            text += (f" Its centre is in the cell of box {taken[key] + 1}: a YOLO v1 cell "
                     "holds one object, so this box is not encoded (the first one stays).")
        else:
            taken[key] = i
            cells.append(cell)
        d.sections.append(Section(f"Box {i + 1}", steps, text=text))
    return cells


def _encode_box(box, fmt, cls, image, S, C, where):
    W_, H_ = image
    x1, y1, x2, y2 = corners(box, fmt)
    cx, cy, w, h = (tidy((x1 + x2) / 2), tidy((y1 + y2) / 2), tidy(x2 - x1), tidy(y2 - y1))
    steps = []
    if fmt == "corners":
        steps += [Step(sp.Symbol("c_x"), [over(plus(x1, x2), 2), cx]),
                  Step(sp.Symbol("c_y"), [over(plus(y1, y2), 2), cy]),
                  Step(sp.Symbol("w"), [minus(x2, x1), w]),
                  Step(sp.Symbol("h"), [minus(y2, y1), h])]
    fx, fy, fw, fh = (tidy(cx / W_), tidy(cy / H_), tidy(w / W_), tidy(h / H_))
    if not (0 <= fx <= 1 and 0 <= fy <= 1):
        raise InputError("the box centre lies outside the image", where=where)
    if image != [1, 1]:
        steps += [Step(sp.Symbol(f"{n}_n"), [over(v, s), *with_approx(f)])
                  for n, v, s, f in (("c_x", cx, W_, fx), ("c_y", cy, H_, fy), ("w", w, W_, fw),
                                     ("h", h, H_, fh))]
    sub = "" if image == [1, 1] else "_n"
    col, row = min(int(sp.floor(S * fx)), S - 1), min(int(sp.floor(S * fy)), S - 1)
    x, y = tidy(S * fx - col), tidy(S * fy - row)
    one_hot = [sp.Integer(int(c == cls)) for c in range(C)]
    steps += [Step(Word("column"), [sp.floor(times(S, fx), evaluate=False), col],
                   "the centre's column, counted from 0"),
              Step(Word("row"), [sp.floor(times(S, fy), evaluate=False), row],
                   "the centre's row, counted from 0"),
              Step(sp.Symbol("x"), [minus(times(S, fx), col), *with_approx(x)]),
              Step(sp.Symbol("y"), [minus(times(S, fy), row), *with_approx(y)]),
              Step(sp.sqrt(sp.Symbol(f"w{sub}", positive=True)),
                   [root(fw), *with_approx(tidy(sp.sqrt(fw)))]),
              Step(sp.sqrt(sp.Symbol(f"h{sub}", positive=True)),
                   [root(fh), *with_approx(tidy(sp.sqrt(fh)))]),
              Step(Word("class one-hot"), [matrix(one_hot)], f"class {cls} of 0..{C - 1}")]
    cell = {"row": row, "col": col, "x": x, "y": y, "w": fw, "h": fh,
            "sqrt_w": tidy(sp.sqrt(fw)), "sqrt_h": tidy(sp.sqrt(fh)), "class": cls,
            "one_hot": one_hot}
    return cell, steps


# -- iou -----------------------------------------------------------------------------------------
def _iou_task(spec, where):
    check_keys(spec, COMMON | {"boxes", "format"}, where)
    (a, b), fmt = _boxes(spec, where, count=2)
    d = _start(spec, where, "Intersection over union", all_exact([a, b]))
    value, steps = _iou_steps(a, b, fmt)
    d.sections.append(Section("IoU", steps, text=(
        f"Box a = {_text(a)}, box b = {_text(b)} ({_form(fmt)}).")))
    d.result = value
    return d


def _text(box):
    return "(" + ", ".join(said(v) for v in box) + ")"


def _iou_steps(a, b, fmt, names=("a", "b")):
    """The written steps of IoU(a, b) and its value."""
    steps = []
    if fmt == "centre":
        a, b = [_as_corners(box, n, steps) for box, n in ((a, names[0]), (b, names[1]))]
    dx = tidy(sp.Min(a[2], b[2]) - sp.Max(a[0], b[0]))
    dy = tidy(sp.Min(a[3], b[3]) - sp.Max(a[1], b[1]))
    wi, hi = sp.Max(0, dx), sp.Max(0, dy)
    area_a, area_b = tidy(_area(a)), tidy(_area(b))
    inter = tidy(wi * hi)
    union = tidy(area_a + area_b - inter)
    value = sp.Integer(0) if union == 0 else tidy(inter / union)
    na, nb = names
    steps += [
        Step(sp.Symbol("d_x"), [minus(sp.Min(a[2], b[2]), sp.Max(a[0], b[0])), dx],
             "the smaller right edge minus the larger left edge"),
        Step(W_I, [MaxOf(0, dx), wi], "the overlap of the x-ranges (0 if they do not meet)"),
        Step(sp.Symbol("d_y"), [minus(sp.Min(a[3], b[3]), sp.Max(a[1], b[1])), dy],
             "the smaller bottom edge minus the larger top edge"),
        Step(H_I, [MaxOf(0, dy), hi], "the overlap of the y-ranges"),
        Step(A_I, [times(W_I, H_I), times(wi, hi), inter], "intersection area"),
        Step(sp.Symbol(f"A_{na}"), [times(minus(a[2], a[0]), minus(a[3], a[1])), area_a]),
        Step(sp.Symbol(f"A_{nb}"), [times(minus(b[2], b[0]), minus(b[3], b[1])), area_b]),
        Step(A_U, [minus(plus(sp.Symbol(f"A_{na}"), sp.Symbol(f"A_{nb}")), A_I),
                   minus(plus(area_a, area_b), inter), union], "union area"),
        Step(IOU_S, [over(A_I, A_U), over(inter, union) if union != 0 else 0, *with_approx(value)],
             "the boxes do not overlap" if inter == 0 else "")]
    return value, steps


def _as_corners(box, name, steps):
    cx, cy, w, h = box
    c = [tidy(v) for v in corners(box, "centre")]
    steps.append(Step(Word(f"box {name} corners"), [sp.Tuple(
        minus(cx, over(w, 2)), minus(cy, over(h, 2)), plus(cx, over(w, 2)), plus(cy, over(h, 2))),
        sp.Tuple(*c)], "(cx - w/2, cy - h/2, cx + w/2, cy + h/2)"))
    return c


# -- nms -----------------------------------------------------------------------------------------
def _nms_task(spec, where):
    check_keys(spec, COMMON | {"boxes", "scores", "classes", "threshold", "format"}, where)
    boxes, fmt = _boxes(spec, where)
    scores = array(get(spec, "scores", where, types=list), f"{where}: scores", ndim=1,
                   name="scores")
    if len(scores) != len(boxes):
        raise ShapeError(f"{len(boxes)} boxes but {len(scores)} scores", where=f"{where}: scores")
    classes = _classes(spec, where, len(boxes), None, required=False)
    threshold = key_number(spec, "threshold", where, sp.Rational(1, 2))
    if not 0 <= threshold <= 1:
        raise InputError(f"an IoU threshold is in [0, 1], got {said(threshold)}",
                         where=f"{where}: threshold")
    d = _start(spec, where, "Non-maximum suppression", all_exact(boxes, scores, threshold))
    d.note(f"Boxes are sorted by score, highest first; the best remaining box is kept and "
           f"every remaining box whose IoU with it is greater than {said(threshold)} is "
           "suppressed; repeat until none remain (the rule of torchvision.ops.nms). "
           + ("Each class is suppressed on its own." if classes else "One class: every box "
              "competes with every other."))
    labels = classes or [0] * len(boxes)
    for cls in sorted(set(labels)):
        members = [i for i, c in enumerate(labels) if c == cls]
        rounds, order = _suppress(members, boxes, scores, threshold, fmt)
        d.sections.append(_nms_section(cls if classes else None, rounds, order, scores,
                                       threshold))
    kept = nms(boxes, scores, threshold, classes, fmt)
    d.sections.append(Section("Kept", [Step(Word("kept boxes"), [
        Word(", ".join(str(i + 1) for i in kept))], "by decreasing score")], text=(
        "Boxes are numbered from 1 here; the result lists 0-based indices, as "
        "torchvision.ops.nms returns them.")))
    d.result = {"kept": kept}
    return d


def _nms_section(cls, rounds, order, scores, threshold):
    steps = [Step(Word("sorted"), [Word(", ".join(str(i + 1) for i in order))],
                  "box numbers by decreasing score: "
                  + ", ".join(f"{said(scores[i])}" for i in order))]
    for top, checks in rounds:
        steps.append(Step(Word(f"score of box {top + 1}"), [scores[top]],
                          f"the best left: box {top + 1} is kept"))
        for j, v, gone in checks:
            steps.append(Step(symbol("IoU", top + 1, j + 1), [*with_approx(v)],
                              (f"> {said(threshold)}: box {j + 1} suppressed" if gone else
                               f"<= {said(threshold)}: box {j + 1} stays")))
    title = "Suppression" if cls is None else f"Suppression, class {cls}"
    return Section(title, steps)
