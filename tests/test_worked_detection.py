"""Worked YOLO v1 detection: the output tensor, target encoding, IoU, the loss and NMS.

IoU and NMS are checked against a NumPy implementation written here (torchvision.ops when
it is installed), the loss and its gradient against torch autograd.
"""
import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from derive.step_values import check_step_values


def solve(**spec):
    return solve_spec({"kind": "detection", **spec}, "t.yaml")


# -- independent references ------------------------------------------------------------------
def np_iou(a, b):
    """IoU of corner boxes, the textbook way."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def np_nms(boxes, scores, threshold):
    """Greedy NMS: torchvision.ops.nms where installed, else a NumPy twin of it."""
    try:
        import torch
        import torchvision.ops

        return torchvision.ops.nms(torch.tensor(boxes, dtype=torch.float64),
                                   torch.tensor(scores, dtype=torch.float64),
                                   threshold).tolist()
    except ImportError:
        pass
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        order = [j for j in order if np_iou(boxes[i], boxes[j]) <= threshold]
    return keep


def random_boxes(rng, n):
    xy = rng.integers(0, 20, size=(n, 2))
    wh = rng.integers(1, 12, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).tolist()


# -- the output tensor (the exam's S x S x (B*5 + C)) ----------------------------------------
def test_output_tensor_of_the_paper_config():
    r = solve(task="output", S=7, B=2, C=20, image=448, in_features=4096).result
    assert r["shape"] == [7, 7, 2 * 5 + 20] and r["size"] == 7 * 7 * 30 == 1470
    assert r["cell_size"] == 64
    assert r["parameters"] == 4096 * 1470 + 1470  # the paper's fc layer 4096 -> 7*7*30


def test_output_with_a_1x1_conv_head_matches_torch():
    torch = pytest.importorskip("torch")
    r = solve(task="output", S=7, B=3, C=5, in_channels=64).result
    conv = torch.nn.Conv2d(64, 3 * 5 + 5, kernel_size=1)
    assert r["parameters"] == sum(p.numel() for p in conv.parameters())
    assert conv(torch.zeros(1, 64, 7, 7)).shape[1:] == (20, 7, 7) and r["shape"] == [7, 7, 20]


@pytest.mark.parametrize("key, value, message", [
    ("S", 0, "must be at least 1"), ("B", -2, "must be at least 1"),
    ("C", 2.5, "expected an integer"), ("S", "7", "expected an integer")])
def test_sizes_must_be_positive_integers(key, value, message):
    spec = {"task": "output", "S": 7, "B": 2, "C": 20, key: value}
    with pytest.raises(InputError) as info:
        solve(**spec)
    assert f"t.yaml: {key}" in str(info.value) and message in str(info.value)


# -- encoding ground truth --------------------------------------------------------------------
def test_encoding_puts_each_box_in_the_cell_of_its_centre():
    rng = np.random.default_rng(1)
    S, C, size = 7, 4, 448
    boxes = []
    for _ in range(5):
        x1, y1 = rng.integers(0, 300, size=2)
        w, h = rng.integers(10, 140, size=2)
        boxes.append([int(x1), int(y1), int(x1 + w), int(y1 + h)])
    classes = [0, 3, 1, 2, 3]
    r = solve(task="encode", S=S, C=C, image=size, boxes=boxes, classes=classes).result
    seen = set()
    cells = iter(r["cells"])
    for i, (b, cls) in enumerate(zip(boxes, classes)):
        cx, cy = (b[0] + b[2]) / 2 / size, (b[1] + b[3]) / 2 / size
        col, row = int(np.floor(cx * S)), int(np.floor(cy * S))
        if (row, col) in seen:
            continue  # a YOLO v1 cell holds one object; the first stays
        seen.add((row, col))
        cell = next(cells)
        assert (cell["box"], cell["row"], cell["col"]) == (i, row, col)
        assert float(cell["x"]) == pytest.approx(cx * S - col)
        assert float(cell["y"]) == pytest.approx(cy * S - row)
        assert float(cell["sqrt_w"]) == pytest.approx(np.sqrt((b[2] - b[0]) / size))
        assert float(cell["sqrt_h"]) == pytest.approx(np.sqrt((b[3] - b[1]) / size))
        vec = r["target"][row][col]
        assert vec[4] == 1 and vec[5:] == [int(c == cls) for c in range(C)]
    assert sum(v[4] for row in r["target"] for v in row) == len(seen)


def test_encoding_is_exact_and_a_centre_on_the_far_edge_is_in_the_last_cell():
    r = solve(task="encode", S=2, C=1, boxes=[["1/2", 0, 1, 1], [0, 0, "1/2", "1/2"]],
              classes=[0, 0], format="corners").result
    first, second = r["cells"]
    assert (first["row"], first["col"], first["x"], first["y"]) == (1, 1, sp.Rational(1, 2), 0)
    assert first["sqrt_w"] == sp.sqrt(2) / 2 and first["sqrt_h"] == 1
    assert (second["row"], second["col"], second["x"]) == (0, 0, sp.Rational(1, 2))


def test_negative_box_size_names_the_box():
    with pytest.raises(InputError) as info:
        solve(task="encode", S=2, C=1, boxes=[[0, 0, 1, 1], [3, 0, 1, 1]], classes=[0, 0])
    assert "t.yaml: boxes[1]" in str(info.value) and "negative width" in str(info.value)
    with pytest.raises(InputError) as info:
        solve(task="iou", format="centre", boxes=[[0, 0, 1, -1], [0, 0, 1, 1]])
    assert "boxes[0]" in str(info.value) and "negative height" in str(info.value)


def test_class_out_of_range_and_counts():
    with pytest.raises(InputError) as info:
        solve(task="encode", S=2, C=2, boxes=[[0, 0, 1, 1]], classes=[2])
    assert "classes[0]" in str(info.value)
    with pytest.raises(ShapeError):
        solve(task="encode", S=2, C=2, boxes=[[0, 0, 1, 1]], classes=[0, 1])


# -- IoU ---------------------------------------------------------------------------------------
def test_iou_exact_value():
    d = solve(task="iou", boxes=[[0, 0, 2, 2], [1, 1, 3, 3]])
    assert d.result == sp.Rational(1, 7)
    check_step_values(d)


def test_iou_of_disjoint_boxes_is_zero_not_an_error():
    assert solve(task="iou", boxes=[[0, 0, 1, 1], [5, 5, 6, 6]]).result == 0
    assert solve(task="iou", format="centre", boxes=[[1, 1, 2, 2], [5, 5, 2, 2]]).result == 0
    assert solve(task="iou", boxes=[[0, 0, 1, 1], [1, 0, 2, 1]]).result == 0  # touching


def test_iou_against_numpy_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = random_boxes(rng, 2)
        assert float(solve(task="iou", boxes=[a, b]).result) == pytest.approx(np_iou(a, b))
        centre = [[(q[0] + q[2]) / 2, (q[1] + q[3]) / 2, q[2] - q[0], q[3] - q[1]] for q in (a, b)]
        got = solve(task="iou", format="centre", boxes=centre).result
        assert float(got) == pytest.approx(np_iou(a, b))


# -- NMS ---------------------------------------------------------------------------------------
def test_nms_against_the_reference_on_random_boxes():
    rng = np.random.default_rng(3)
    for _ in range(8):
        boxes = random_boxes(rng, 8)
        scores = rng.permutation(8).tolist()  # distinct scores: no tie-breaking question
        for threshold in (0.3, 0.5):
            got = solve(task="nms", boxes=boxes, scores=scores, threshold=threshold).result
            assert got["kept"] == np_nms(boxes, scores, threshold)


def test_nms_per_class_keeps_overlapping_boxes_of_different_classes():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9], [21, 21, 30, 30]]
    scores = [0.9, 0.8, 0.7, 0.95, 0.6]
    classes = [0, 0, 0, 1, 0]
    r = solve(task="nms", boxes=boxes, scores=scores, classes=classes, threshold=0.5).result
    # batched NMS: boxes of different classes never overlap once shifted apart
    shifted = [[v + 100 * c for v in b] for b, c in zip(boxes, classes)]
    assert r["kept"] == np_nms(shifted, scores, 0.5) == [3, 0, 2]


# -- the loss and its gradient ------------------------------------------------------------------
LOSS = dict(task="loss", S=2, B=2, C=2, boxes=[["1/4", "3/32", "1/2", "21/32"]], classes=[1],
            predictions=[[["1/2", "3/4", "1/2", "1/2", "4/5", "1/2", "1/2", "1/5", "1/5", "3/10",
                           "1/5", "4/5"],
                          ["1/2", "1/2", "1/2", "1/2", "1/10", "1/2", "1/2", "1/2", "1/2", "1/5",
                           "1/2", "1/2"]],
                         [["1/2", "1/2", "1/2", "1/2", "3/10", "1/2", "1/2", "1/2", "1/2", 0,
                           "1/2", "1/2"],
                          ["1/2", "1/2", "1/2", "1/2", "1/10", "1/2", "1/2", "1/2", "1/2", "1/10",
                           "1/2", "1/2"]]])


def torch_yolo_loss(torch, P, objects, S, B, lc, ln, conf):
    """YOLO v1 loss written from the paper, for autograd. objects: (row, col, x, y, w, h, cls)."""
    loss = P.new_zeros(())
    responsible = set()
    for row, col, x, y, w, h, cls in objects:
        cell = P[row, col]
        t = torch.tensor([(col + x) / S, (row + y) / S, w, h], dtype=P.dtype)
        ious = []
        for j in range(B):
            p = cell[5 * j:5 * j + 5].detach()
            box = torch.stack([(col + p[0]) / S, (row + p[1]) / S, p[2] ** 2, p[3] ** 2])
            a = [box[0] - box[2] / 2, box[1] - box[3] / 2, box[0] + box[2] / 2, box[1] + box[3] / 2]
            b = [t[0] - t[2] / 2, t[1] - t[3] / 2, t[0] + t[2] / 2, t[1] + t[3] / 2]
            ious.append(np_iou([float(v) for v in a], [float(v) for v in b]))
        j = int(np.argmax(ious))
        responsible.add((row, col, j))
        p = cell[5 * j:5 * j + 5]
        loss = loss + lc * ((p[0] - x) ** 2 + (p[1] - y) ** 2)
        loss = loss + lc * ((p[2] - np.sqrt(w)) ** 2 + (p[3] - np.sqrt(h)) ** 2)
        loss = loss + (p[4] - (ious[j] if conf == "iou" else 1.0)) ** 2
        onehot = torch.zeros(P.shape[-1] - 5 * B, dtype=P.dtype)
        onehot[cls] = 1
        loss = loss + ((cell[5 * B:] - onehot) ** 2).sum()
    for row in range(S):
        for col in range(S):
            for j in range(B):
                if (row, col, j) not in responsible:
                    loss = loss + ln * P[row, col, 5 * j + 4] ** 2
    return loss


@pytest.mark.parametrize("conf", ["iou", "one"])
def test_loss_and_gradient_against_torch_autograd(conf):
    torch = pytest.importorskip("torch")
    d = solve(**LOSS, confidence_target=conf)
    r = d.result
    assert r["responsible"] == [{"box": 0, "cell": [0, 0], "predictor": 0}]
    P = torch.tensor(np.array(sp.Array(sp.sympify(LOSS["predictions"])).tolist(), dtype=float),
                     requires_grad=True)
    # the box: centre (3/8, 3/8), w = 1/4, h = 9/16 -> cell (0, 0), x = y = 3/4
    loss = torch_yolo_loss(torch, P, [(0, 0, 0.75, 0.75, 0.25, 9 / 16, 1)], 2, 2, 5.0, 0.5, conf)
    loss.backward()
    assert float(r["loss"]) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(np.array(r["gradient"], dtype=float), P.grad.numpy(), rtol=1e-12,
                               atol=1e-15)
    check_step_values(d)


def test_loss_terms_are_exact():
    r = solve(**LOSS).result
    # IoU of predictor 1 with the box is 2/11, the confidence target
    assert r["obj"] == (sp.Rational(4, 5) - sp.Rational(2, 11)) ** 2
    assert r["coord"] == 5 * (sp.Rational(1, 2) - sp.Rational(3, 4)) ** 2
    assert r["noobj"] == sp.Rational(1, 2) * sum(
        sp.Rational(v) ** 2 for v in ("3/10", "1/10", "1/5", "3/10", "0", "1/10", "1/10"))


def test_loss_gradient_against_finite_differences_with_floats():
    spec = dict(LOSS, confidence_target="one")
    spec["predictions"] = [[[float(sp.Rational(v)) for v in cell] for cell in row]
                           for row in LOSS["predictions"]]
    base = solve(**spec).result
    grad = np.array(base["gradient"], dtype=float)
    rng = np.random.default_rng(5)
    for _ in range(6):
        idx = tuple(int(i) for i in (rng.integers(2), rng.integers(2), rng.integers(12)))
        eps = 1e-6
        up, down = [[[v for v in c] for c in row] for row in spec["predictions"]], None
        down = [[[v for v in c] for c in row] for row in spec["predictions"]]
        up[idx[0]][idx[1]][idx[2]] += eps
        down[idx[0]][idx[1]][idx[2]] -= eps
        numeric = (float(solve(**dict(spec, predictions=up)).result["loss"])
                   - float(solve(**dict(spec, predictions=down)).result["loss"])) / (2 * eps)
        assert grad[idx] == pytest.approx(numeric, abs=1e-6)


def test_prediction_tensor_shape_is_checked():
    bad = dict(LOSS, predictions=[[[0] * 11] * 2] * 2)
    with pytest.raises(ShapeError) as info:
        solve(**bad)
    assert "t.yaml: predictions" in str(info.value) and "2x2x12" in str(info.value)


def test_unknown_task_is_one_line():
    with pytest.raises(InputError) as info:
        solve(task="segment")
    assert "t.yaml: task" in str(info.value)
