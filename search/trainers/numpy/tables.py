"""What the numpy trainer's compiled loop reads, as small arrays: where each variable lies
in a member's flat vector (:class:`Layout`), what each member sets for itself
(:class:`Own`), and the net's layers, dropouts, output, optimizer and metrics
(:class:`Tables`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import keras
import numpy as np

from search.trainers.numpy.loop import codes
from search.trainers.numpy.net import Net

# How Keras computes a crossentropy of a sigmoid or softmax output. The TensorFlow backend
# finds the output's logits and computes from them; the others (JAX, torch, numpy) clip the
# probabilities to [epsilon, 1 - epsilon] first, so a saturated output's loss is capped (about
# 16.1) and passes no gradient back. This trainer computes as the backend it runs on does.
FROM_LOGITS = keras.backend.backend() == "tensorflow"


@dataclass(frozen=True)
class Layout:
    """Where each variable lies in a member's flat vector of all its variables."""

    shapes: tuple[tuple[int, ...], ...]
    sizes: np.ndarray  # elements per variable
    starts: np.ndarray  # offset of each variable

    @classmethod
    def of(cls, arrays: Sequence[np.ndarray]) -> Layout:
        sizes = np.array([a.size for a in arrays], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(tuple(a.shape for a in arrays), sizes, starts)

    def flatten(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays])

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """Each variable of every member as a view of ``flat`` (M, P): (M, *shape)."""
        members = len(flat)
        return [
            flat[:, start : start + size].reshape((members, *shape))
            for start, size, shape in zip(self.starts, self.sizes, self.shapes, strict=True)
        ]


@dataclass(frozen=True)
class Own:
    """What each member sets for itself, a row per member: a population's configurations
    differ in these (and in their weights) only."""

    lr: np.ndarray  # (M,) learning rates
    rates: np.ndarray  # (M, dropouts) dropout rates
    scales: np.ndarray  # (M, dropouts) 1 / (1 - rate): what a kept unit is multiplied by
    l1: np.ndarray  # (M, V) the L1 coefficient of every variable
    l2: np.ndarray  # (M, V)
    clipnorm: np.ndarray  # (M,) per-variable norm limit; inf: none
    global_clipnorm: np.ndarray  # (M,)
    clipvalue: np.ndarray  # (M,)

    @classmethod
    def of(cls, nets: Sequence[Net]) -> Own:
        def limits(name: str) -> np.ndarray:
            values = [getattr(net.optimizer, name) for net in nets]
            return np.array([v if v else np.inf for v in values], dtype=np.float32)

        rates = np.array([net.rates for net in nets], dtype=np.float64).reshape(len(nets), -1)
        return cls(
            lr=np.array([net.optimizer.lr for net in nets], dtype=np.float32),
            rates=rates.astype(np.float32),
            scales=(1 / (1 - rates)).astype(np.float32),
            l1=np.array([[l1 for l1, _ in net.penalties] for net in nets], dtype=np.float32),
            l2=np.array([[l2 for _, l2 in net.penalties] for net in nets], dtype=np.float32),
            clipnorm=limits("clipnorm"),
            global_clipnorm=limits("global_clipnorm"),
            clipvalue=limits("clipvalue"),
        )

    def take(self, positions: list[int]) -> Own:
        return Own(*(getattr(self, f.name)[positions] for f in fields(self)))


@dataclass(frozen=True)
class Tables:
    """What the compiled loop reads of a net (:mod:`search.trainers.numpy.loop.codes` says
    how): its layers, dropouts, variables, output, optimizer and metrics."""

    layers: np.ndarray  # (L, 7) int64
    dropout_widths: np.ndarray  # (D,) int64: the width of each dropout's input
    variables: np.ndarray  # (V, 2) int64
    flags: np.ndarray  # (6,) int64
    hyper: np.ndarray  # (7,) float32
    metric_codes: np.ndarray  # (K,) int64

    @classmethod
    def of(cls, net: Net, layout: Layout, batch_size: int) -> Tables:
        layers, widths = [], [0] * len(net.rates)
        pending: list[int] = []  # the dropouts since the last Dense: its input's
        for op in net.ops:
            if op.kernel < 0:
                pending.append(op.dropout)
                continue
            shape = layout.shapes[op.kernel]
            for d in pending:
                widths[d] = shape[0]
            first = pending[0] if pending else 0
            layers.append(
                [
                    layout.starts[op.kernel],
                    layout.starts[op.bias] if op.bias >= 0 else -1,
                    shape[0],
                    shape[1],
                    # The output layer's activation is the loss's (OUTPUTS): linear here.
                    codes.ACTIVATIONS[op.activation] if op is not net.ops[-1] else 0,
                    first,
                    first + len(pending),
                ]
            )
            pending = []
        optimizer = net.optimizer
        low, high = _clip_range()
        return cls(
            layers=np.array(layers, dtype=np.int64),
            dropout_widths=np.array(widths, dtype=np.int64),
            variables=np.stack([layout.starts, layout.sizes], axis=1).astype(np.int64),
            flags=np.array(
                [
                    codes.OUTPUTS[net.kind],
                    FROM_LOGITS,
                    codes.OPTIMIZERS[optimizer.kind],
                    optimizer.nesterov,
                    bool(optimizer.momentum),
                    batch_size,
                ],
                dtype=np.int64,
            ),
            hyper=np.array(
                [
                    optimizer.momentum,
                    optimizer.rho,
                    optimizer.beta_1,
                    optimizer.beta_2,
                    optimizer.epsilon,
                    low,
                    high,
                ],
                dtype=np.float32,
            ),
            metric_codes=np.array(
                [codes.METRIC_CODES[kind] for kind in net.metric_kinds], dtype=np.int64
            ),
        )


def _clip_range() -> tuple[np.float32, np.float32]:
    """Where Keras' crossentropies clip probabilities off TensorFlow: [epsilon, 1 - epsilon]."""
    epsilon = keras.config.epsilon()
    return np.float32(epsilon), np.float32(1.0 - epsilon)
