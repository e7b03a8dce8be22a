"""What the compiled program traces in place of Keras' own: the hyperparameters a group's
members differ in (L1/L2 coefficients, dropout rates, ``clipnorm``) as arrays, and the
dropout masks' random numbers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import keras


class Hyper(NamedTuple):
    """One member's traced hyperparameters (the learning rate is in the optimizer state)."""

    penalties: Any  # (n_penalised, 2): l1, l2 per regularised variable
    rates: Any  # (n_dropout,)
    clipnorm: Any  # () 0 when off


class TracedPenalty(keras.regularizers.Regularizer):
    """L1/L2 with coefficients that are traced arrays: the same formula as Keras' L1L2."""

    def __init__(self, l1: Any, l2: Any) -> None:
        self.l1 = l1
        self.l2 = l2

    def __call__(self, x: Any) -> Any:
        return self.l1 * keras.ops.sum(keras.ops.abs(x)) + self.l2 * keras.ops.sum(
            keras.ops.square(x)
        )


def _hash32(x: Any) -> Any:
    """A 32-bit integer finaliser (lowbias32): every output bit depends on every input bit."""
    import jax.numpy as jnp

    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _uniform(seed: Any, shape: tuple[int, ...]) -> Any:
    """Uniform [0, 1) floats from a uint32[2] seed, by hashing a counter under that key.

    Not ``jax.random``: threefry takes about half a second to compile per call site on this
    machine, more than the whole training of a small model; an integer hash takes almost none.
    """
    import jax.numpy as jnp

    seed = jnp.asarray(seed).astype(jnp.uint32)
    key = _hash32(seed[0] ^ _hash32(seed[1] ^ jnp.uint32(0x9E3779B9)))
    count = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    bits = _hash32(_hash32(count * jnp.uint32(0x9E3779B9) ^ key) ^ (key * jnp.uint32(0x85EBCA6B)))
    return (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def traced_dropout(layer: keras.layers.Dropout, rate: Any) -> Callable[..., Any]:
    """Dropout's ``call`` with a traced rate (Keras checks ``rate > 0`` in Python).

    The mask is drawn from the layer's seed-generator state, which advances on every call
    and is threaded through the training loop with the other non-trainable variables.
    """

    def call(inputs: Any, training: bool | None = False) -> Any:
        if not training:
            return inputs
        shape = tuple(inputs.shape)
        if layer.noise_shape is not None:
            shape = tuple(
                s if n is None else n for s, n in zip(shape, layer.noise_shape, strict=True)
            )
        keep = 1.0 - rate
        # Bernoulli(keep), as jax.random.bernoulli draws it: uniform < keep. With rate 0 every
        # unit is kept and scaled by 1, so the layer is the identity as in Keras.
        kept = _uniform(layer.seed_generator.next(), shape) < keep
        return keras.ops.where(kept, inputs / keep, keras.ops.zeros_like(inputs))

    return call


def clip_by_norm(grad: Any, clipnorm: Any) -> Any:
    """Keras' per-tensor ``clipnorm`` with a traced threshold; 0 leaves the gradient as it is."""
    import jax.numpy as jnp

    l2sum = jnp.sum(jnp.square(grad))
    positive = l2sum > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, l2sum, 1.0)), l2sum)
    clipped = grad * clipnorm / jnp.maximum(norm, jnp.where(clipnorm > 0, clipnorm, 1.0))
    return jnp.where(clipnorm > 0, clipped, grad)
