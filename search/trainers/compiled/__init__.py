"""A compiled trainer for the JAX backend: whole epochs of ``fit`` as one jitted program.

Keras ``fit`` spends almost all of a small model's training in Python: one dispatch per batch,
callbacks, metric objects. Here the model's ``stateless_call`` and the optimizer's
``stateless_apply`` run inside ``lax.scan`` over the batches of an epoch and over ``chunk``
epochs, so a chunk is one XLA call. Between chunks Python records the curves, fails a trial
on a non-finite loss, reports to the pruner and stops early, as ``fit`` does
after every epoch. Several configurations with the same shapes train together under
``jax.vmap``, a group of the population driver (:mod:`search.trainers.population`).

What matches ``fit`` as :func:`search.trainers.keras_fit.evaluate` calls it:

- each epoch reshuffles the training rows (on the host, a numpy generator seeded by the
  run's seed, as Keras shuffles arrays with numpy);
- batches have the configuration's batch size, and the last partial batch is kept, as Keras
  keeps it: it is padded to the full size, and the padded rows get weight 0 in the loss and
  the metrics, so its loss is the mean over its real rows;
- dropout is drawn from each layer's seed-generator state, which is threaded through the
  scan with the other non-trainable variables and advances on every call;
- the loss is the compiled loss plus ``model.losses`` (regularisation), from
  ``stateless_call(..., return_losses=True)``;
- the epoch's ``loss`` is the batch-size-weighted mean over batches, its train metrics are
  the compiled metrics over the epoch's predictions, and ``val_loss`` / ``val_*`` are computed
  on the whole validation fold after the epoch, with ``training=False``;
- early stopping, the objective (best epoch of the curve averaged over folds and executions)
  and ``TrialFailedError`` on a NaN or infinite loss are those of ``evaluate``.

Between chunks it also writes a trial's checkpoint when one is due
(:mod:`search.trainers.checkpoint`: every run's curve, and the running run's carry fetched
to the host), and a trial continued from one starts that run's program from the saved carry,
its shuffle generator advanced past the saved epochs: the continued run is the uninterrupted
one up to float rounding.

The random streams differ from Keras' (the dropout masks come from an integer hash of the
seed state, which compiles in a fraction of the time ``jax.random`` takes), so results match
``fit`` in distribution over seeds, not number for number. With one batch per epoch and no
dropout there is nothing random left, and the curves equal ``fit``'s up to float rounding.

The JIT cache: a program is compiled once per model *signature*, the model and optimizer
configuration with the hyperparameters that only change numbers taken out. The learning rate
(an optimizer variable), ``clipnorm``, L1/L2 coefficients and dropout rates are traced
arguments, so trials that differ only in them reuse one compiled program, and a population
stacks them on the vmapped axis. Layer sizes, activations, which layers exist, the optimizer
type and its other settings, the batch size and the data shapes are part of the signature.
Compiling a program takes seconds (XLA), against hundredths of a second to run one: the
compiled trainer pays off when signatures repeat, and a population when many share one.

- :mod:`.checks`: what it cannot train (``fit`` trains it);
- :mod:`.signature`: which models share a program and a group;
- :mod:`.traced`: the hyperparameters and random numbers the program traces;
- :mod:`.program`: the program of one signature and its training loop;
- :mod:`.trainer`: :class:`CompiledTrainer`, and the caches of programs and fold arrays.
"""

from __future__ import annotations

from search.trainers.compiled.trainer import CHUNK, CompiledTrainer

__all__ = ["CHUNK", "CompiledTrainer"]
