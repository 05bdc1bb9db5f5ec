"""Verdicts on tensor answers in matrix notation (``@``, ``*``, ``.T``).

``matrix_answers``  reading and judging one tensor answer (``TensorChecker``)
``answer_eval``     NumPy evaluation of answers and of the derivation's matrix display
``entry_proof``     symbolic proofs: both sides brought to one entry-wise normal form
``tensor_table``    tensor adjoint tables: the first wrong step, errors counted once
"""
