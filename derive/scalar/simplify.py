"""Simplification with a budget: the shortest of a few candidate forms.

``sympy.simplify`` can take very long on large expressions, and its favourite form is
not always the one a person writes. :func:`tidy` tries a few cheap rewrites and keeps
the one with the fewest operations; big expressions only get the cheap ones.

Every rewrite is bounded three ways, because user input decides how costly it is:

* size: expressions over :data:`MAX_TREE` nodes are returned as they are;
* degree: SymPy's polynomial algebra (cancel, factor, expand, simplify) reads
  ``(x + y)**10000`` or ``exp(-529/64)`` as a polynomial of degree 10000 or 529 in some
  generator, so expressions with exponents beyond :data:`MAX_DEGREE` skip it;
* time: the rewrites run under a deadline (:mod:`derive.budget`), and on time-out the
  best form found so far is kept.

A rewrite never changes the value; the derivation still confirms every exact value
against an independent float evaluation (see derive.scalar.backprop), because SymPy's zero
tests can be fooled.
"""
import sympy as sp

from derive.budget import Timeout, deadline, step_seconds

SIMPLIFY_OPS = 120  # count_ops above which full simplify() is skipped
MAX_DEGREE = 24  # exponent (numerator or denominator) above which polys are not used
MAX_TREE = 4000  # tree size above which no rewrite is tried
STEP_SECONDS = 2.0  # a single tidy() outside any allowance


def tidy(expr, budget=SIMPLIFY_OPS):
    """A short equivalent form of ``expr`` (exact; never changes the value).

    ``budget`` is the operation count above which the slow ``simplify`` is not tried.
    """
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    seconds = step_seconds(STEP_SECONDS)
    if seconds <= 0 or tree_size(expr, MAX_TREE) > MAX_TREE or high_degree(expr):
        return expr
    candidates = [expr]
    try:
        with deadline(seconds) as own:
            _rewrites(expr, budget, candidates)
    except Timeout:
        if not own:
            raise
    except (RecursionError, ValueError, ArithmeticError):
        pass  # e.g. printing a 5,000-digit integer to order generators: keep what we have
    return min(candidates, key=lambda e: (sp.count_ops(e), len(str(e))))


def _rewrites(expr, budget, candidates):
    for rewrite in (sp.cancel, sp.factor_terms, sp.expand):
        try:
            candidates.append(rewrite(expr))
        except (sp.PolynomialError, TypeError, ValueError, NotImplementedError):
            pass
    if sp.count_ops(expr) <= budget:
        candidates.append(sp.simplify(expr))
        candidates.append(sp.factor(candidates[-1]))


def high_degree(expr):
    """True when polynomial algebra on ``expr`` would work with a degree over MAX_DEGREE.

    A Pow's rational exponent p/q, or a rational coefficient p/q inside exp(), becomes
    a degree of |p| in a generator such as x**(1/q) or exp(1/q).
    """
    for atom in expr.atoms(sp.Pow, sp.exp):
        if isinstance(atom, sp.exp):
            numbers = [t.as_coeff_Mul()[0] for t in sp.Add.make_args(atom.args[0])]
        else:
            numbers = [atom.exp] if atom.exp.is_Rational else []
        for r in numbers:
            if r.is_Rational and (abs(r.p) > MAX_DEGREE or r.q > MAX_DEGREE):
                return True
    return False


def tree_size(expr, limit):
    """Nodes of ``expr`` as a tree (shared sub-trees counted each time), capped at limit+1.

    Counted over the DAG with a memo, so a doubly-shared chain 60 levels deep (2**60
    nodes as a tree) is measured in 60 steps instead of being walked.
    """
    sizes = {}
    stack = [(expr, False)]
    while stack:
        e, done = stack.pop()
        if e in sizes:
            continue
        if done or not e.args:
            sizes[e] = min(limit + 1, 1 + sum(sizes[a] for a in e.args))
            continue
        stack.append((e, True))
        stack.extend((a, False) for a in e.args if a not in sizes)
    return sizes[expr]

