r"""Hostile text through every reader: expressions, values, names, answers, LaTeX, display
names, problem and answers files, and the command line.

A case is a reader and a text built from a payload (code that would run a command or
open a file, costly but legal mathematics, TeX that reads or writes files, YAML tags and
bombs) inside a wrapper. Whatever the reader, it must answer or refuse with a one-line
DeriveError within TIME_LIMIT, never raise anything else, never create the sentinel file
the payloads aim at, and never let a TeX control sequence that reads, writes or
redefines (``\input``, ``\write18``, ``\catcode``, ...) into a rendered document.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from fuzzgen import TIME_LIMIT, pick, problem_file, scratch_dir, timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNN = os.path.join(ROOT, "examples", "rnn.yaml")

CODE = [
    "__import__('os').system('touch {S}')",
    "open('{S}', 'w').write('x')",
    "(lambda: __import__('os').system('touch {S}'))()",
    "x.__class__.__mro__[1].__subclasses__()",
    "getattr(x, '__class__')",
    "exec(\"open('{S}', 'w')\")",
    "eval('__import__(\"os\").system(\"touch {S}\")')",
    "[open('{S}', 'w') for _ in [0]]",
    "x if open('{S}', 'w') else x",
    "globals()['__builtins__']",
    "x; import os; os.system('touch {S}')",
    "f'{{open(\"{S}\", \"w\")}}'",
    "(y := open('{S}', 'w'))",
    "breakpoint()",
    "Symbol('x').__init__",
    "Function('f')(x)",
    "x.subs(x, 1)",
    "sin(*[x])",
    "x[0]",
    "sympify(\"__import__('os').system('touch {S}')\")",
]
COSTLY = [
    "9**9**9", "(x+y)**10000", "(x+y)**1000", "exp(exp(exp(x)))", "exp(exp(exp(exp(x))))",
    "x**x**x**x**x**x",
    "2**2**2**2**2**2", "10**1000000", "x**(10**100)", "(" * 500 + "x" + ")" * 500,
    "-" * 5000 + "x", "x" + "+x" * 3000, "sin(" * 200 + "x" + ")" * 200,
    "1e999", "nan", "oo", "zoo", "I", "E**I", "1/0", "0/0", "x/(x-x)",
    "x\x00", "\uff58 + 1", "x\u202e + 1", "\U0001d465", "x" * 6000,
]
TEX = [
    r"\input{/etc/hostname}", r"\include{/etc/hostname}", r"\write18{touch {S}}",
    r"\immediate\write18{touch {S}}", r"\openin5=/etc/hostname", r"\catcode`\^=7",
    r"\def\x{\input{/etc/hostname}}\x", r"\csname input\endcsname{/etc/hostname}",
    r"^^5cinput{/etc/hostname}", r"\usepackage{shellesc}", r"\newcommand{\x}{1}",
    r"\expandafter\input\string{/etc/hostname}", r"\read16 to \x",
    r"\scantokens{\input{/etc/hostname}}", r"\lowercase{\input{/etc/hostname}}",
    r"\special{ps: (touch {S}) system}", r"\frac{" * 100 + "1" + "}{2}" * 100,
    r"$\input{/etc/hostname}$", r"\verb|\input{/etc/hostname}|", r"\jobname",
]
#: TeX control sequences that read, write, run or redefine: a rendered document may hold
#: no more of them than the same document with a harmless name.
DANGEROUS_TEX = re.compile(r"\\(input|include|write|immediate|openin|openout|read|catcode|"
                           r"def|edef|gdef|xdef|let|csname|expandafter|scantokens|special|"
                           r"lowercase|uppercase|usepackage|newcommand|renewcommand)(?![A-Za-z])"
                           r"|\^\^")

EXPRESSION_WRAPPERS = ["{p}", "x + {p}", "sin({p})", "({p})*x", "exp({p}) - y"]
LATEX_WRAPPERS = ["{p}", "x_{{p}}", r"\hat{{p}}", r"\frac{{p}}{2}", "w^{{p}}"]  # "{p}": payload


def _laughs(key):
    """A kilobyte billion-laughs document whose ``key`` is 10^9 strings when expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + f"\n{key}: *a9\n"


