"""``derivekit bench``: derivekit against every installed peer, in one process, interleaved.

Every runner gets the same data, the same initial parameters and the same order of
samples in every epoch; epochs are interleaved so drift in the machine's speed hits
everyone alike. The runner order follows a Williams design (:func:`runner_orders`):
over its rows every runner comes right after every other runner equally often, because
the one that runs after PyTorch finds the shared data evicted from the cache and the one
after it finds it warm (a cyclic rotation kept derivekit after PyTorch in 4 epochs of
5: +6% on W1's steady time, while the hand-written numba peer ran after derivekit). Reported per workload and runner: the
first epoch (which includes compilation for the JIT runners), the median of the other
epochs (steady ms/epoch) and the ratio to derivekit, plus the final training loss as a
check that everyone computed the same thing. Results go where ``-o`` says (default
``bench-results.md`` in the working directory); the curated ``bench/RESULTS.md`` is never
written by the command: copy the tables in by hand.

The peers live in the source tree's ``bench/`` folder (``peer_*.py``); their backward
passes are hand-written (NumPy, numba) or autodiff (PyTorch, JAX).
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
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


def limit_threads(n):
    """Give every runtime ``n`` threads: idle pools spinning on a 2-core machine slow
    everyone else down (PyTorch with 2 OpenMP threads ran W1 10x slower here)."""
    if hasattr(os, "sched_setaffinity"):
        # pin the process to n cores: XLA ignored its thread flags here and ran W3 on
        # both cores (402 ms/epoch; 745 ms pinned), which is not a per-thread comparison
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > n:
            os.sched_setaffinity(0, cores[-n:])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    if n == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                              "intra_op_parallelism_threads=1")
    try:
        import scipy.linalg  # noqa: F401 - numba's np.dot calls scipy's BLAS
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(n)
    except ImportError:
        limits = None
    try:
        import torch
        torch.set_num_threads(n)
        torch.set_num_interop_threads(n)
    except (ImportError, RuntimeError):
        pass
    return limits


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
    orders = [np.random.default_rng([0, e]).permutation(len(X)).astype(np.int64)
              for e in range(epochs)]
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


# -- report -------------------------------------------------------------------------------
def report(results, compile_runs, args):
    lines = ["# derivekit benchmark results", "",
             f"Command: `{args.command_line}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, {_versions()}  ",
             f"Threads per runner: {args.threads} (the process is pinned to that many cores). "
             "Load average before the run: "
             f"{args.load:.2f} (1 min; other jobs on the machine slow every runner alike, "
             "but add noise).  ",
             "All float32; same data, initial parameters and sample order for every runner; "
             "epochs interleaved in one process, in a Williams design (each runner follows each "
             "other equally often). *first* = setup + first epoch (includes "
             "JIT compilation; numba peers may load from their own cache); *steady* = "
             "median of the remaining epochs. Ratio = runner's steady time / derivekit's "
             "(> 1: derivekit is faster).", ""]
    for wname, res in results.items():
        w = WORKLOADS[wname]
        lines += [f"## {wname}: {w.title}", "", f"{args.epochs_of[wname]} epochs.", "",
                  "| runner | first epoch (s) | steady ms/epoch | ratio vs derivekit "
                  "| final loss |",
                  "|---|---:|---:|---:|---:|"]
        base = res.get("derivekit", {}).get("steady")
        for name, r in sorted(res.items(), key=lambda kv: kv[1]["steady"]):
            ratio = f"{r['steady'] / base:.2f}" if base else "-"
            lines.append(f"| {name} | {r['first']:.3f} | {1e3 * r['steady']:.2f} | {ratio} | "
                         f"{r['loss']:.4f} |")
        lines += ["", verdict(wname, res), ""]
    if compile_runs:
        (ci, cf), (wi, wf) = compile_runs
        lines += ["## Compile time (W1, fresh processes)", "",
                  "| cache | imports (s) | compile + first epoch (s) |", "|---|---:|---:|",
                  f"| cold (empty) | {ci:.2f} | {cf:.2f} |", f"| warm | {wi:.2f} | {wf:.2f} |", ""]
    return "\n".join(lines)


def verdict(wname, res):
    """One line: derivekit's steady time against the best peer (and PyTorch for W5)."""
    if "derivekit" not in res:
        return "derivekit: not run (it could not be built; derivekit bench printed why)."
    mine = res["derivekit"]["steady"]
    peers = {k: v["steady"] for k, v in res.items() if k != "derivekit"}
    if not peers:
        return "No peer installed."
    best = min(peers, key=peers.get)
    line = (f"derivekit / best peer ({best}) = {mine / peers[best]:.2f} "
            f"({'at or below' if mine <= peers[best] else 'above'} the best peer).")
    torch = next((v for k, v in peers.items() if k.startswith("pytorch")), None)
    if torch:
        line += f" derivekit / PyTorch eager = {mine / torch:.3f}."
    return line


def _versions():
    out = []
    for mod in ("numpy", "numba", "torch", "jax"):
        try:
            out.append(f"{mod} {importlib.import_module(mod).__version__}")
        except ImportError:
            pass
    return ", ".join(out)


RESULTS_NAME = "bench-results.md"
EXAMPLES = f"""examples:
  derivekit bench --quick                   (about 2 minutes; writes ./{RESULTS_NAME})
  derivekit bench --only W1,W2 --peers peer_numpy,peer_torch -o w12.md
  derivekit bench -o results/               (a folder: results/{RESULTS_NAME})"""


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
                                            "(NumPy, numba, PyTorch, JAX), in one process, "
                                            "interleaved.")
    p.add_argument("--quick", action="store_true", help="fewer epochs (about 2 minutes)")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W2")
    p.add_argument("--peers", default=",".join(PEERS), help="peer modules to try")
    p.add_argument("--epochs", type=int, help="epochs per workload (overrides)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for every runner's BLAS/OpenMP/XLA pools (default 1)")
    p.add_argument("--no-derivekit", action="store_true", help="time the peers only")
    p.add_argument("--no-compile-times", action="store_true")
    p.add_argument("-o", "--out", default=".",
                   help=f"file or folder for the results (default: {RESULTS_NAME} in the "
                        "working directory)")
    args = p.parse_args(argv)
    args.out = results_path(args.out)  # checked before anything is timed
    args.command_line = "derivekit bench " + " ".join(argv if argv is not None else sys.argv[1:])
    limits = limit_threads(args.threads)  # noqa: F841 - kept alive for the whole run
    args.load = os.getloadavg()[0]
    peers = load_peers([n.strip() for n in args.peers.split(",") if n.strip()])
    print(f"peers: {', '.join(m.NAME for m in peers) or 'none found'}")
    results, args.epochs_of = {}, {}
    for wname in [n.strip().upper() for n in args.only.split(",")]:
        w = WORKLOADS[wname]
        epochs = args.epochs or (w.quick_epochs if args.quick else w.epochs)
        args.epochs_of[wname] = epochs
        print(f"{wname}: {w.title} ({epochs} epochs)")
        results[wname] = run_workload(w, peers, epochs, derivekit=not args.no_derivekit)
    runs = None if (args.no_compile_times or args.no_derivekit) else compile_times()
    text = report(results, runs, args)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0
