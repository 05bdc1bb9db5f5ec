"""The generated source reads as the derivation does and lays out as code should.

Loop variables are named per loop nest as the derivation names the same indices (n for a
batch, then i, j, k; a sum's indices j, k, l, p, ...), temporaries by their role (acc,
lse, best, arg, cse, factor), never from the engine's process-wide index counter: the
same network prints byte-identical text whatever was derived before it. No line is
longer than 100 characters (kernels.source_text.WIDTH), META included, and nothing in the
kernels names a benchmark code or an issue.
"""
import ast
import re
from pathlib import Path

import pytest

import derive as dv
import kernels
from kernels import docstring_text, optim, program_of
from kernels.source_text import WIDTH, literal, title_lines
from kernels.train_module import Kernel

pytestmark = pytest.mark.usefixtures("kernel_cache")

KERNELS = Path(kernels.__file__).parent
# a name made from an index label and a counter: k31, i6, _j8_0, _s_3, _c10_1
COUNTER_NAME = re.compile(r"^_?[a-z]{1,2}\d+(_\d+)?$|^_[a-z]+_\d+$")


def mlp():
    return dv.Sequential(dv.Linear(64, 128), dv.ReLU(), dv.Linear(128, 10),
                         loss=dv.SoftmaxCrossEntropy())


def conv_net():
    return dv.Sequential(dv.Conv2d(1, 3, 3, padding=1), dv.ReLU(), dv.MaxPool2d(2),
                         dv.Flatten(), dv.Linear(12, 4), loss=dv.SoftmaxCrossEntropy(),
                         input_shape=(1, 4, 4))


def rnn():
    return dv.Sequential(dv.RNN(3, 5, steps=4, output="last"), dv.Linear(5, 3),
                         loss=dv.SoftmaxCrossEntropy())


NETS = {"mlp": mlp, "conv": conv_net, "rnn": rnn}


def source(prog, optimizer="adam"):
    """The training module's text for ``prog``, generated (not read from the cache)."""
    kernel = Kernel(prog, dtype="float32", title=docstring_text(prog.title))
    return kernel.source(optim.make(optimizer), prog.title)


def local_names(text):
    """Loop variables and plainly assigned names of the functions printed from the
    derivation (outlined blocks, train_step, ..., not the fixed helpers before them)."""
    text = text[min(text.find(f) for f in ("def _block", "def train_step") if f in text):]
    loops = set(re.findall(r"^\s*for (\w+) in ", text, re.M))
    assigned = set(re.findall(r"^\s+(\w+) [-+*/]?= ", text, re.M))
    return loops, assigned


def subscripts(tensor, text):
    """Every subscript of ``tensor`` in ``text``, each entry's terms in sorted order
    (the derivation shows ``j + p`` where the kernel prints ``p + j``)."""
    return [tuple(tuple(sorted(entry.split(" + "))) for entry in m.split(", "))
            for m in re.findall(rf"(?<![\w.]){tensor}\[([^\]]*)\]", text)]


@pytest.mark.parametrize("name", list(NETS))
def test_lines_are_short_and_names_say_what_they_run_over(name):
    prog = program_of(NETS[name]())
    text = source(prog)
    long = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not long, long[:3]
    loops, assigned = local_names(text)
    arrays = set(prog.tensors) | {n for n in assigned if re.match(r"_t\d+$", n)}  # work arrays
    assert not [v for v in loops | (assigned - arrays) if COUNTER_NAME.match(v)]
    # no loop variable or temporary shadows a tensor (a loop named x would overwrite the
    # input array) or a module name
    assert not (loops | (assigned - arrays)) & (set(prog.tensors) | {"np", "gemm", "tanh_f32"})
    assert {"n", "i"} <= loops
    assert "W1's" not in text and "issue" not in text.lower()
    # the text is valid Python and META reads back as the dictionary it prints
    tree = ast.parse(text)
    meta = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                and node.targets[0].id == "META")
    assert ast.literal_eval(meta)["prediction"] == prog.prediction


def test_the_same_network_prints_the_same_text_after_other_derivations():
    first = program_of(conv_net())
    labels = {str(i.label) for a in first.forward for i in a.indices}
    program_of(rnn())  # the engine's index counter moves on
    second = program_of(conv_net())
    assert labels != {str(i.label) for a in second.forward for i in a.indices}
    assert source(first) == source(second)
    first, second = program_of(rnn()), (program_of(mlp()), program_of(rnn()))[1]
    assert source(first, "sgd") == source(second, "sgd")


def test_conv_loops_use_the_derivations_index_names():
    from derive.tensor.display import pretty

    prog = program_of(conv_net())
    text = source(prog)
    for target, tensor in (("y1", "K1"), ("K1_bar", "xp1")):
        a = next(a for a in prog.forward + prog.backward if a.target == target)
        shown = str(pretty(a.rhs, a.indices)[0])
        want = subscripts(tensor, shown)[0]
        assert want in subscripts(tensor, text), (target, want)
    assert "                    acc += K1[i, l, p, q]*xp1[n, l, p + j, q + k]" in text
    assert "                    y1[n, i, j, k] = acc + b1[i]" in text


def test_rnn_steps_outline_into_one_function_written_with_their_own_names():
    text = source(program_of(rnn()))
    # each node's steps are one stacked [T, B, ...] buffer (x1_seq[t - 1] is x1_t)
    assert "def _block0(B, x1_seq, x, step):" in text
    assert "            x1_seq[step, n, i] = x[n, step, i]" in text
    assert re.search(r"# the statements of a1_2, h1_2, .*a1_4, h1_4: one function", text)
    # steps 2..T: one loop calling the step's function
    assert re.search(r"    for _ts in range\(1, 4\):\n        # x1_2\n        _block0\(B, x1_seq, "
                     r"x, _ts\)", text)


def test_meta_and_titles_stay_short_and_read_back():
    meta = {"title": "Sequential(" + ", ".join(f"Linear({k}, {k + 1})" for k in range(40)) + ")",
            "word": "x" * 300, "buffers": {f"h{k}_bar": ["B", k, 64] for k in range(30)},
            "signature": {"train": [f"a{k}_bar" for k in range(50)]}, "chunk": 256}
    text = literal(meta, start=len("META = "))
    assert ast.literal_eval(text) == meta
    assert max(len(line) for line in text.splitlines()) <= 88
    # a title as a user typed it: quotes and backslashes escaped, cut only where the
    # docstring keeps its text (never right after an escaping backslash)
    for raw in ['a "quoted" \\ name ' * 20, "\\" * 301, '\\"' * 150 + "x" * 200]:
        escaped = docstring_text(raw)
        doc = '"""\n' + title_lines(escaped) + '\n"""'  # as in the module header
        assert max(len(line) for line in doc.splitlines()) <= 88
        assert "".join(ast.literal_eval(doc).split()) == "".join(raw.split())


def test_no_kernel_file_is_long_or_names_a_benchmark_code():
    for path in sorted(KERNELS.glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) < 500, path.name
        if not path.name.startswith("bench"):  # the bench modules: workload ids are data
            assert not re.search(r"\bW\d\b|\bW\d's|issue #?\d", text), path.name