#: Values for one key of a YAML file.
YAML_VALUES = [
    "!!python/object/apply:os.system ['touch {S}']",
    "!!python/name:os.system",
    "!!python/object/new:subprocess.Popen [['touch', '{S}']]",
    "{x: !!python/object/apply:os.system ['touch {S}']}",
    "[" * 5000 + "]" * 5000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "&a [*a]", ".nan", ".inf", "1e999", "*undefined",
    "'" + "x+" * 100000 + "x'",
    "'" + "(" * 3000 + "x" + ")" * 3000 + "'",
    "\"__import__('os').system('touch {S}')\"",
]
PROBLEM_KEYS = ["expression", "values", "title", "wrt", "latex", "inputs", "nodes", "output"]


def yaml_document(src, reader):
    """A problem or answers file with one hostile value (or a billion-laughs alias)."""
    key = pick(src, PROBLEM_KEYS) if reader == "problem file" else "w"
    base = {"expression": "w*x + 1", "values": "{w: 2, x: 1}"} if reader == "problem file" \
        else {"t": "w", "s": "w"}
    if src.integer(0, 9) == 0:
        return "".join(f"{k}: {v}\n" for k, v in base.items() if k != key) + _laughs(key)
    base[key] = _fill(pick(src, YAML_VALUES))
    return "".join(f"{k}: {v}\n" for k, v in base.items())


def _many_nodes(n):
    body = "\n".join(f"  h{i}: h{i - 1} + x" for i in range(2, n + 1))
    return f"nodes:\n  h1: x\n{body}\nvalues: {{x: 1}}\n"


@dataclass
class HostileCase:
    reader: str
    text: str

    def repro(self):
        text = self.text if len(self.text) < 160 else \
            f"{self.text[:100]!r} ... ({len(self.text)} characters)"
        return f"{self.reader}: {text}"

    __repr__ = repro


def sentinel():
    return os.path.join(scratch_dir(), "pwned")


def _fill(template):
    return template.replace("{S}", sentinel())


def hostile_case(src, reader=None):
    """A random reader and a payload for it (inside a random wrapper)."""
    reader = reader or pick(src, list(READERS))
    if reader in ("problem file", "answers file"):
        return HostileCase(reader, yaml_document(src, reader))
    _, pools, wrappers = READERS[reader]
    payload = _fill(pick(src, pick(src, pools)))
    return HostileCase(reader, pick(src, wrappers).replace("{p}", payload))


# -- the readers ------------------------------------------------------------------------------
def _grad(**kw):
    import derive as dv

    definition = kw.pop("definition", "x*y + 1")
    return dv.grad(definition, **kw)


def _rnn():
    global _RNN_DERIVATION
    if _RNN_DERIVATION is None:
        import derive as dv

        _RNN_DERIVATION = dv.solve(RNN)[0]
    return _RNN_DERIVATION


_RNN_DERIVATION = None


def _answer(text):
    from derive.verify import check

    v = check(text, against=_rnn(), wrt="w")
    if v.verdict not in ("correct", "wrong", "unreadable"):
        raise AssertionError(f"verdict {v.verdict!r}")
    if v.verdict == "unreadable" and "\n" in (v.message or "").strip():
        raise AssertionError(f"a {len(v.message.splitlines())}-line message")


def _latex(text):
    from derive.verify.latex_answers import latex_to_text

    latex_to_text(text)
    _answer(f"${text}$")


def _tex_of(latex_names=None, title="t"):
    import derive as dv
    import reports

    spec = {"title": title, "expression": "w*x + 1", "values": {"w": 2, "x": "1/2"}}
    if latex_names:
        spec["latex"] = latex_names
    return reports.render(dv.solve(spec)[0], "tex")


