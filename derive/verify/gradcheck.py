"""Checking hand-written backward code against central finite differences.

Three shapes of code are accepted:

* a NumPy pair ``forward(*inputs) -> out`` and ``backward(dout, *inputs) -> grads``; if
  ``forward`` returns ``(out, cache)`` (the cs231n convention) ``backward(dout, cache)``
  is called instead;
* a needle-style op (an instance or a class with no constructor arguments) with
  ``compute(*arrays)`` and ``gradient(out_grad, node)``: ``node`` is the output array
  with ``node.inputs`` the input arrays (NumPy arrays that also answer
  ``realize_cached_data()`` / ``numpy()``), so gradients written with array arithmetic
  (``out_grad * rhs``) run as they are;
* a PyTorch-style ``autograd.Function`` with static ``forward(ctx, *inputs)`` and
  ``backward(ctx, grad)`` (or ``setup_context``): run on float64 torch tensors when it
  subclasses ``torch.autograd.Function``, on NumPy arrays otherwise.

The check is PyTensor's ``verify_grad`` done per element: with a fixed random upstream
gradient ``G`` the scalar ``f(x) = Σ G ⊙ forward(x)`` is differentiated by central
differences in float64, and each element of the user's gradient is compared with it.
The report names the input, the element index, both values and the absolute and relative
errors of the worst element, not a wall of Jacobian. Tolerances follow the dtype the user
computes in, plus the rounding error the difference quotient itself makes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from derive.errors import InputError

#: dtype -> (difference step, rtol, atol)
TOLERANCES = {
    np.dtype(np.float64): (1e-6, 1e-5, 1e-7),
    np.dtype(np.float32): (1e-3, 1e-2, 1e-3),
    np.dtype(np.float16): (1e-1, 5e-2, 5e-2),
}
MAX_ELEMENTS = 200


@dataclass
class InputCheck:
    """The outcome for one input (see :class:`GradcheckReport`)."""

    name: str
    shape: tuple
    dtype: str
    checked: int = 0
    size: int = 0
    failures: int = 0
    index: tuple | None = None  # worst element
    analytic: float | None = None
    numeric: float | None = None
    abs_err: float = 0.0
    rel_err: float = 0.0
    tolerance: str = ""
    message: str = ""

    @property
    def ok(self):
        return self.failures == 0 and not self.message.startswith("wrong")

    def __str__(self):
        head = f"{self.name}, shape {self.shape}, {self.dtype}"
        if self.message:
            return f"{head}: {self.message}"
        sampled = f" (a random {self.checked} of {self.size})" if self.checked < self.size else ""
        if self.failures == 0:
            return (f"{head}: ok, {self.checked} elements{sampled}; max abs err "
                    f"{self.abs_err:.3g}, max rel err {self.rel_err:.3g}")
        return (f"{head}: {self.failures} of {self.checked} elements wrong{sampled}; worst at "
                f"index {list(self.index)}: analytic {self.analytic:.6g}, numeric "
                f"{self.numeric:.6g}, abs err {self.abs_err:.3g}, rel err "
                f"{self.rel_err:.3g} (tolerance {self.tolerance})")


@dataclass
class GradcheckReport:
    """Per-input outcomes; truthy when every gradient agrees with finite differences."""

    inputs: list = field(default_factory=list)
    kind: str = "functions"
    notes: list = field(default_factory=list)

    @property
    def ok(self):
        return all(c.ok for c in self.inputs)

    def __bool__(self):
        return self.ok

    @property
    def failures(self):
        return [c for c in self.inputs if not c.ok]

    def __str__(self):
        bad = self.failures
        head = ("gradcheck passed" if not bad else
                f"gradcheck FAILED: {len(bad)} of {len(self.inputs)} input gradients wrong")
        lines = [f"{head} ({self.kind})"] + [f"  {c}" for c in self.inputs]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])

    def to_dict(self):
        return {"ok": self.ok, "kind": self.kind, "notes": list(self.notes),
                "inputs": [dict(c.__dict__, ok=c.ok) for c in self.inputs]}


def gradcheck(forward, backward=None, inputs=(), *, upstream=None, names=None,
              max_elements=MAX_ELEMENTS, seed=0, eps=None, rtol=None, atol=None):
    """Compare a hand-written gradient with float64 central differences.

    Parameters
    ----------
    forward : callable, needle-style op, or autograd.Function-style class
    backward : callable, optional
        Only for a forward/backward pair of functions.
    inputs : sequence of arrays, or dict name -> array
    upstream : array, optional
        The output gradient ``G`` (default: standard normal, seeded).
    names : list of str, optional
        Names for the inputs in the report (dict keys are used when given a dict).
    max_elements : int
        Elements checked per input; larger inputs are sampled at random (seeded).
    eps, rtol, atol : float, optional
        Override the dtype's difference step and tolerances.

    Returns
    -------
    GradcheckReport
        Truthy when every checked element agrees; ``str()`` names the worst element.

    Examples
    --------
    >>> import numpy as np
    >>> fwd = lambda a, b: a * b
    >>> bwd = lambda g, a, b: (g * b, g * a)
    >>> bool(gradcheck(fwd, bwd, [np.ones((2, 2)), np.arange(4.0).reshape(2, 2)]))
    True
    """
    names, arrays = _named(inputs, names)
    runner = _runner(forward, backward, len(arrays))
    out = np.asarray(runner.forward(arrays))
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(out.shape) if upstream is None else np.asarray(upstream, float)
    if g.shape != out.shape:
        raise InputError(f"upstream has shape {g.shape}, the output has shape {out.shape}")
    grads = runner.backward(arrays, g.astype(out.dtype) if out.dtype.kind == "f" else g)
    report = GradcheckReport(kind=runner.kind)
    for i, (name, x) in enumerate(zip(names, arrays)):
        grad = grads[i] if i < len(grads) else None
        check = _check_input(runner, arrays, i, name, x, grad, g, out.dtype, rng,
                             max_elements, (eps, rtol, atol))
        report.inputs.append(check)
    if len(grads) > len(arrays):
        report.notes.append(f"backward returned {len(grads)} gradients for "
                            f"{len(arrays)} inputs; the extra ones were ignored")
    return report


def _named(inputs, names):
    if isinstance(inputs, dict):
        names, arrays = list(inputs), list(inputs.values())
    else:
        arrays = list(inputs)
        names = list(names) if names else [f"input {i}" for i in range(len(arrays))]
    if len(names) != len(arrays):
        raise InputError(f"{len(names)} names for {len(arrays)} inputs")
    return names, [np.asarray(a) if not _is_torch(a) else a.detach().numpy() for a in arrays]


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _check_input(runner, arrays, i, name, x, grad, g, out_dtype, rng, max_elements, over):
    check = InputCheck(name=name, shape=tuple(x.shape), dtype=str(x.dtype), size=int(x.size))
    if x.dtype.kind not in "fc":
        check.message = "skipped (not a float input)"
        return check
    if grad is None:
        check.message = "skipped (backward returned None for it)"
        return check
    grad = np.asarray(grad)
    if grad.shape != x.shape:
        check.message = (f"wrong shape: backward returned a gradient of shape "
                         f"{tuple(grad.shape)} for an input of shape {tuple(x.shape)}")
        return check
    low = min((np.dtype(x.dtype), np.dtype(grad.dtype), np.dtype(out_dtype)),
              key=lambda t: t.itemsize if t.kind == "f" else 8)
    step, rtol, atol = TOLERANCES.get(low, TOLERANCES[np.dtype(np.float64)])
    step, rtol, atol = (v if o is None else o for v, o in zip((step, rtol, atol), over))
    flat = np.arange(x.size)
    if x.size > max_elements:
        flat = np.sort(rng.choice(x.size, max_elements, replace=False))
    base = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    numeric, noise = _central_differences(runner, base, i, flat, g, step)
    analytic = grad.astype(np.float64).reshape(-1)[flat]
    _compare(check, x.shape, flat, analytic, numeric, noise, rtol, atol)
    return check


def _central_differences(runner, base, i, flat, g, step):
    """d/dx_k of Σ G ⊙ f(x) at each flat index k, and the rounding noise of the quotient."""
    x = base[i]
    out = np.empty(len(flat))
    scale = float(np.sum(np.abs(g * np.asarray(runner.forward(base), dtype=np.float64))))
    for j, k in enumerate(flat):
        idx = np.unravel_index(k, x.shape)
        h = step * max(1.0, abs(float(x[idx])))
        values = []
        for sign in (1.0, -1.0):
            shifted = x.copy()
            shifted[idx] += sign * h
            args = list(base)
            args[i] = shifted
            values.append(float(np.sum(g * np.asarray(runner.forward(args), np.float64))))
        out[j] = (values[0] - values[1]) / (2 * h)
    noise = np.finfo(np.float64).eps * scale / step * 4
    return out, noise


def _compare(check, shape, flat, analytic, numeric, noise, rtol, atol):
    abs_err = np.abs(analytic - numeric)
    rel_err = abs_err / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-300)
    rel_err[abs_err == 0] = 0.0
    bound = atol + noise + rtol * np.abs(numeric)
    bad = ~(abs_err <= bound)  # nan counts as wrong
    check.checked = len(flat)
    check.failures = int(bad.sum())
    check.tolerance = f"atol {atol + noise:.2g} + rtol {rtol:.2g}*|numeric|"
    worst = int(np.argmax(np.where(np.isnan(abs_err), np.inf, abs_err / bound)))
    check.index = tuple(int(v) for v in np.unravel_index(flat[worst], shape))
    check.analytic, check.numeric = float(analytic[worst]), float(numeric[worst])
    check.abs_err = float(np.nanmax(abs_err)) if check.failures == 0 else float(abs_err[worst])
    check.rel_err = float(np.nanmax(rel_err)) if check.failures == 0 else float(rel_err[worst])


# -- the three shapes of user code ---------------------------------------------------------
def _runner(forward, backward, n_inputs):
    if backward is not None:
        return _Functions(forward, backward)
    target = forward
    if hasattr(target, "gradient") and hasattr(target, "compute"):
        return _NeedleOp(target)
    if hasattr(target, "forward") and hasattr(target, "backward"):
        return _AutogradFunction(target)
    raise InputError("give forward and backward functions, a needle-style op (compute and "
                     "gradient) or an autograd.Function-style class (forward and backward)")


def _as_tuple(grads):
    if isinstance(grads, (tuple, list)):
        return list(grads)
    return [grads]


class _Functions:
    kind = "forward/backward functions"

    def __init__(self, forward, backward):
        self.f, self.b = forward, backward

    def forward(self, arrays):
        out = self.f(*arrays)
        return out[0] if _is_cache_pair(out) else out

    def backward(self, arrays, g):
        out = self.f(*arrays)
        if _is_cache_pair(out):
            return _as_tuple(self.b(g, out[1]))
        return _as_tuple(self.b(g, *arrays))


def _is_cache_pair(out):
    return isinstance(out, tuple) and len(out) == 2 and not np.isscalar(out[1]) \
        and not isinstance(out[1], np.ndarray)


class _Value(np.ndarray):
    """A NumPy array that also answers needle's Tensor methods used in gradients."""

    def realize_cached_data(self):
        return np.asarray(self)

    def numpy(self):
        return np.asarray(self)


