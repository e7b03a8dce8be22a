"""Search-space modules: each holds one ``search.Space`` subclass.

``linear`` and ``logistic`` are the tutorial's linear and logistic regressions with tuned
optimisation and penalties; ``mlp`` is its small dropout network with a tuned shape.
"""
