"""The numpy trainer: ``fit``'s training of a Dense/Dropout chain, without ``fit``'s overhead.

On a few hundred rows a Keras ``fit`` step is microseconds of arithmetic inside a
millisecond of dispatch, callbacks and metric objects, and the JAX compiled trainer trades
that for seconds of XLA compilation per model shape. This trainer reads the model as a chain
of layers (:mod:`.net`) and trains it in one compiled loop (:mod:`.loop`, compiled once per
install and cached), on any backend. The runs of one configuration (every fold x execution)
train together: their weights are stacked on a leading axis, one *member* per run
(:mod:`.members`), and the members are split over the cores in threads (:mod:`.threads`).
So do the runs of several configurations of one structure (a group of the population
driver, :mod:`search.trainers.population`), each member with its own learning rate, dropout
rates, penalties and clipping (:class:`.tables.Own`), and an ensemble's retrainings.

What matches ``fit`` as :func:`search.trainers.keras_fit.evaluate` calls it:
- the first run starts from the built model's weights, those ``fit`` starts from; the
  other runs draw theirs from the layers' initializers, seeded with the run's seed;
- each epoch reshuffles the run's training rows; batches have the configuration's batch
  size and the last partial batch is kept (its loss is the mean over its rows);
- dropout keeps a unit with probability ``1 - rate`` and scales it by ``1 / (1 - rate)``;
- the loss is the compiled loss plus the L1/L2 penalties; the epoch's ``loss`` is the
  row-weighted mean over its batches, its metrics are over the epoch's training predictions
  (dropout on), and ``val_*`` are computed after the epoch on the validation rows;
- the optimizers are Keras' update rules (SGD with momentum or Nesterov, RMSprop, Adam),
  with ``clipnorm`` per variable, ``global_clipnorm`` or ``clipvalue``;
- early stopping, pruning (the first run reports every epoch), the objective (best epoch of
  the mean curve) and ``TrialFailedError`` on a non-finite loss are ``evaluate``'s.

What differs: the random streams (shuffles and dropout masks come from one numpy generator
per group). The crossentropies are computed as the backend's are: from the logits on
TensorFlow, from probabilities clipped to [epsilon, 1 - epsilon] on the others. With one
batch per epoch and no dropout, curves equal ``fit``'s up to float rounding; otherwise they
agree in distribution over seeds (``tests/trainers/test_trainers.py``). A model that
:meth:`NumpyTrainer.unsupported` refuses is trained by ``fit``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NumpyTrainer"]


def __getattr__(name: str) -> Any:
    # Lazy: the loop's compilation ahead (:mod:`.loop.ahead`) imports this package on a
    # thread, and must not wait there for Keras, which the trainer imports.
    if name == "NumpyTrainer":
        from search.trainers.numpy.trainer import NumpyTrainer

        return NumpyTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
