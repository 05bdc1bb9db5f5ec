"""``derivekit bench``: derivekit against every installed peer, each in fresh processes.

A *child* process (:mod:`kernels.bench_children`) runs ONE runner on ONE workload and
prints one JSON line: setup + first epoch, every later epoch's time, the final loss, the
BLAS libraries it loaded (threadpoolctl: internal_api, architecture, num_threads) and,
for derivekit, the wall time per epoch of ``kernels.fit`` on the same run (its epochs
interleaved with the bare compiled epochs). The runtime's threads are set the documented
way for that count before anything is imported: ``OMP/OPENBLAS/MKL_NUM_THREADS`` in the
environment, ``torch.set_num_threads``, and at one thread XLA's
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``.

The parent (:func:`main`) orchestrates: for each thread count and workload, ``--processes``
rounds, each round every runner once in a fresh process pinned (``sched_setaffinity``) to
the same cores, the runners' order changing from round to round (:func:`runner_orders`,
a Williams design: every runner follows every other equally often). A runner's steady
time is the median over its processes of each process's median epoch; ratios are
against the best peer; final losses must agree across runners (flagged otherwise: same
data, initial parameters and order of samples for everyone). OpenBLAS chooses its own
kernels as on users' machines: the children run without ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` unless ``--blas-pin`` keeps them (tests and CI keep the machine's
settings; only the bench's children drop them).

Results go where ``-o`` says (default ``bench-results.md`` in the working directory);
the curated ``bench/RESULTS.md`` is never written by the command: copy the tables in by
hand (:mod:`kernels.bench_report` writes the tables). The peers live in the source
tree's ``bench/`` folder (``peer_*.py``); their backward passes are hand-written (NumPy,
numba) or autodiff (PyTorch, JAX). :func:`run_workload` still runs every runner in one
process (tests use it).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
PEERS = ("peer_numba", "peer_jax", "peer_torch", "peer_numpy")


@dataclass
class Workload:
    """One benchmark: a model, its data, optimizer and batch size (float32 throughout)."""

    name: str
    title: str
    model: dict
    data: object  # () -> (X, y)
    optimizer: str
    lr: float
    batch: int
    epochs: int = 20
    quick_epochs: int = 5
    extra: dict = field(default_factory=dict)


def _digits(images=False):
    from . import data

    ds = data.digits(images=images, dtype=np.float32)
    return ds.X, ds.y


def _blobs():
    from . import data

    ds = data.blobs(20000, 784, 10, seed=0)
    return ds.X, ds.y


def _sequences():
    from . import data

    ds = data.sequences(2048, T=20, d=8, n_classes=4, seed=0)
    return ds.X, ds.y


MLP1 = {"kind": "mlp", "sizes": [64, 128, 10]}
WORKLOADS = {
    "W1": Workload("W1", "MLP 64-128-10 ReLU, softmax CE, digits, batch 32, SGD 0.1",
                   MLP1, _digits, "sgd", 0.1, 32),
    "W2": Workload("W2", "W1 with Adam 1e-3", MLP1, _digits, "adam", 1e-3, 32),
    "W3": Workload("W3", "MLP 784-512-512-10 ReLU, 20,000 synthetic samples, batch 256, SGD 0.01",
                   {"kind": "mlp", "sizes": [784, 512, 512, 10]}, _blobs, "sgd", 0.01, 256,
                   epochs=10, quick_epochs=3),
    "W4": Workload("W4", "conv3x3 (8 filters, pad 1) -> ReLU -> maxpool2 -> linear 128->10, "
                   "digits 8x8, batch 32, SGD 0.05",
                   {"kind": "cnn", "channels": 1, "filters": 8, "size": 8, "classes": 10},
                   lambda: _digits(images=True), "sgd", 0.05, 32),
    "W5": Workload("W5", "vanilla RNN (hidden 64, T=20, 8 inputs, 4 classes), 2,048 synthetic "
                   "sequences, batch 32, Adam 1e-3",
                   {"kind": "rnn", "d": 8, "hidden": 64, "T": 20, "classes": 4}, _sequences,
                   "adam", 1e-3, 32),
    "W6": Workload("W6", "LSTM (hidden 32, T=20, 8 inputs, 4 classes, h0 = c0 = 0), the W5 "
                   "sequences, batch 32, Adam 1e-3",
                   {"kind": "lstm", "d": 8, "hidden": 32, "T": 20, "classes": 4}, _sequences,
                   "adam", 1e-3, 32),
}

#: an LSTM's gates in the order its per-gate parameters are stacked by the NumPy, numba
#: and JAX peers (derive's default ``gate_order``; PyTorch's nn.LSTM stacks i, f, g, o)
LSTM_GATES = "ifog"


def initial_params(w, seed=0):
    """Shared initial parameters (Xavier-uniform weights, zero biases), float32."""
    from .init import initialise

    m = w.model
    if m["kind"] == "mlp":
        s = m["sizes"]
        shapes = {}
        for k in range(len(s) - 1):
            shapes[f"W{k + 1}"], shapes[f"b{k + 1}"] = (s[k + 1], s[k]), (s[k + 1],)
    elif m["kind"] == "cnn":
        flat = m["filters"] * (m["size"] // 2) ** 2
        shapes = {"K": (m["filters"], m["channels"], 3, 3), "kb": (m["filters"],),
                  "W": (m["classes"], flat), "b": (m["classes"],)}
    elif m["kind"] == "lstm":
        # one [hidden, d], [hidden, hidden] and [hidden] per gate, as derive's LSTM names them
        shapes = {}
        for q in LSTM_GATES:
            shapes.update({f"W_x{q}": (m["hidden"], m["d"]), f"W_h{q}": (m["hidden"], m["hidden"]),
                           f"b_{q}": (m["hidden"],)})
        shapes.update({"Wo": (m["classes"], m["hidden"]), "bo": (m["classes"],)})
    else:
        shapes = {"Wx": (m["hidden"], m["d"]), "Wh": (m["hidden"], m["hidden"]),
                  "bh": (m["hidden"],), "Wo": (m["classes"], m["hidden"]), "bo": (m["classes"],)}
    return initialise(shapes, "xavier_uniform", seed=seed, dtype=np.float32)


# -- runners ------------------------------------------------------------------------------
def load_peers(names=PEERS):
    """Peer modules found in bench/ that are installed (their ``available()`` is True)."""
    if not BENCH_DIR.is_dir():
        return []
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    found = []
    for name in names:
        mod = importlib.import_module(name)
        if mod.available():
            found.append(mod)
    return found


class DerivekitRunner:
    """derivekit: the model compiled from its derivation, trained by the fused kernel."""

    NAME = "derivekit"

    def __init__(self, w, params, X, y):
        self.model = derivekit_model(w, params)
        self.X, self.y, self.bs = X, y, w.batch

    def epoch(self, order):
        steps = -(-len(order) // self.bs)
        lrs = np.full(steps, self.model.optimizer.lr)
        loss, _ = self.model.run_epoch(self.X, self.y, order, lrs, self.bs)
        return loss


def derivekit_model(w, params):
    """The workload's network, defined with derive's layers and compiled by kernels."""
    from . import compile as compile_net

    net, names = derivekit_net(w)
    model = compile_net(net, dtype="float32", optimizer=w.optimizer, lr=w.lr)
    for name, value in params.items():
        model.params[names.get(name, name)][...] = value
    if set(model.params) != {names.get(name, name) for name in params}:
        raise ValueError(f"{w.name}: the workload's parameters {sorted(params)} do not map "
                         f"onto the model's {sorted(model.params)}")
    return model


def derivekit_net(w):
    """(Sequential, {workload parameter name: the Sequential's name}) for workload ``w``."""
    import derive as dv

    m = w.model
    if m["kind"] == "mlp":
        layers = []
        for k in range(len(m["sizes"]) - 1):
            layers.append(dv.Linear(m["sizes"][k], m["sizes"][k + 1]))
            if k < len(m["sizes"]) - 2:
                layers.append(dv.ReLU())
        return dv.Sequential(*layers, loss=dv.SoftmaxCrossEntropy()), {}
    if m["kind"] == "cnn":
        flat = m["filters"] * (m["size"] // 2) ** 2
        net = dv.Sequential(dv.Conv2d(m["channels"], m["filters"], 3, padding=1), dv.ReLU(),
                            dv.MaxPool2d(2), dv.Flatten(), dv.Linear(flat, m["classes"]),
                            loss=dv.SoftmaxCrossEntropy(),
                            input_shape=(m["channels"], m["size"], m["size"]))
        return net, {"K": "K1", "kb": "b1", "W": "W2", "b": "b2"}
    if m["kind"] == "rnn":
        # h_0 = 0 inside a Sequential; logits from the last state h_T, as the peers do
        net = dv.Sequential(dv.RNN(m["d"], m["hidden"], steps=m["T"], output="last"),
                            dv.Linear(m["hidden"], m["classes"]),
                            loss=dv.SoftmaxCrossEntropy(), input_shape=(m["T"], m["d"]))
        return net, {"Wx": "W_xh1", "Wh": "W_hh1", "bh": "b1", "Wo": "W2", "bo": "b2"}
    if m["kind"] == "lstm":
        # h_0 = c_0 = 0; logits from h_T through a linear layer, as the peers do
        net = dv.Sequential(dv.LSTM(m["d"], m["hidden"], steps=m["T"], output="last",
                                    h0="zeros", gate_order=LSTM_GATES),
                            dv.Linear(m["hidden"], m["classes"]),
                            loss=dv.SoftmaxCrossEntropy(), input_shape=(m["T"], m["d"]))
        names = {f"{w}{q}": f"{w}{q}1" for q in LSTM_GATES for w in ("W_x", "W_h", "b_")}
        return net, {**names, "Wo": "W2", "bo": "b2"}
    raise NotImplementedError(f"{m['kind']} layers are not generated yet")


def run_workload(w, peers, epochs, derivekit=True, log=print):
    """Time every runner on ``w``; returns {runner name: {"first", "steady", "loss"}}."""
    X, y = w.data()
    params = initial_params(w)
    makers = [(p.NAME, p.make) for p in peers]
    if derivekit:
        makers.insert(0, ("derivekit", DerivekitRunner))
    runners, times, losses = {}, {}, {}
    for name, make in makers:
        t0 = time.perf_counter()
        try:
            runners[name] = make(w, params, X, y)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported
            log(f"  {w.name} {name}: skipped ({type(exc).__name__}: {exc})")
            continue
        times[name] = [time.perf_counter() - t0]  # setup, added to the first epoch
    from .bench_children import epoch_orders

    orders = epoch_orders(len(X), epochs)
    names = list(runners)
    rows = runner_orders(len(names))
    for e in range(epochs):
        for name in [names[i] for i in rows[e % len(rows)]] if names else []:
            t0 = time.perf_counter()
            losses[name] = runners[name].epoch(orders[e])
            dt = time.perf_counter() - t0
            if e == 0:
                times[name][0] += dt
            else:
                times[name].append(dt)
    out = {}
    for name in names:
        ts = times[name]
        out[name] = {"first": ts[0], "steady": statistics.median(ts[1:]) if len(ts) > 1 else ts[0],
                     "loss": float(losses[name])}
        log(f"  {w.name} {name:22s} first {ts[0]:7.3f} s  steady {1e3 * out[name]['steady']:9.2f} "
            f"ms/epoch  loss {out[name]['loss']:.4f}")
    return out


def runner_orders(n):
    """Orders of ``n`` runners (lists of 0..n-1), one per epoch, cycled: a Williams
    design, in which every runner immediately follows every other runner equally often
    (once in n rows for even n, twice in 2n rows for odd n)."""
    if n <= 1:
        return [list(range(n))]
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:  # 0, 1, n-1, 2, n-2, ...
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(r + i) % n for r in first] for i in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


# -- compile times (separate processes: cold = empty cache, warm = cache filled) ----------
_COLD = """
import os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np
from kernels import bench
w = bench.WORKLOADS["W1"]
X, y = w.data()
t1 = time.perf_counter()
r = bench.DerivekitRunner(w, bench.initial_params(w), X, y)
r.epoch(np.arange(len(X), dtype=np.int64))
t2 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}}")
"""


def compile_times(log=print):
    """(imports s, cold compile+first epoch s, warm s) for W1, each in a fresh process."""
    import tempfile

    root = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, DERIVEKIT_CACHE=tmp)
        runs = []
        for label in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", _COLD.format(root=root)], env=env,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                log(f"  compile-time run failed: {res.stderr.strip().splitlines()[-1:]}")
                return None
            imports, first = map(float, res.stdout.split()[-2:])
            runs.append((imports, first))
            log(f"  W1 {label}: imports {imports:.2f} s, compile + first epoch {first:.2f} s")
    return runs


RESULTS_NAME = "bench-results.md"
EXAMPLES = f"""examples:
  derivekit bench --quick --threads 1       (a few minutes; writes ./{RESULTS_NAME})
  derivekit bench --only W1 --processes 3 --threads 1 -o /tmp/w1.md
  derivekit bench --only W1,W2 --peers peer_numpy,peer_torch -o w12.md
  derivekit bench --blas-pin -o results/    (OPENBLAS_CORETYPE kept; results/{RESULTS_NAME})
one runner on one workload in this process, as JSON (what the command runs in each child):
  python -m kernels.bench_children W1 peer_numpy --epochs 5 --threads 1"""


def results_path(out):
    """Where the results go: ``out``, or ``out/bench-results.md`` for a folder. Refused
    (InputError) when it cannot be written, or when it is the tracked bench/RESULTS.md,
    which holds more than this command writes (the fuzzing and start-up sections)."""
    from derive.errors import InputError

    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):  # a folder (that must exist)
        path = path / RESULTS_NAME
    if path.resolve() == (BENCH_DIR / "RESULTS.md").resolve():
        raise InputError("bench/RESULTS.md is curated by hand (it has more than this "
                         "command's tables); write elsewhere and copy the tables in",
                         where=str(out))
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or \
            (path.exists() and (path.is_dir() or not os.access(path, os.W_OK))):
        raise InputError("cannot write the results here", where=str(path))
    return str(path)


