"""Claims: a statement about networks, decided with evidence an answer key can show.

``kind: claim`` with ``claim: NAME`` picks a registered claim; each one derives the
statement (a symbolic proof), refutes it (a counterexample found and checked, not left to
the reader) or shows it (a computation or a plot over a range), and says which:

* ``proved``: derived symbolically for every value of the symbols;
* ``refuted``: a counterexample, with the numbers that break the statement;
* ``shown``: established numerically on given or drawn values (not a proof);
* ``undecided``: neither could be done in the time allowed; the result says what was tried.

A claim never says "proved" from numbers alone, and a symbolic step that runs out of time
(``derive.budget``) makes the claim undecided rather than false.

Registering a claim::

    @claim("layernorm_linear", "LayerNorm is a linear map",
           keys={"x", "y"})              # the spec keys the claim reads (besides kind/claim)
    def layernorm_linear(spec, where, d):  # d: the Derivation to fill (sections, notes)
        ...
        return Verdict("refuted", "LN(x + y) != LN(x) + LN(y) at x = ..., y = ...")

The claims decided by derivation are registered by :mod:`.claims_proofs` and
:mod:`.claims_gradients` (imported with the package, after this module).

>>> sorted(CLAIMS)[:2]  # doctest: +SKIP
['argmax_attention_gradient', 'constant_init_symmetry']
"""
from __future__ import annotations

from dataclasses import dataclass

from derive.budget import Timeout
from derive.derivation import Derivation
from derive.errors import InputError
from derive.problem import KINDS, check_keys, get, problem_kind

VERDICTS = ("proved", "refuted", "shown", "undecided")


@dataclass
class Verdict:
    """How a claim was decided, and the one-line reason."""

    verdict: str
    evidence: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


@dataclass
class Claim:
    name: str
    statement: str
    keys: frozenset
    decide: object  # (spec, where, d) -> Verdict


CLAIMS = {}


def claim(name, statement, keys=()):
    """Register ``decide(spec, where, d) -> Verdict`` as the claim ``name``."""

    def register(fn):
        CLAIMS[name] = Claim(name, statement, frozenset(keys), fn)
        return fn

    return register


def kind_as_claim(kind, statement, verdict="proved"):
    """An existing worked kind (``linear_collapse``) as a claim of the same name: its
    Derivation is the evidence; ``verdict`` is what the kind establishes."""

    def decide(spec, where, d):
        inner = KINDS[kind]({**{k: v for k, v in spec.items() if k != "claim"},
                             "kind": kind}, where)
        d.nodes, d.edges, d.adjoints = inner.nodes, inner.edges, inner.adjoints
        d.sections += inner.sections
        for text in inner.notes:
            d.note(text)
        d.meta.update({k: v for k, v in inner.meta.items() if k not in d.meta})
        return Verdict(verdict, f"derived by the {kind} derivation (sections above)"), \
            inner.result

    CLAIMS[kind] = Claim(kind, statement, None, decide)


@problem_kind("claim")
def solve_claim(spec, where):
    """Decide the claim ``spec["claim"]``; the result is its verdict and evidence."""
    name = get(spec, "claim", where, types=str)
    if name not in CLAIMS:
        raise InputError(f"unknown claim {name!r:.40} (known: {', '.join(sorted(CLAIMS))})",
                         where=f"{where}: claim")
    c = CLAIMS[name]
    if c.keys is not None:
        check_keys(spec, {"kind", "title", "claim"} | set(c.keys), where)
    d = Derivation(title=get(spec, "title", where, default=f"Claim: {c.statement}"),
                   kind="claim")
    d.note(f"Claim: {c.statement}.")
    extra = None
    try:
        out = c.decide(spec, where, d)
        verdict, extra = out if isinstance(out, tuple) else (out, None)
    except Timeout:
        verdict = Verdict("undecided", "the symbolic check ran out of time; nothing was "
                          "proved or refuted")
    d.meta["claim"] = {"name": name, "verdict": verdict.verdict}
    d.result = {"claim": c.statement, "verdict": verdict.verdict,
                "evidence": verdict.evidence}
    if extra is not None:
        d.result["answer"] = extra
    return d


def _register_existing():
    kind_as_claim("linear_collapse", "stacked Linear layers without a nonlinearity between "
                  "them equal one Linear layer")
    kind_as_claim("conv_collapse", "stacked convolutions without a nonlinearity between "
                  "them equal one convolution")


_register_existing()
