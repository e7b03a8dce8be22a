"""Search-space modules: each holds one ``search.Space`` subclass (installed as ``search.spaces``).

``linear`` and ``logistic`` are the tutorial's linear and logistic regressions with tuned
optimisation and penalties; ``mlp`` is its small dropout network with a tuned shape. Their
names are registered in :data:`search.space.BUILTIN_SPACES`.
"""
