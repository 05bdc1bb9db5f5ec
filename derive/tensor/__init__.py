"""The tensor engine: index notation, the reverse sweep, matrix form, the Program.

The layers built on it live in :mod:`derive.layers`.

Modules
-------
``index``          index expressions (``ISum``, ``LogSumExp``, ``Argmax``), differentiation
                   with respect to one element, Kronecker-delta elimination, canonical forms
``ops``            the element-wise definitions of every op (shared by layers and v-notation)
``shape_ops``      batched/broadcast ``@``, reshape, broadcast_to, permute, and sum / mean /
                   max / logsumexp over several axes (gradients by the sweep)
``tensor_graph``   ``TensorGraph``: named tensors defined element by element
``reverse_sweep``  the reverse sweep and the ``Program`` built from it
``program``        the ``Program`` record (forward, backward, updates) and its float64 run
``modes``          eval mode (Dropout's expectation, BatchNorm's running statistics) and the
                   prediction node, kept on the Program
``matrix``         recognition of index forms as matrix algebra (``MatNode`` trees)
``display``        matrix forms as SymPy matrix expressions; index forms, readable indices
``evaluate``       the float64 NumPy evaluator of index expressions
``evaluate_model`` ``program()`` and ``evaluate()``: numbers from a model or its Derivation
``record``         a sweep written into the shared ``Derivation`` fields
``scatter``        gathers and scatter-accumulates through computed indices
``scalar``         a small Program written entry by entry (worked numeric examples)
``vnotation``      the ``tensor_graph`` problem kind (exam v-notation)

Kernel interface (stable)
-------------------------
``program(model, wrt=None) -> Program`` for a Layer, Sequential, Network, TensorGraph or a
Derivation made by this package (``derivation.program``).

``Program`` fields: ``tensors`` (name -> ``TensorInfo(name, shape, role, dtype, meta)``;
role in input | target | label | param | state | mask | node | adjoint; dtype "float" or
"int"), ``forward``, ``updates`` (state updates after forward, e.g. BatchNorm running
statistics: target is the state name), ``backward`` (lists of ``Assignment``),
``output`` (node name), ``seed`` (``<output>_bar``, the upstream adjoint, an input of the
backward pass; ones / 1.0 for a loss), ``grads`` (wrt name -> adjoint array name, e.g.
``"W1" -> "W1_bar"``), ``dims`` (dimension Symbols to bind from array shapes),
``constants`` (Symbol -> float: ``epsilon``, ``momentum``), ``random`` (mask name ->
``{"dist": "bernoulli", "keep": 1 - p, "seed": s, "name": mask}``), ``prediction`` (the
node a classifier's loss scores) and ``inference`` (the eval-mode Program, None when eval
mode computes what train mode does; ``eval_mode()`` returns whichever runs), both made by
the derivation (``modes``), and ``given`` (constant leaf name -> its default value, a
graph's adjacency; a value passed in wins). ``Program.run(values, upstream)`` returns
every array (forward, ``<state>_new``, adjoints).

``Assignment(target, indices, rhs, matrix, mode="=", lhs=None)`` means
``for indices: target[lhs or indices] (mode) rhs``. ``indices`` are ``sympy.Idx`` (loop
variable ``.label``, range ``0..upper``); 0-d targets have ``indices == ()``.

Index form (``rhs``): ``Indexed(IndexedBase(name), *idx)`` (an index is an Idx, an
integer expression of Idx, or a label element such as ``y[n]``); ``Symbol`` for 0-d
tensors, constants and dimensions; ``ISum(body, *idx)``; ``LogSumExp(body, *idx)`` (print
with the max subtracted; softmax is ``exp(z[n,i] - LogSumExp(z[n,k], k))``);
``KroneckerDelta(a, b)`` (1.0 if equal); ``Argmax(body, idx)`` (forward only); ``Add``,
``Mul``, ``Pow``, numbers, ``Piecewise``; the elementwise functions of the function
registry (:mod:`derive.functions`: ``exp log tanh Abs sign Heaviside sigmoid relu softplus
step leaky_relu elu`` ...), whose rows give their NumPy and kernel forms.

Matrix form (``matrix``, or None when not recognised): a tree of ``matrix.MatNode`` with
``.axes`` (Idx per array axis) and ``.shape``: ``Ref(name)``, ``Const(value)``,
``Transpose(a)``, ``MatMul(a, b, ta, tb)`` (np.dot with transpose flags, operands of rank
1 or 2), ``Outer(a, b)``, ``Hadamard(*ops)``, ``Add(*ops)``, ``Scale(c, a)``,
``Map(fn, *ops)`` (fn a sympy.Lambda applied entry by entry), ``Reduce(a, axis)`` (sum
over the axis numbers of ``a``), ``Broadcast(a)`` (to ``.axes``: insert size-1 axes),
``OneHot(label)``, ``Gather(a, label)`` (``a[arange(B), y]``), ``Softmax(a, axis)``,
``LogSumExpNode(a, axis)``. Elementwise operands are already aligned to the result's axes.
``node.numpy(env)`` computes it (``env``: an ``evaluate.Env``).

Naming in Sequential: blocks numbered from 1, up at each layer with parameters: ``W1, b1,
z1, a1, gamma2, beta2, running_mean2, m3`` ...; input ``x: [B, in]``, labels ``y``, loss
``L``.
"""
from derive.tensor import vnotation  # noqa: F401  (registers the tensor_graph problem kind)
from derive.tensor.evaluate_model import evaluate, program
from derive.tensor.index import ISum, LogSumExp
from derive.tensor.program import Assignment, Program, TensorInfo
from derive.tensor.reverse_sweep import build_program
from derive.tensor.tensor_graph import TensorGraph

__all__ = ["evaluate", "program", "build_program", "TensorGraph", "Program", "Assignment",
           "TensorInfo", "ISum", "LogSumExp"]
