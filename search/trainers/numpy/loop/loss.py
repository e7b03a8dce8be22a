"""A row's loss and metric values, and the loss gradient of its logits, for each output
kind (linear, sigmoid, softmax), from the logits or the clipped probabilities."""

from __future__ import annotations

import numpy as np

from search.trainers.numpy.loop.codes import VALUES
from search.trainers.numpy.loop.jit import jit
from search.trainers.numpy.loop.layers import sigmoid


@jit
def row_values(kind, from_logits, low, high, z, yf, yi, row, values):
    """One row's loss and metric values (``values`` by METRIC_CODES) from its logits ``z``."""
    n_out = z.shape[0]
    for v in range(VALUES):
        values[v] = 0.0
    if kind == 0:
        for o in range(n_out):
            error = z[o] - yf[row, o]
            values[1] += error * error
            values[2] += abs(error)
        values[1] /= n_out
        values[2] /= n_out
        values[0] = values[1]
        return
    if kind == 1:
        for o in range(n_out):
            y = yf[row, o]
            if from_logits:  # max(z, 0) - z y + log(1 + e^-|z|)
                values[3] += max(z[o], 0.0) - z[o] * y + np.log1p(np.exp(-abs(z[o])))
            else:
                p = min(max(sigmoid(z[o]), low), high)
                values[3] -= y * np.log(p) + (1 - y) * np.log(1 - p)
            values[4] += 1.0 if (z[o] > 0) == (y > 0.5) else 0.0
        values[3] /= n_out
        values[4] /= n_out
        values[0] = values[3]
        return
    label = yi[row]
    top = z[0]
    best = 0
    for o in range(1, n_out):
        if z[o] > top:
            top, best = z[o], o
    total = np.float32(0.0)
    for o in range(n_out):
        total += np.exp(z[o] - top)
    if from_logits:
        values[3] = -(z[label] - top - np.log(total))
    else:  # Keras divides by the sum once more, then clips
        sum_p = np.float32(0.0)
        for o in range(n_out):
            sum_p += np.exp(z[o] - top) / total
        p = np.exp(z[label] - top) / total / sum_p
        values[3] = -np.log(min(max(p, low), high))
    values[4] = 1.0 if best == label else 0.0
    values[0] = values[3]


@jit
def output_grad(kind, from_logits, low, high, z, yf, yi, row, weight, dz):
    """d (batch mean loss) / d logits of one row whose weight is 1 / rows."""
    n_out = z.shape[0]
    if kind == 0:
        for o in range(n_out):
            dz[o] = np.float32(2.0 / n_out) * (z[o] - yf[row, o]) * weight
        return
    if kind == 1:
        for o in range(n_out):
            p = sigmoid(z[o])
            inside = from_logits or (p > low and p < high)  # a clipped one passes nothing
            dz[o] = (p - yf[row, o]) * (weight / n_out) if inside else 0.0
        return
    top = z[0]
    for o in range(1, n_out):
        top = max(top, z[o])
    total = np.float32(0.0)
    for o in range(n_out):
        dz[o] = np.exp(z[o] - top)
        total += dz[o]
    label = yi[row]
    p_label = dz[label] / total
    inside = from_logits or (p_label > low and p_label < high)
    for o in range(n_out):
        dz[o] = (dz[o] / total - (1.0 if o == label else 0.0)) * weight if inside else 0.0
