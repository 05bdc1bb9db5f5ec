"""Decoding: teacher forcing beside free running (greedy), and the exam's beam-search tree.

Values are checked against the exam's questions and against sums of -log p computed here
with NumPy from the same tree.
"""
import math

import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError
from derive.problem import solve_spec
from derive.step_values import check_step_values


def solve(**spec):
    return solve_spec({"kind": "decoding", **spec}, "t.yaml")


def leaf(p):
    return {"p": p}


# The exam's machine-translation question: the correct translation is "I see a dog", the
# model's sample says "I saw a dog". A decoder that prefers "saw" after "I":
TRANSLATION = {
    "I": {"p": "9/10", "next": {
        "saw": {"p": "3/5", "next": {"a": {"p": "9/10", "next": {
            "dog": {"p": "4/5", "next": {"<eos>": leaf(1)}},
            "cat": {"p": "1/5", "next": {"<eos>": leaf(1)}}}},
            "the": {"p": "1/10", "next": {"dog": {"p": 1, "next": {"<eos>": leaf(1)}}}}}},
        "see": {"p": "2/5", "next": {"a": {"p": 1, "next": {
            "dog": {"p": "3/4", "next": {"<eos>": leaf(1)}},
            "cat": {"p": "1/4", "next": {"<eos>": leaf(1)}}}}}}}},
    "You": {"p": "1/10", "next": {"<eos>": leaf(1)}}}
TARGET = ["I", "see", "a", "dog", "<eos>"]


def test_the_exam_translation_tokens_fed_in_training_and_at_evaluation():
    d = solve(tree=TRANSLATION, target=TARGET)
    r = d.result
    # (b) training, teacher forcing: w1..w5 = <sos> I see a dog
    assert r["teacher_forcing"]["inputs"] == ["<sos>", "I", "see", "a", "dog"]
    # (c) evaluation, the model's own words: w1..w5 = <sos> I saw a dog
    assert r["free_running"]["inputs"] == ["<sos>", "I", "saw", "a", "dog"]
    assert r["free_running"]["predictions"] == ["I", "saw", "a", "dog", "<eos>"]
    # what the model predicts at each teacher-forced step (after "I see" it says "a")
    assert r["teacher_forcing"]["predictions"] == ["I", "saw", "a", "dog", "<eos>"]
    check_step_values(d)


def test_teacher_forcing_loss_is_the_sum_of_minus_log_p_of_the_true_tokens():
    r = solve(tree=TRANSLATION, target=TARGET).result["teacher_forcing"]
    probs = [0.9, 0.4, 1.0, 0.75, 1.0]  # p(true token | true prefix), read off the tree
    assert float(r["loss"]) == pytest.approx(-np.sum(np.log(probs)), rel=1e-12)
    assert sp.simplify(r["loss"] - sp.log(sp.Rational(100, 27))) == 0


def test_teacher_forcing_loss_equals_summed_cross_entropy_in_torch():
    torch = pytest.importorskip("torch")
    tree = {"a": {"logp": -0.2, "next": {"b": {"logp": -1.5}, "c": {"logp": -0.3}}},
            "d": {"logp": -1.7}}
    r = solve(tree=tree, target=["a", "b"], start="BOS").result
    logits = torch.tensor([[-0.2, -1.7], [-1.5, -0.3]], dtype=torch.float64)  # per step
    loss = torch.nn.functional.nll_loss(logits, torch.tensor([0, 0]), reduction="sum")
    assert float(r["teacher_forcing"]["loss"]) == pytest.approx(loss.item())
    assert r["teacher_forcing"]["inputs"] == ["BOS", "a"]
    assert r["teacher_forcing"]["predictions"] == ["a", "c"]  # the model prefers c, b is fed
    assert r["free_running"]["inputs"] == ["BOS", "a"]


def test_a_target_that_stops_before_a_leaf_is_said():
    d = solve(tree=TRANSLATION, target=["I", "saw"])
    assert math.isclose(float(d.result["teacher_forcing"]["loss"]), -math.log(0.9 * 0.6))
    section = next(s for s in d.sections if s.title.startswith("Teacher forcing"))
    assert "stops before a leaf" in section.text


@pytest.mark.parametrize("target, where, message", [
    (["I", "see", "a", "dog", "<eos>", "!"], "t.yaml: target", "ends after 5"),
    (["I", "sea"], "t.yaml: target[1]", "'sea' is not a next token after I"),
    ([], "t.yaml: target", "empty"),
    (["I", ["see"]], "t.yaml: target[1]", "a token is a word"),
])
def test_bad_target_is_one_line_naming_the_key(target, where, message):
    with pytest.raises(InputError) as info:
        solve(tree=TRANSLATION, target=target)
    text = str(info.value)
    assert where in text and message in text and "\n" not in text


# The exam's beam-search question: the figure is missing from the text; its 14
# log-probabilities are read level by level, left to right (each pair sums to probability 1).
def _pair(deep, learn, nxt=None):
    return {"deep": {"logp": deep, **({"next": nxt[0]} if nxt else {})},
            "learn": {"logp": learn, **({"next": nxt[1]} if nxt else {})}}


EXAM_TREE = _pair(-0.51, -0.91, [
    _pair(-0.22, -1.61, [_pair(-2.30, -0.11), _pair(-0.05, -2.99)]),
    _pair(-0.69, -0.69, [_pair(-0.35, -1.20), _pair(-4.61, -0.01)])])


def test_the_exam_beam_search_tree():
    r = solve(tree=EXAM_TREE, beam=2).result
    paths = {}
    for a, la in (("deep", -0.51), ("learn", -0.91)):
        for b in ("deep", "learn"):
            for c in ("deep", "learn"):
                node = EXAM_TREE[a]["next"][b]
                paths[(a, b, c)] = la + node["logp"] + node["next"][c]["logp"]
    best = max(paths, key=paths.get)
    assert list(best) == r["exhaustive"]["sequence"] == ["deep", "deep", "learn"]
    assert float(r["exhaustive"]["score"]) == pytest.approx(-0.84)
    assert r["greedy"]["sequence"] == ["deep", "deep", "learn"]
    assert r["beam"]["sequence"] == ["deep", "deep", "learn"]
