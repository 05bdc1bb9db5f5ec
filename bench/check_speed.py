"""Issue 6's speed check: answers judged, a class graded, hostile answers rejected.

Run: ``taskset -c 0 python bench/check_speed.py`` (one core). Targets:

* a 40-answer ANSWERS.yaml checked in under 5 s (problem solved + every answer judged
  + the JSON report), on an unrolled 13-step RNN with 40 adjoints;
* a class of 200 answer files in under 2 minutes (scores.csv and one Markdown report
  each), on the 2-2-1 sigmoid network with binary cross-entropy;
* each hostile answer rejected in under 1 s.
"""
import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

import derive as dv  # noqa: E402
import reports  # noqa: E402,F401  (registers the renderer check_folder writes with)
from derive.verify import check, check_folder, cli_check  # noqa: E402

STEPS = 13


def rnn_problem(steps=STEPS):
    """h_t = w (u_t + h_{t-1}): nodes a_t = u_t + h_{t-1}, h_t = w a_t; 40 adjoints."""
    nodes = {"a1": "u1", "h1": "w*a1"}
    for t in range(2, steps + 1):
        nodes[f"a{t}"] = f"u{t} + h{t - 1}"
        nodes[f"h{t}"] = f"w*a{t}"
    return {"title": f"{steps}-step RNN", "inputs": [f"u{t}" for t in range(1, steps + 1)],
            "params": ["w"], "nodes": nodes, "output": f"h{steps}",
            "values": dict({"w": "1/2"}, **{f"u{t}": t % 3 - 1 for t in range(1, steps + 1)})}


def rnn_answers(steps=STEPS, rng=None):
    """40 answers: h_t_bar = w^(T-t), a_t_bar = u_t_bar = w^(T-t+1), w_bar; a few wrong."""
    rng = rng or random.Random(0)
    answers = {}
    for t in range(steps, 0, -1):
        answers[f"h{t}"] = f"w**{steps - t}"
        answers[f"a{t}"] = f"w**{steps - t + 1}" if t % 4 else f"h{t}_bar*w"
        answers[f"u{t}"] = rf"w^{{{steps - t + 1}}}" if t % 3 == 0 else f"w**{steps - t + 1}"
    answers["w"] = " + ".join(f"h{t}_bar*a{t}" for t in range(1, steps + 1))
    for node in rng.sample(sorted(answers), 4):  # some wrong ones, to diagnose
        answers[node] = f"-({answers[node]})"
    return answers


def bench_40_answers():
    with tempfile.TemporaryDirectory() as tmp:
        problem = os.path.join(tmp, "rnn13.yaml")
        answers = os.path.join(tmp, "answers.yaml")
        with open(problem, "w") as fh:
            yaml.safe_dump(rnn_problem(), fh, sort_keys=False)
        with open(answers, "w") as fh:
            yaml.safe_dump(rnn_answers(), fh, sort_keys=False)
        start = time.perf_counter()
        out, _ = cli_check(problem, answers, fmt="json")
        total = time.perf_counter() - start
    n = len(out["answers"])
    wrong = sum(a["verdict"] == "wrong" for a in out["answers"])
    print(f"40-answer file: {n} answers ({wrong} wrong) in {total:.2f} s "
          f"(problem solved + checked; target < 5 s)")
    return total < 5.0


MLP_ANSWERS = {
    "w1_11": ["(yhat - y)*w2_11*a1*(1 - a1)*x1", r"(\hat{y}-y)w^{(2)}_{11}a_1(1-a_1)x_1",
              "(y - yhat)*w2_11*a1*(1 - a1)*x1", "x1", "z1_bar*x1",
              "2*(yhat - y)*w2_11*a1*(1 - a1)*x1"],
    "w2_11": ["(yhat - y)*a1", "(ŷ − y)·a₁", "a1", "(y - yhat)*a1"],
    "z3": ["yhat - y", "yhat*(1 - yhat)", r"\hat{y} - y"],
    "a1": ["(yhat - y)*w2_11", "w2_11", "z3_bar*w2_11"],
    "z1": ["a1_bar*a1*(1 - a1)", "a1*(1 - a1)", "(yhat - y)*w2_11*a1*(1 - a1)"],
    "b1_1": ["z1_bar", "(yhat - y)*w2_11*a1*(1 - a1)", "1"],
    "x1": ["z1_bar*w1_11 + z2_bar*w1_21", "z1_bar*w1_11", "w1_11 + w1_21"],
    "yhat": ["-y/yhat + (1 - y)/(1 - yhat)", r"-\frac{y}{\hat{y}} + \frac{1-y}{1-\hat{y}}",
             "y/yhat - (1 - y)/(1 - yhat)"],
}


def write_class(folder, n=200, seed=1):
    rng = random.Random(seed)
    for i in range(n):
        answers = {node: rng.choice(options) for node, options in MLP_ANSWERS.items()}
        if i % 50 == 7:
            answers["w1_11"] = "__import__('os').system('true')"
        with open(os.path.join(folder, f"student{i:03d}.yaml"), "w", encoding="utf-8") as fh:
            yaml.safe_dump({"student": f"Student {i}", "answers": answers}, fh,
                           allow_unicode=True)


def bench_class():
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "class")
        os.makedirs(folder)
        write_class(folder)
        start = time.perf_counter()
        [d] = dv.solve(os.path.join(ROOT, "examples", "mlp_2_2_1.yaml"))
        solved = time.perf_counter() - start
        rows = check_folder([d], folder, out_dir=os.path.join(tmp, "out"), fmt="md")
        total = time.perf_counter() - start
        reports = len([f for f in os.listdir(os.path.join(tmp, "out")) if f.endswith(".md")])
    mean = sum(r["score"] for r in rows) / len(rows)
    print(f"class of {len(rows)} files: {total:.1f} s (problem solved in {solved:.1f} s), "
          f"{reports} reports + scores.csv, mean score {mean:.2f} (target < 120 s)")
    return total < 120.0


HOSTILE = ["__import__('os').system('true')", "lambda: 1", "w.__class__", "9**9**9",
           "(" * 10000 + "w" + ")" * 10000, "(" * 1000 + "w" + ")" * 1000,
           r"\frac{" * 2000 + "1" + "}{2}" * 2000, "exp(exp(exp(exp(exp(u1)))))",
           "(u1 + u2)**9999", "[w for w in range(10**9)]"]


def bench_hostile():
    [d] = dv.solve(os.path.join(ROOT, "examples", "rnn.yaml"))
    worst = 0.0
    for text in HOSTILE:
        start = time.perf_counter()
        v = check(text, against=d, wrt="w")
        took = time.perf_counter() - start
        worst = max(worst, took)
        print(f"  {took * 1000:7.1f} ms  {v.verdict:<10} {text[:40]!r}")
    print(f"hostile answers: worst {worst * 1000:.1f} ms (target < 1000 ms)")
    return worst < 1.0


def main():
    ok = [bench_hostile(), bench_40_answers(), bench_class()]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
