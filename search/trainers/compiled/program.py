"""The compiled program of one signature: a template model, its optimizer and the jitted
chunk of epochs (one member alone, or a group vmapped), and the training loop that watches
each member between chunks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from search.space import compile_arguments
from search.trainers.base import Report, Watch
from search.trainers.checkpoint import same_shapes
from search.trainers.compiled.traced import Hyper, TracedPenalty, clip_by_norm, traced_dropout


@dataclass
class Arrays:
    """One fold's training and validation rows, as the program takes them."""

    x: Any
    y: Any
    x_val: Any
    y_val: Any


@dataclass
class Resume:
    """Where the members of a call continue from: ``epoch`` epochs trained, each member's
    curve of them and its state after them (the arrays of :meth:`Trained.flat`)."""

    epoch: int
    curves: Sequence[dict[str, list[float]]]
    states: Sequence[Sequence[np.ndarray]]


@dataclass
class Trained:
    """Each member's curve, what ended it (None if nothing did), whether it is still
    running, and the state after ``done`` epochs."""

    curves: list[dict[str, list[float]]]
    errors: list[Exception | None]
    state: Any
    single: bool
    running: list[bool] = field(default_factory=list)
    done: int = 0
    _host: Any = field(default=None, repr=False)

    def weights(self, member: int) -> tuple[list[Any], list[Any]]:
        trainable, non_trainable = self.state[0], self.state[1]
        if self.single:
            return list(trainable), list(non_trainable)
        return [v[member] for v in trainable], [v[member] for v in non_trainable]

    def flat(self, member: int) -> list[np.ndarray]:
        """A member's whole state on the host, what its checkpoint keeps: its trainable
        and non-trainable variables (dropout's seed state among them), then its
        optimizer's (step, learning rate, slots). The state is fetched once for all."""
        if self._host is None:
            import jax

            self._host = jax.tree.map(np.asarray, self.state)
        leaves = [leaf for part in self._host for leaf in part]
        return leaves if self.single else [leaf[member] for leaf in leaves]


