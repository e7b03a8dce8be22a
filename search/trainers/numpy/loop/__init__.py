"""The numpy trainer's inner loop, compiled by numba: one epoch of each of a set of members.

On a few hundred rows a mini-batch step is microseconds of arithmetic inside a hundred numpy
calls of about a microsecond each. Compiled, a step is one pass per layer over its rows and
weights, with the forward pass, the loss, the backward pass, the penalties, the clipping and
the optimizer's update fused. Each member (a fold x execution of a configuration, or one
configuration of a population) is independent of the others: its own rows, dropout draws,
weights and slots. So the caller runs groups of ``members`` in threads (the loop holds no
GIL), and what a seed produces does not depend on how many threads there are.

- :mod:`.codes`: the tables the caller passes, and the codes in them;
- :mod:`.jit`: how every function here is compiled;
- :mod:`.layers`: activations and the forward pass of a batch's rows;
- :mod:`.loss`: a row's loss, metrics and the loss gradient of its logits;
- :mod:`.update`: penalties, clipping and the optimizers' update rules;
- :mod:`.epoch`: a member's epoch (the kernel), and the two entry points the caller calls,
  :func:`~.epoch.train_epoch` and :func:`~.epoch.evaluate`.
- :mod:`.ahead`: the one signature of each entry point, and their compilation;
- :mod:`.background`: that compilation in a process of its own beside a run's start
  (``search.trainers.compile_ahead``, which the run command calls), loaded before the first
  trial.

The random draws (each epoch's shuffles and dropout uniforms) stay in the caller's numpy
generator. ``cache=True`` keeps the compiled code on disk, so only the first run after an
install pays the compilation (about 18 s on a 2-core machine before 2026-12-07; what keeps
it smaller: one signature per function, no literal arguments, no array assignment's or
array ``max``'s generic code; docs/performance.md). numba checks a cached
function against its own file only: a function compiled into its callers (every one here but
the entry points) stays cached inside them when its module changes. After editing a module of
the loop, delete the cached code (``find search/trainers/numpy/loop -name '*.nb[ci]' -delete``).
"""
