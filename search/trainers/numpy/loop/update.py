"""What a step does to a member's gradient and weights after the backward pass: the
L1/L2 penalties, Keras' clippings and the optimizers' update rules."""

from __future__ import annotations

import numpy as np

from search.trainers.numpy.loop.jit import jit


@jit
def penalty(flat, l1, l2, variables):
    """The L1/L2 penalties' value: per variable, over the variables that have one."""
    total = 0.0
    for v in range(variables.shape[0]):
        a, b = l1[v], l2[v]
        if a != 0 or b != 0:
            begin, size = variables[v, 0], variables[v, 1]
            w = flat[begin : begin + size]
            for p in range(size):
                total += abs(w[p]) * a + w[p] * w[p] * b
    return np.float32(total)


@jit
def penalize(flat, grad, l1, l2, variables):
    """Add the penalties' gradients to ``grad``; their value, from the same weights.

    One pass over the weights that have a penalty (a bias has none): the weights are the
    step's largest arrays, and a wide net's steps are bound by reading them.
    """
    total = 0.0
    two = np.float32(2.0)
    for v in range(variables.shape[0]):
        a, b = l1[v], l2[v]
        if a != 0 or b != 0:
            begin, size = variables[v, 0], variables[v, 1]
            w, g = flat[begin : begin + size], grad[begin : begin + size]
            for p in range(size):
                total += abs(w[p]) * a + w[p] * w[p] * b
                # np.sign's branches would keep the loop from being vectorised.
                sign = np.float32(w[p] > 0) - np.float32(w[p] < 0)
                g[p] += a * sign + two * b * w[p]
    return np.float32(total)


@jit
def clip(grad, variables, clipnorm, global_clipnorm, clipvalue):
    """As Keras clips: each variable's norm, the global norm, each value (inf: none)."""
    if np.isfinite(clipnorm):
        for v in range(variables.shape[0]):
            begin, size = variables[v, 0], variables[v, 1]
            g = grad[begin : begin + size]
            total = np.float32(0.0)
            for p in range(size):
                total += g[p] * g[p]
            scale = min(np.float32(1.0), clipnorm / np.sqrt(total))
            for p in range(size):
                g[p] *= scale
    if np.isfinite(global_clipnorm):
        total = np.float32(0.0)
        for p in range(grad.shape[0]):
            total += grad[p] * grad[p]
        scale = min(np.float32(1.0), global_clipnorm / np.sqrt(total))
        for p in range(grad.shape[0]):
            grad[p] *= scale
    if np.isfinite(clipvalue):
        for p in range(grad.shape[0]):
            grad[p] = min(max(grad[p], -clipvalue), clipvalue)


@jit
def update(flat, grad, slots, m, step, lr, rule):
    """Keras' update rules (SGD with momentum or Nesterov, RMSprop, Adam), member ``m`` at
    its ``step``-th update, its learning rate ``lr[m]``. ``rule`` is the optimizer's code,
    nesterov, has momentum, momentum, rho, beta_1, beta_2 and epsilon, read from the tables
    once an epoch."""
    optimizer, nesterov, has_momentum, momentum, rho, beta_1, beta_2, epsilon = rule
    rate = lr[m]
    one = np.float32(1.0)
    if optimizer == 0:
        if not has_momentum:
            for p in range(flat.shape[0]):
                flat[p] -= rate * grad[p]
            return
        velocity = slots[0, m]
        for p in range(flat.shape[0]):
            velocity[p] = velocity[p] * momentum - rate * grad[p]
            flat[p] += momentum * velocity[p] - rate * grad[p] if nesterov else velocity[p]
        return
    if optimizer == 1:
        square = slots[0, m]
        for p in range(flat.shape[0]):
            square[p] = square[p] * rho + (one - rho) * grad[p] * grad[p]
            increment = rate * grad[p] / np.sqrt(square[p] + epsilon)
            if has_momentum:
                slots[1, m, p] = slots[1, m, p] * momentum + increment
                increment = slots[1, m, p]
            flat[p] -= increment
        return
    # Adam: alpha carries the bias corrections of this member's own step count.
    alpha = rate * np.sqrt(one - beta_2**step) / (one - beta_1**step)
    first, second = slots[0, m], slots[1, m]
    for p in range(flat.shape[0]):
        first[p] += (grad[p] - first[p]) * (one - beta_1)
        second[p] += (grad[p] * grad[p] - second[p]) * (one - beta_2)
        flat[p] -= alpha * (first[p] / (np.sqrt(second[p]) + epsilon))