def _clean_tex(tex):
    """Raise unless ``tex`` holds no more dangerous control sequences than a harmless one."""
    global _BASELINE
    if _BASELINE is None:
        _BASELINE = _count(_tex_of({"w": "w"}))
    extra = {cs: n - _BASELINE.get(cs, 0) for cs, n in _count(tex).items()
             if n > _BASELINE.get(cs, 0)}
    if extra:
        raise AssertionError(f"TeX control sequences reached the document: {extra}")


_BASELINE = None


def _count(tex):
    out = {}
    for m in DANGEROUS_TEX.finditer(tex):
        out[m.group(0)] = out.get(m.group(0), 0) + 1
    return out


def _problem_file(text):
    import derive as dv

    dv.solve(problem_file(text, "hostile.yaml"))


def _answers_file(text):
    from derive.verify import cli_check

    cli_check(RNN, problem_file(text, "answers.yaml"), fmt="json")


#: reader -> (call with the text, payload pools, wrappers)
READERS = {
    "grad expression": (lambda t: _grad(definition=t), [CODE, COSTLY, TEX],
                        EXPRESSION_WRAPPERS),
    "grad expression at a point": (lambda t: _grad(definition=t, at={"x": "3/2", "y": 2}),
                                   [CODE, COSTLY], EXPRESSION_WRAPPERS),
    "grad value": (lambda t: _grad(at={"x": t, "y": 1}), [CODE, COSTLY], ["{p}"]),
    "grad wrt": (lambda t: _grad(wrt=t), [CODE, COSTLY], ["{p}", "x,{p}"]),
    "nodes definition": (lambda t: _grad(definition={"h1": "x*y", "h2": t}), [CODE, COSTLY],
                         EXPRESSION_WRAPPERS),
    "node name": (lambda t: _grad(definition={t: "x + 1"}), [CODE, TEX], ["{p}"]),
    "answer": (_answer, [CODE, COSTLY, TEX], EXPRESSION_WRAPPERS),
    "latex answer": (_latex, [TEX, CODE], LATEX_WRAPPERS),
    "display name": (lambda t: _clean_tex(_tex_of({"w": t})), [TEX], LATEX_WRAPPERS),
    "problem title": (lambda t: _clean_tex(_tex_of(title=t)), [TEX], LATEX_WRAPPERS),
    "problem file": (_problem_file, [], []),
    "answers file": (_answers_file, [], []),
}


def check_hostile(case, limit=TIME_LIMIT):
    """Answered or refused in one line, in time, with nothing run and no TeX let through."""
    from derive.errors import DeriveError

    def body():
        try:
            READERS[case.reader][0](case.text)
        except DeriveError as exc:
            if "\n" in str(exc).strip():
                return "mismatch", f"a {len(str(exc).splitlines())}-line error: {exc}"
            return "ok", f"refused: {exc}"
        except AssertionError as exc:
            return "mismatch", str(exc)
        return "ok", ""

    out = timed("hostile", case.repro(), body, limit)
    return _sentinel_checked(out)


def _sentinel_checked(out):
    if os.path.exists(sentinel()):
        os.remove(sentinel())
        out.status, out.detail = "mismatch", f"the sentinel file was created! {out.detail}"
    return out


# -- the command line ----------------------------------------------------------------------
@dataclass
class CliCase:
    """``derivekit ARGS`` with files written first; ``expect`` checks what it printed."""

    name: str
    args: list
    files: dict
    check_output: object = None   # (stdout, returncode, folder) -> problem text or ""

    def repro(self):
        return f"derivekit {' '.join(self.args)}  [{self.name}]"