class Program:
    """A template model, its optimizer and the jitted chunk of epochs (single and vmapped)."""

    def __init__(self, template: keras.Model, batch_size: int) -> None:
        import jax

        self.template = template
        self.batch_size = int(batch_size)
        optimizer = template.optimizer
        if not optimizer.built:
            optimizer.build(template.trainable_variables)
        self.optimizer = optimizer
        # Optimizer slots start the same for every model of this signature; only the learning
        # rate differs, so it is the one value swapped in per member.
        self.optimizer_init = [v.value for v in optimizer.variables]
        rate = optimizer.learning_rate
        self.lr_index = next((i for i, v in enumerate(optimizer.variables) if v is rate), None)
        self.penalised = [
            i for i, v in enumerate(template.trainable_variables) if v.regularizer is not None
        ]
        layers = template.layers
        self.dropouts = [
            i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Dropout)
        ]
        loss = template.loss
        self.loss_fn: Callable[[Any, Any], Any] = (
            loss.call if isinstance(loss, keras.losses.Loss) else keras.losses.get(loss)
        )
        # Fresh copies: their variables are this program's initial metric state.
        self.metrics = [
            type(m).from_config(m.get_config())
            for m in compile_arguments(template).get("metrics") or []
        ]
        self.metric_init = [[v.value for v in metric.variables] for metric in self.metrics]
        self.names = (
            ["loss"]
            + [m.name for m in self.metrics]
            + ["val_loss"]
            + [f"val_{m.name}" for m in self.metrics]
        )
        self.output_dim = int(template.outputs[0].shape[-1] or 1)
        # One member runs unbatched; a population is vmapped over every state and
        # hyperparameter array, and shares the data.
        self._single = jax.jit(self._chunk, static_argnums=(5,))
        self._population = jax.jit(
            jax.vmap(self._chunk, in_axes=(0, 0, None, 0, None, None)), static_argnums=(5,)
        )

    # ----------------------------------------------------------------- per member

    def hyperparameters(self, model: keras.Model) -> Hyper:
        """One model's traced hyperparameters, as float32 arrays."""
        variables = model.trainable_variables
        penalties = [
            [float(getattr(variables[i].regularizer, name, 0.0) or 0.0) for name in ("l1", "l2")]
            for i in self.penalised
        ]
        return Hyper(
            np.array(penalties, dtype=np.float32).reshape(len(self.penalised), 2),
            np.array([model.layers[i].rate for i in self.dropouts], dtype=np.float32),
            np.float32(model.optimizer.clipnorm or 0.0),
        )

    def fits(self, flat: Sequence[np.ndarray]) -> bool:
        """Whether a saved :meth:`Trained.flat` state is one of this program's members'."""
        template = self.template
        variables = [*template.trainable_variables, *template.non_trainable_variables]
        return same_shapes(flat, [*variables, *self.optimizer.variables])

    def saved_state(self, flat: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """A :meth:`Trained.flat` state as the program's carry."""
        trainable = len(self.template.trainable_variables)
        optimizer = len(flat) - len(self.optimizer.variables)
        return list(flat[:trainable]), list(flat[trainable:optimizer]), list(flat[optimizer:])

    def initial_state(self, model: keras.Model) -> tuple[Any, ...]:
        optimizer = list(self.optimizer_init)
        if self.lr_index is not None:
            optimizer[self.lr_index] = np.float32(model.optimizer.learning_rate.numpy())
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            optimizer,
        )

    # ----------------------------------------------------------------- tracing

    @contextlib.contextmanager
    def _traced(self, hyper: Hyper) -> Iterator[None]:
        """Put the traced hyperparameters into the template while it is traced."""
        variables = self.template.trainable_variables
        layers = self.template.layers
        saved_penalties = [variables[i].regularizer for i in self.penalised]
        saved_clipnorm = self.optimizer.clipnorm
        try:
            for k, i in enumerate(self.penalised):
                variables[i].regularizer = TracedPenalty(
                    hyper.penalties[k, 0], hyper.penalties[k, 1]
                )
            for k, i in enumerate(self.dropouts):
                object.__setattr__(layers[i], "call", traced_dropout(layers[i], hyper.rates[k]))
            # Clipping moves out of the optimizer, to a traced threshold (see _epoch).
            self.optimizer.clipnorm = None
            yield
        finally:
            self.optimizer.clipnorm = saved_clipnorm
            for k, i in enumerate(self.penalised):
                variables[i].regularizer = saved_penalties[k]
            for i in self.dropouts:
                if "call" in vars(layers[i]):
                    object.__delattr__(layers[i], "call")

    def _forward(self, trainable: Any, non_trainable: Any, x: Any, training: bool) -> Any:
        y_pred, non_trainable, losses = self.template.stateless_call(
            trainable, non_trainable, x, training=training, return_losses=True
        )
        extra = sum((keras.ops.sum(loss) for loss in losses), keras.ops.zeros(()))
        return y_pred, non_trainable, extra

    def _mean_loss(self, y: Any, y_pred: Any, weight: Any) -> Any:
        """The compiled loss averaged over the rows with weight 1 (Keras' batch mean)."""
        import jax.numpy as jnp

        values = self.loss_fn(y, y_pred)
        values = jnp.reshape(values, (values.shape[0], -1))
        return jnp.sum(values * weight[:, None]) / (jnp.sum(weight) * values.shape[1])

    def _epoch(self, state: Any, hyper: Hyper, data: Any, order: Any) -> tuple[Any, Any]:
        """One epoch over the rows in ``order`` (padded to whole batches), then validation."""
        import jax
        import jax.numpy as jnp

        x, y, x_val, y_val = data
        n = x.shape[0]
        steps = order.shape[0] // self.batch_size
        weight = (jnp.arange(order.shape[0]) < n).astype("float32")
        batches = (
            order.reshape(steps, self.batch_size),
            weight.reshape(steps, self.batch_size),
        )

        def step(carry: Any, batch: Any) -> tuple[Any, None]:
            trainable, non_trainable, opt, loss_sum, metric_vars = carry
            rows, w = batch
            xb, yb = x[rows], y[rows]

            def loss_of(trainable: Any, non_trainable: Any) -> Any:
                y_pred, non_trainable, extra = self._forward(trainable, non_trainable, xb, True)
                return self._mean_loss(yb, y_pred, w) + extra, (y_pred, non_trainable)

            (loss, (y_pred, non_trainable)), grads = jax.value_and_grad(loss_of, has_aux=True)(
                trainable, non_trainable
            )
            grads = [clip_by_norm(g, hyper.clipnorm) for g in grads]
            trainable, opt = self.optimizer.stateless_apply(opt, grads, trainable)
            metric_vars = [
                metric.stateless_update_state(v, yb, y_pred, sample_weight=w)
                for metric, v in zip(self.metrics, metric_vars, strict=True)
            ]
            # Keras' loss tracker weights each batch's loss by its number of rows.
            return (trainable, non_trainable, opt, loss_sum + loss * jnp.sum(w), metric_vars), None

        trainable, non_trainable, opt = state
        carry = (trainable, non_trainable, opt, jnp.zeros(()), self.metric_init)
        (trainable, non_trainable, opt, loss_sum, metric_vars), _ = jax.lax.scan(
            step, carry, batches
        )
        logs = [loss_sum / n]
        logs += [m.stateless_result(v) for m, v in zip(self.metrics, metric_vars, strict=True)]
        if x_val.shape[0] == 0:  # retraining on the whole split: nothing to validate on
            logs += [jnp.full((), jnp.nan)] * (1 + len(self.metrics))
        else:
            y_pred, _, extra = self._forward(trainable, non_trainable, x_val, False)
            logs.append(self._mean_loss(y_val, y_pred, jnp.ones(x_val.shape[0])) + extra)
            for metric, init in zip(self.metrics, self.metric_init, strict=True):
                updated = metric.stateless_update_state(init, y_val, y_pred)
                logs.append(metric.stateless_result(updated))
        values = jnp.stack([jnp.asarray(v, "float32").reshape(()) for v in logs])
        return (trainable, non_trainable, opt), values

    def _chunk(
        self, state: Any, hyper: Hyper, data: Any, orders: Any, left: Any, length: int
    ) -> Any:
        """``length`` epochs; epochs from ``left`` on leave the state as it is (padding)."""
        import jax
        import jax.numpy as jnp

        with self._traced(hyper):

            def epoch(state: Any, xs: Any) -> tuple[Any, Any]:
                index, order = xs
                new, values = self._epoch(state, hyper, data, order)
                active = index < left
                kept = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, state)
                return kept, values

            return jax.lax.scan(epoch, state, (jnp.arange(length), orders))

    # ----------------------------------------------------------------- training

    def _targets(self, y: np.ndarray) -> Any:
        """Targets shaped for the loss: (n, 1) floats for one output unit, class codes else."""
        y = np.asarray(y)
        if y.ndim == 1 and self.output_dim == 1:
            return y.astype(np.float32)[:, None]
        if y.ndim == 1:
            return y.astype(np.int32)
        return y.astype(np.float32)

    def train(
        self,
        models: Sequence[keras.Model],
        arrays: Arrays,
        seeds: Sequence[int],
        epochs: int,
        patience: int,
        objective: str | None,
        reports: Sequence[Report | None],
        chunk: int,
        resume: Resume | None = None,
        after: Callable[[Trained, int], None] | None = None,
    ) -> Trained:
        """Train ``models`` (one per seed) together; watch each member between chunks.

        With ``resume``, the members continue from its states after its epochs, which their
        watches replay (early stopping counts them), each shuffle generator advanced past
        them: the run goes on as if never stopped. ``after(trained, epochs)`` is called
        after every chunk (``epochs`` of them) with what the members have done so far.
        """
        import jax
        import jax.numpy as jnp

        single = len(models) == 1
        if resume is None:
            states = [self.initial_state(model) for model in models]
        else:
            states = [self.saved_state(flat) for flat in resume.states]
        hypers = [self.hyperparameters(model) for model in models]
        if single:
            state, hyper = states[0], hypers[0]
            run = self._single
        else:
            # Stacked on the host: jnp.stack would compile a small program per variable shape.
            state = jax.tree.map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *states)
            hyper = jax.tree.map(lambda *leaves: np.stack(leaves), *hypers)
            run = self._population
        data = (
            jnp.asarray(arrays.x, "float32"),
            jnp.asarray(self._targets(arrays.y)),
            jnp.asarray(arrays.x_val, "float32"),
            jnp.asarray(self._targets(arrays.y_val)),
        )
        n = len(arrays.x)
        padded = -(-n // self.batch_size) * self.batch_size
        # Shuffled on the host, as Keras shuffles arrays: numpy, one generator per member.
        generators = [np.random.default_rng(seed) for seed in seeds]
        length = max(1, min(chunk, epochs))
        watches = [Watch(objective, patience, r) for r in reports]
        done = 0
        if resume is not None:
            done = resume.epoch
            for watch, generator, curve in zip(watches, generators, resume.curves, strict=True):
                watch.replay(curve)
                for _ in range(done):
                    generator.permutation(n)  # each epoch draws one permutation
        while done < epochs and any(w.running for w in watches):
            left = min(length, epochs - done)
            orders = np.zeros((len(models), length, padded), dtype=np.int32)
            for member, generator in enumerate(generators):
                for epoch in range(length):
                    orders[member, epoch, :n] = generator.permutation(n)
            state, values = run(state, hyper, data, orders[0] if single else orders, left, length)
            values = np.asarray(values).reshape(len(models), length, -1)
            for member, watch in enumerate(watches):
                for offset, row in enumerate(values[member, :left]):
                    watch.end_epoch(done + offset, dict(zip(self.names, row, strict=True)))
            done += left
            if after is not None:
                after(_trained(watches, state, single, done), left)
        return _trained(watches, state, single, done)


def _trained(watches: Sequence[Watch], state: Any, single: bool, done: int) -> Trained:
    return Trained(
        [w.curve for w in watches],
        [w.error for w in watches],
        state,
        single,
        [w.running for w in watches],
        done,
    )
