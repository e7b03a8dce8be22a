"""A member's epoch (the kernel: forward, loss, backward, penalties, clipping and update,
batch by batch), and the entry points the numpy trainer calls: the epoch of each of a set of
members, and their validation."""

from __future__ import annotations

import numpy as np

from search.trainers.numpy.loop.codes import BLAS_WEIGHTS, VALUES
from search.trainers.numpy.loop.jit import jit
from search.trainers.numpy.loop.layers import activation_grad, forward, kernel_view, widest
from search.trainers.numpy.loop.loss import output_grad, row_values
from search.trainers.numpy.loop.update import clip, penalize, penalty, update


@jit
def member_epoch(m, flat, slots, step, lr, own, data, rows, count, uniforms, tables, logs):
    """Member ``m``'s epoch over its ``count`` shuffled ``rows``; its logs into ``logs``.

    ``flat`` is the member's weights, ``own`` what it sets for itself (its penalties,
    clippings, dropout rates and scales), ``data`` the features and targets (float, integer)
    and ``tables`` the net's (:mod:`.codes`). The one function over 80 lines: a batch's
    forward pass, loss, backward pass and update in one body, its work arrays reused.
    """
    l1, l2, clipnorm, global_clipnorm, clipvalue, rates, scales = own
    x, yf, yi = data
    layers, drops, variables, flags, hyper, metric_codes = tables
    kind, from_logits, optimizer = flags[0], flags[1] != 0, flags[2]
    nesterov, has_momentum, batch = flags[3] != 0, flags[4] != 0, flags[5]
    momentum, rho, beta_1, beta_2 = hyper[0], hyper[1], hyper[2], hyper[3]
    epsilon, low, high = hyper[4], hyper[5], hyper[6]
    rule = (optimizer, nesterov, has_momentum, momentum, rho, beta_1, beta_2, epsilon)
    n_layers = layers.shape[0]
    n_out = layers[n_layers - 1, 3]
    width = widest(x, layers)
    inputs = np.zeros((n_layers, batch, width), dtype=np.float32)
    zs = np.zeros((n_layers, batch, width), dtype=np.float32)
    acts = np.zeros((n_layers, batch, width), dtype=np.float32)
    upper = np.zeros((batch, width), dtype=np.float32)  # d loss / d (a layer's output)
    lower = np.zeros((batch, width), dtype=np.float32)
    grad = np.zeros(flat.shape[0], dtype=np.float32)
    values = np.zeros(VALUES, dtype=np.float32)
    sums = np.zeros(VALUES, dtype=np.float64)
    one = np.float32(1.0)
    for start in range(0, count, batch):
        rows_now = min(batch, count - start)
        weight = one / rows_now
        forward(
            flat,
            x,
            rows,
            start,
            rows_now,
            layers,
            drops,
            uniforms,
            rates,
            scales,
            inputs,
            zs,
            acts,
        )
        loss = np.float32(0.0)
        for r in range(rows_now):
            logits = zs[n_layers - 1, r, :n_out]
            row_values(kind, from_logits, low, high, logits, yf, yi, rows[start + r], values)
            loss += values[0]
            for v in range(1, VALUES):
                sums[v] += values[v]
            output_grad(
                kind,
                from_logits,
                low,
                high,
                logits,
                yf,
                yi,
                rows[start + r],
                weight,
                upper[r, :n_out],
            )
        grad[:] = 0.0
        for i in range(n_layers - 1, -1, -1):
            kernel, bias, n_in, n_out_i = layers[i, 0], layers[i, 1], layers[i, 2], layers[i, 3]
            code, first, end = layers[i, 4], layers[i, 5], layers[i, 6]
            if i < n_layers - 1:
                for r in range(rows_now):
                    for j in range(n_out_i):
                        upper[r, j] = activation_grad(code, upper[r, j], zs[i, r, j], acts[i, r, j])
            # One output unit (a regression's): the loops run over the inputs, without BLAS.
            single = n_out_i == 1
            big = not single and n_in * n_out_i >= BLAS_WEIGHTS
            if big:
                above = np.ascontiguousarray(upper[:rows_now, :n_out_i])
                weights = kernel_view(flat, kernel, n_in, n_out_i)
                product = np.dot(np.ascontiguousarray(inputs[i, :rows_now, :n_in]).T, above)
                # Copied in a loop: assigning the array to the slice would compile a shape
                # check whose error message (int to str) costs seconds of first compilation.
                kernel_flat = grad[kernel : kernel + n_in * n_out_i]
                product_flat = product.reshape(n_in * n_out_i)
                for p in range(n_in * n_out_i):
                    kernel_flat[p] = product_flat[p]
            kernel_grad = kernel_view(grad, kernel, n_in, n_out_i)
            bias_grad = grad[max(bias, 0) : max(bias, 0) + n_out_i]  # unused without a bias
            kernel_column = grad[kernel : kernel + n_in]  # the kernel gradient of a single unit
            for r in range(rows_now):
                above_r, h_r = upper[r], inputs[i, r]
                if single:
                    delta = above_r[0]
                    for k in range(n_in):
                        kernel_column[k] += h_r[k] * delta
                elif not big:
                    for k in range(n_in):
                        h = h_r[k]
                        if h != 0:
                            for j in range(n_out_i):
                                kernel_grad[k, j] += h * above_r[j]
                if bias >= 0:
                    for j in range(n_out_i):
                        bias_grad[j] += above_r[j]
            if i == 0:
                break
            if big:
                below = np.dot(above, weights.T)
                for r in range(rows_now):
                    for k in range(n_in):
                        lower[r, k] = below[r, k]
            elif single:
                w = flat[kernel : kernel + n_in]
                for r in range(rows_now):
                    delta, lower_r = upper[r, 0], lower[r]
                    for k in range(n_in):
                        lower_r[k] = delta * w[k]
            else:
                weights = kernel_view(flat, kernel, n_in, n_out_i)
                for r in range(rows_now):
                    above_r, lower_r = upper[r], lower[r]
                    for k in range(n_in):
                        total = np.float32(0.0)
                        for j in range(n_out_i):
                            total += above_r[j] * weights[k, j]
                        lower_r[k] = total
            for d in range(first, end):  # back through the input's dropouts
                # In locals: read from the arrays, they would be read again for every unit.
                rate, column, scale = rates[d], drops[d], scales[d]
                if rate > 0:
                    for r in range(rows_now):
                        draws, below_r = uniforms[start + r, column : column + n_in], lower[r]
                        for k in range(n_in):
                            below_r[k] = below_r[k] * scale if draws[k] >= rate else 0.0
            upper, lower = lower, upper
        # Keras' loss tracker weighs each batch's mean loss (penalties included) by its rows.
        penalties = penalize(flat, grad, l1, l2, variables)
        sums[0] += (loss / rows_now + penalties) * rows_now
        clip(grad, variables, clipnorm, global_clipnorm, clipvalue)
        step[m] += 1
        update(flat, grad, slots, m, step[m], lr, rule)
    logs[m, 0] = sums[0] / count
    for k in range(metric_codes.shape[0]):
        logs[m, 1 + k] = sums[metric_codes[k]] / count


