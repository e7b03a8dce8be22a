"""Activations and the forward pass of a batch's rows through a member's layers."""

from __future__ import annotations

import numpy as np

from search.trainers.numpy.loop.codes import BLAS_WEIGHTS
from search.trainers.numpy.loop.jit import jit


@jit
def sigmoid(z):
    if z < -88.0:  # exp(-z) overflows float32: the sigmoid is 0
        return np.float32(0.0)
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-z))


@jit
def tanh(z):
    """tanh(z) from one exp, in float64 so that the subtraction loses nothing float32 keeps
    (the result rounds as float32 tanh does): libm's float32 tanh took 22 ns here, this 4."""
    s = abs(np.float64(z))
    if s < 1e-4:  # tanh(z) = z (1 - z^2 / 3 + ...): z within float32 rounding
        return z
    t = 1.0 - 2.0 / (np.exp(2.0 * s) + 1.0)
    return np.float32(t if z >= 0 else -t)


@jit
def elu(z):
    """elu(z): z above 0, else e^z - 1 in float64 (libm's float32 expm1 took 11 ns here)."""
    if z > 0:
        return z
    w = np.float64(z)
    if w > -1e-4:  # e^w - 1 = w + w^2 / 2 + ...: the cubic term is below float32 rounding
        return np.float32(w + 0.5 * w * w)
    return np.float32(np.exp(w) - 1.0)


@jit
def activate(code, z):
    if code == 1:
        return max(z, np.float32(0.0))
    if code == 2:
        return tanh(z)
    if code == 3:
        return elu(z)
    if code == 4:
        return sigmoid(z)
    return z


@jit
def activation_grad(code, da, z, a):
    """d loss / d z from d loss / d a, for a = activation(z)."""
    if code == 1:
        return da if z > 0 else np.float32(0.0)
    if code == 2:
        return da * (np.float32(1.0) - a * a)
    if code == 3:
        return da if z > 0 else da * (a + np.float32(1.0))
    if code == 4:
        return da * a * (np.float32(1.0) - a)
    return da


@jit
def forward(flat, x, rows, start, count, layers, drops, uniforms, rates, scales, inputs, zs, acts):
    """Layer by layer for ``count`` rows ``rows[start:]``: each Dense layer's input (after
    its dropouts) in ``inputs``, pre-activations in ``zs``, activations in ``acts``; the
    output layer's logits are ``zs[L - 1]``. The dropouts apply where ``uniforms`` holds
    draws (training); validation passes none. (A flag for it would be a literal, compiled
    once for each caller.)"""
    n_layers = layers.shape[0]
    train = uniforms.shape[0] > 0
    for r in range(count):
        row = rows[start + r]
        for j in range(x.shape[1]):
            inputs[0, r, j] = x[row, j]
    for i in range(n_layers):
        kernel, bias, n_in, n_out = layers[i, 0], layers[i, 1], layers[i, 2], layers[i, 3]
        code, first, end = layers[i, 4], layers[i, 5], layers[i, 6]
        if i > 0:
            for r in range(count):
                for j in range(n_in):
                    inputs[i, r, j] = acts[i - 1, r, j]
        if train:
            for d in range(first, end):
                rate = rates[d]
                if rate > 0:
                    column, scale = drops[d], scales[d]
                    for r in range(count):
                        draws, h = uniforms[start + r, column : column + n_in], inputs[i, r]
                        for j in range(n_in):
                            h[j] = h[j] * scale if draws[j] >= rate else 0.0
        if n_out == 1:  # a regression's output unit: one dot product a row
            w = flat[kernel : kernel + n_in]
            for r in range(count):
                h_r = inputs[i, r]
                total = np.float32(0.0)
                for k in range(n_in):
                    total += h_r[k] * w[k]
                zs[i, r, 0] = total
        elif n_in * n_out >= BLAS_WEIGHTS:
            weights = kernel_view(flat, kernel, n_in, n_out)
            product = np.dot(np.ascontiguousarray(inputs[i, :count, :n_in]), weights)
            for r in range(count):
                z = zs[i, r]
                for j in range(n_out):
                    z[j] = product[r, j]
        else:
            weights = kernel_view(flat, kernel, n_in, n_out)
            for r in range(count):
                z, h_r = zs[i, r], inputs[i, r]
                for j in range(n_out):
                    z[j] = 0.0
                for k in range(n_in):
                    h = h_r[k]
                    if h != 0:  # relu and dropout zeros: nothing to add
                        for j in range(n_out):
                            z[j] += h * weights[k, j]
        if bias >= 0:
            biases = flat[bias : bias + n_out]
            for r in range(count):
                z = zs[i, r]
                for j in range(n_out):
                    z[j] += biases[j]
        if i < n_layers - 1:
            for r in range(count):
                for j in range(n_out):
                    acts[i, r, j] = activate(code, zs[i, r, j])


@jit
def widest(x, layers):
    """The widest row a layer's arrays hold: the features or the widest layer's outputs (in
    a loop: an array's ``max`` compiles seconds of generic code)."""
    width = x.shape[1]
    for i in range(layers.shape[0]):
        width = max(width, layers[i, 3])
    return width


@jit
def kernel_view(flat, offset, n_in, n_out):
    """A Dense kernel of one member's flat vector (or its gradient) as an (inputs, outputs)
    view: indexed ``[k, j]`` in loops over ``range``, without a slice per row of it (making
    a slice cost more than a narrow row's arithmetic: the output layer has one unit)."""
    return flat[offset : offset + n_in * n_out].reshape((n_in, n_out))
