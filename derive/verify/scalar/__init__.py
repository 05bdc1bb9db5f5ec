"""Verdicts on scalar answers: judge one answer, name the mistake, judge adjoint tables.

``judge``         one answer against a scalar Derivation: parse, compare, prove, diagnose
``diagnose``      the kind of mistake in a wrong answer
``scalar_table``  adjoint tables: the first wrong step, an error carried forward once
``points``        the recorded derivation replayed in numbers at sample points
"""