def cli_cases():
    """One case per reader of the command line."""
    secret = "zqxjsecretword"
    laughs = _laughs("w")
    return [
        CliCase("code in an expression", ["grad", _fill(CODE[0]), "--at", "x=1"], {}),
        CliCase("code in --at", ["grad", "x + 1", "--at", "x=" + _fill(CODE[1])], {}),
        CliCase("huge power", ["grad", "(x+y)**10000"], {}),
        CliCase("tower of exps", ["grad", "exp(exp(exp(x)))", "--at", "x=10.0"], {}),
        CliCase("tower of four exps", ["grad", "exp(exp(exp(exp(x))))", "--at", "x=3/2"], {}),
        CliCase("YAML tag", ["solve", "{d}/p.yaml"],
                {"p.yaml": "expression: " + _fill(YAML_VALUES[0]) + "\n"}),
        CliCase("billion laughs", ["check", RNN, "{d}/a.yaml"], {"a.yaml": laughs}),
        CliCase("nested 5000 deep", ["solve", "{d}/p.yaml"],
                {"p.yaml": "expression: x\nvalues: " + YAML_VALUES[4] + "\n"}),
        CliCase("many nodes", ["solve", "{d}/p.yaml"], {"p.yaml": _many_nodes(5000)}),
        CliCase("TeX in a display name", ["solve", "{d}/p.yaml", "-o", "{d}/out.tex"],
                {"p.yaml": "expression: w*x\nlatex: {w: '\\input{" + "{d}/secret}'}\n",
                 "secret.tex": secret}, _tex_output),
        CliCase("TeX in a display name, PDF", ["solve", "{d}/p.yaml", "-o", "{d}/out.pdf"],
                {"p.yaml": "expression: w*x\nvalues: {w: 1, x: 2}\n"
                           "latex: {w: '\\input{" + "{d}/secret}'}\n",
                 "secret.tex": secret}, _pdf_output),
    ]


def _tex_output(stdout, code, folder):
    path = os.path.join(folder, "out.tex")
    if code != 0 or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as fh:
        tex = fh.read()
    try:
        _clean_tex(tex)
    except AssertionError as exc:
        return str(exc)
    return ""


def _pdf_output(stdout, code, folder):
    path = os.path.join(folder, "out.pdf")
    if code != 0 or not os.path.exists(path):
        return ""
    text = subprocess.run(["pdftotext", path, "-"], capture_output=True, text=True).stdout
    return "the secret file's text is in the PDF" if "zqxjsecretword" in text else ""


def check_cli(case, limit=TIME_LIMIT):
    """Exit 0, 1 or 2 within the limit, a one-line error without a traceback, no sentinel."""
    folder = os.path.join(scratch_dir(), "cli")
    os.makedirs(folder, exist_ok=True)
    for name, text in case.files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
            fh.write(text.replace("{d}", folder))
    args = [a.replace("{d}", folder) for a in case.args]
    start = time.perf_counter()
    try:
        run = subprocess.run([sys.executable, "-m", "derive", *args], capture_output=True,
                             text=True, timeout=limit + 5, cwd=folder)
        seconds = time.perf_counter() - start
        status, detail = _judge_cli(run, seconds, limit, case, folder)
    except subprocess.TimeoutExpired:
        seconds, status, detail = time.perf_counter() - start, "slow", \
            f"no answer within {limit + 5:g} s (killed)"
    from fuzzgen import Outcome

    return _sentinel_checked(Outcome("cli", status, case.repro(), detail, seconds))


def _judge_cli(run, seconds, limit, case, folder):
    err = run.stderr.strip()
    if "Traceback" in err:
        return "crash", f"exit {run.returncode}, traceback: {err[-300:]}"
    if run.returncode not in (0, 1, 2):
        return "crash", f"exit {run.returncode}: {err[:300]}"
    if run.returncode and len(err.splitlines()) != 1:
        return "mismatch", f"exit {run.returncode} with {len(err.splitlines())} lines: " \
            f"{err[:300]}"
    if seconds > limit:
        return "slow", f"answered in {seconds:.1f} s (limit {limit:g} s), exit {run.returncode}"
    problem = case.check_output(run.stdout, run.returncode, folder) if case.check_output \
        else ""
    if problem:
        return "mismatch", problem
    return "ok", f"refused: {err}" if run.returncode == 2 else f"exit {run.returncode}"