@jit
def train_epoch(
    members,
    flat,
    slots,
    step,
    lr,
    l1,
    l2,
    clipnorm,
    global_clipnorm,
    clipvalue,
    rates,
    scales,
    x,
    yf,
    yi,
    rows,
    counts,
    uniforms,
    layers,
    drops,
    variables,
    flags,
    hyper,
    metric_codes,
    logs,
):
    """The epoch of each of ``members``: ``flat`` (M, P) and ``slots`` (S, M, P)
    are updated in place, ``step`` (M,) counts each member's updates, and ``logs`` (M, 1 + K)
    receives each member's epoch loss and metrics."""
    data = (x, yf, yi)
    tables = (layers, drops, variables, flags, hyper, metric_codes)
    for m in members:
        own = (l1[m], l2[m], clipnorm[m], global_clipnorm[m], clipvalue[m], rates[m], scales[m])
        member_epoch(
            m, flat[m], slots, step, lr, own, data, rows[m], counts[m], uniforms[m], tables, logs
        )


@jit
def evaluate(
    members,
    flat,
    l1,
    l2,
    x,
    yf,
    yi,
    rows,
    counts,
    layers,
    variables,
    flags,
    hyper,
    metric_codes,
    logs,
):
    """Each of ``members``' loss (penalties included) and metrics on its ``counts``
    ``rows``, without dropout, into ``logs`` (M, 1 + K)."""
    kind, from_logits = flags[0], flags[1] != 0
    low, high = hyper[5], hyper[6]
    n_layers = layers.shape[0]
    n_out = layers[n_layers - 1, 3]
    width = widest(x, layers)
    empty_drops = np.zeros(0, dtype=np.int64)
    empty_uniforms = np.zeros((0, 0), dtype=np.float32)
    no_rates = np.zeros(0, dtype=np.float32)
    for m in members:
        count = counts[m]
        inputs = np.zeros((n_layers, count, width), dtype=np.float32)
        zs = np.zeros((n_layers, count, width), dtype=np.float32)
        acts = np.zeros((n_layers, count, width), dtype=np.float32)
        values = np.zeros(VALUES, dtype=np.float32)
        sums = np.zeros(VALUES, dtype=np.float64)
        forward(
            flat[m],
            x,
            rows[m],
            np.int64(0),  # not the literal 0: one compiled forward for both callers
            count,
            layers,
            empty_drops,
            empty_uniforms,
            no_rates,
            no_rates,
            inputs,
            zs,
            acts,
        )
        for r in range(count):
            row_values(
                kind,
                from_logits,
                low,
                high,
                zs[n_layers - 1, r, :n_out],
                yf,
                yi,
                rows[m, r],
                values,
            )
            for v in range(VALUES):
                sums[v] += values[v]
        logs[m, 0] = sums[0] / count + penalty(flat[m], l1[m], l2[m], variables)
        for k in range(metric_codes.shape[0]):
            logs[m, 1 + k] = sums[metric_codes[k]] / count