class _NeedleOp:
    kind = "needle-style op (compute / gradient)"

    def __init__(self, op):
        self.op = op() if isinstance(op, type) else op

    def forward(self, arrays):
        return np.asarray(self.op.compute(*arrays))

    def backward(self, arrays, g):
        node = np.asarray(self.op.compute(*arrays)).view(_Value)
        node.inputs = [np.asarray(a).view(_Value) for a in arrays]
        node.op = self.op
        return [None if v is None else np.asarray(v)
                for v in _as_tuple(self.op.gradient(g.view(_Value), node))]


class _Ctx:
    """The parts of torch's ctx that hand-written Functions use."""

    def __init__(self, n_inputs):
        self.saved_tensors = ()
        self.needs_input_grad = (True,) * n_inputs

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *args):
        pass

    def set_materialize_grads(self, value):
        pass


class _AutogradFunction:
    kind = "autograd.Function (forward / backward)"

    def __init__(self, fn):
        self.fn = fn
        self.torch = _torch_function(fn)

    def _args(self, arrays):
        if self.torch is None:
            return list(arrays)
        return [self.torch.from_numpy(np.array(a)) for a in arrays]

    def _run(self, arrays):
        args = self._args(arrays)
        ctx = _Ctx(len(args))
        if self._separate_setup():
            out = self.fn.forward(*args)
            self.fn.setup_context(ctx, tuple(args), out)
        else:
            out = self.fn.forward(ctx, *args)
        return ctx, out

    def _separate_setup(self):
        setup = getattr(self.fn, "setup_context", None)
        if setup is None or self.torch is None:
            return setup is not None
        return setup is not getattr(self.torch.autograd.Function, "setup_context", None)

    def forward(self, arrays):
        return _numpy(self._run(arrays)[1])

    def backward(self, arrays, g):
        ctx, _ = self._run(arrays)
        grad = g if self.torch is None else self.torch.from_numpy(np.array(g))
        return [None if v is None else _numpy(v) for v in _as_tuple(self.fn.backward(ctx, grad))]


def _torch_function(fn):
    try:
        import torch
    except ImportError:
        return None
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        return torch
    return None


def _numpy(v):
    if _is_torch(v):
        return v.detach().numpy()
    return np.asarray(v)