def main(argv=None):
    """Run the benchmark (``derivekit bench`` / ``python bench/run.py``); returns 0."""
    p = argparse.ArgumentParser(prog="derivekit bench", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="derivekit against every installed peer "
                                            "(NumPy, numba, PyTorch, JAX), each runner in "
                                            "its own fresh processes, interleaved.")
    p.add_argument("--quick", action="store_true", help="fewer epochs (about 2 minutes)")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W2")
    p.add_argument("--peers", default=",".join(PEERS), help="peer modules to try")
    p.add_argument("--epochs", type=int, help="epochs per workload (overrides)")
    p.add_argument("--threads", default="1,all",
                   help="thread counts to run at, each a number or 'all' (the cores this "
                        "process may use); default 1,all")
    p.add_argument("--processes", type=int, default=3,
                   help="fresh processes per runner, workload and thread count (default 3; "
                        "the median over them is reported)")
    p.add_argument("--blas-pin", action="store_true",
                   help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the children (the "
                        "Haswell comparison); by default they are unset there")
    p.add_argument("--no-derivekit", action="store_true", help="time the peers only")
    p.add_argument("--no-compile-times", action="store_true")
    p.add_argument("-o", "--out", default=".",
                   help=f"file or folder for the results (default: {RESULTS_NAME} in the "
                        "working directory); the children's raw results go beside it (.json)")
    args = p.parse_args(argv)
    from .bench_children import run_processes
    from .bench_report import report, summarise

    args.out = results_path(args.out)  # checked before anything is timed
    args.command_line = "derivekit bench " + " ".join(argv if argv is not None else sys.argv[1:])
    threads = _thread_counts(args.threads)
    if args.processes < 1:
        from derive.errors import InputError
        raise InputError(f"--processes must be at least 1, got {args.processes}")
    load = os.getloadavg()[0]
    runners = ([] if args.no_derivekit else ["derivekit"]) + \
        [n.strip() for n in args.peers.split(",") if n.strip()]
    print(f"runners: {', '.join(runners) or 'none'}; threads {threads}; "
          f"{args.processes} processes each")
    results, raw, args.epochs_of = {}, [], {}
    for n in threads:
        for wname in [n.strip().upper() for n in args.only.split(",")]:
            w = WORKLOADS[wname]
            epochs = args.epochs or (w.quick_epochs if args.quick else w.epochs)
            args.epochs_of[wname] = epochs
            print(f"{wname} at {n} thread(s): {w.title} ({epochs} epochs)")
            runs = run_processes(w, runners, epochs, args.processes, n, args.blas_pin)
            raw += [x for xs in runs.values() for x in xs]
            results[n, wname] = summarise(runs)
    runs = None if (args.no_compile_times or args.no_derivekit) else compile_times()
    args.load = (load, os.getloadavg()[0])
    text = report(results, runs, args)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(f"wrote {args.out}")
    return 0


def _thread_counts(text):
    from derive.errors import InputError

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    out = []
    for part in (q.strip() for q in str(text).split(",") if q.strip()):
        n = cores if part == "all" else int(part) if part.isdigit() else 0
        if not 1 <= n <= cores:
            raise InputError(f"--threads: {part!r} is not 'all' or a count in 1..{cores}")
        if n not in out:
            out.append(n)
    return out or [1]
