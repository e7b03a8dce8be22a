"""Search-space modules: each holds one ``search.Space`` subclass (installed as ``search.spaces``).

``linear`` and ``logistic`` are the tutorial's linear and logistic regressions with tuned
optimisation and penalties; ``mlp`` is its small dropout network with a tuned shape.
``fcnet``, ``hpobench`` and ``nb201`` are the grids of the tabular benchmarks
(:mod:`search.tasks.tabular`): they build a configuration to look up, not a model. Their
names are registered in :data:`search.space_lookup.BUILTIN_SPACES`.
"""
