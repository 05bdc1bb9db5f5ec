"""The scalar engine: expressions of scalar symbols -> a Graph -> a recorded reverse sweep.

``parse``         user text -> SymPy through a whitelist (never ``eval``)
``scalar_graph``  ``Graph``: named scalar nodes in topological order (from an expression,
                  from assignments, or decomposed automatically)
``backprop``      the reverse sweep, recorded step by step into a ``Derivation``
``simplify``      bounded simplification (the shortest of a few candidate forms)
``confirm``       the independent float twin every exact value is checked against
"""
