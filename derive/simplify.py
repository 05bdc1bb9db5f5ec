"""Simplification with a budget: the shortest of a few candidate forms.

``sympy.simplify`` can take very long on large expressions, and its favourite form is
not always the one a person writes. :func:`tidy` tries a few cheap rewrites and keeps
the one with the fewest operations; big expressions only get the cheap ones.
"""
import sympy as sp

SIMPLIFY_OPS = 120  # count_ops above which full simplify() is skipped


def tidy(expr, budget=SIMPLIFY_OPS):
    """A short equivalent form of ``expr`` (exact; never changes the value).

    ``budget`` is the operation count above which the slow ``simplify`` is not tried.
    """
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    candidates = [expr]
    for rewrite in (sp.cancel, sp.factor_terms, sp.expand):
        try:
            candidates.append(rewrite(expr))
        except (sp.PolynomialError, TypeError, ValueError, NotImplementedError):
            pass
    if sp.count_ops(expr) <= budget:
        candidates.append(sp.simplify(expr))
        candidates.append(sp.factor(candidates[-1]))
    return min(candidates, key=lambda e: (sp.count_ops(e), len(str(e))))


def is_zero(expr):
    """True when ``expr`` simplifies to exactly zero (False when unsure)."""
    return tidy(sp.expand(expr)) == 0 or sp.simplify(expr) == 0
