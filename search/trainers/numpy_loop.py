"""The numpy trainer's inner loop, compiled by numba: one epoch of each of a set of members.

On a few hundred rows a mini-batch step is microseconds of arithmetic inside a hundred numpy
calls of about a microsecond each. Compiled, a step is one pass per layer over its rows and
weights, with the forward pass, the loss, the backward pass, the penalties, the clipping and
the optimizer's update fused. Each member (a fold x execution of a configuration, or one
configuration of a population) is independent of the others: its own rows, dropout draws,
weights and slots. So the caller runs groups of ``members`` in threads (the loop holds no
GIL), and what a seed produces does not depend on how many threads there are.

The random draws (each epoch's shuffles and dropout uniforms) stay in the caller's numpy
generator. ``cache=True`` keeps the compiled code on disk, so only the first run after an
install pays the compilation (about 18 s on a 2-core machine).

The tables the caller passes (see :class:`search.trainers.numpy_trainer._Trainer`):
- ``layers`` (L, 7) int64: kernel offset, bias offset (-1: none), inputs, outputs, activation
  code, and the range [first, end) of the dropouts applied to the layer's input;
- ``drops`` (D,) int64: each dropout's first column in ``uniforms``;
- ``variables`` (V, 2) int64: each variable's offset and size in a member's flat vector;
- ``flags``: output kind, from logits, optimizer, nesterov, momentum, batch size;
- ``hyper`` float32: momentum, rho, beta_1, beta_2, epsilon, clip low, clip high.
"""

from __future__ import annotations

import numba
import numpy as np

ACTIVATIONS = {"linear": 0, "relu": 1, "tanh": 2, "elu": 3, "sigmoid": 4}
OUTPUTS = {"linear": 0, "sigmoid": 1, "softmax": 2}
OPTIMIZERS = {"SGD": 0, "RMSprop": 1, "Adam": 2}
# A row's values: loss first, then the metric kinds a net can log (METRIC_CODES).
METRIC_CODES = {"mse": 1, "mae": 2, "logloss": 3, "accuracy": 4}
_VALUES = 5
# A layer of at least this many weights multiplies through BLAS; a smaller one costs less
# in a plain loop than in a BLAS call. A single unit (a regression's output) is a dot product
# per row at any width: its loops run over the inputs, which LLVM vectorises, where the
# loops over a layer's outputs were one unit long (2-3x slower for the whole epoch of a
# 13-128-1 net).
_BLAS_WEIGHTS = 256

# Loops over a part of a vector run over a slice of it (``w = flat[a:b]``, ``w[p]``), never
# over ``flat[a + p]``: LLVM vectorises the first and not the second, whose offset numba must
# check for a negative index first (4-8x slower on a step's weights and gradients).

# Fused multiply-adds and reassociated sums, but never "no NaN" or "no inf": a diverging
# member must still show a non-finite loss. Division by zero follows numpy (inf, no raise).
_jit = numba.njit(
    cache=True,
    nogil=True,
    error_model="numpy",
    fastmath={"contract", "reassoc", "nsz", "arcp"},
)


@_jit
def _sigmoid(z):
    if z < -88.0:  # exp(-z) overflows float32: the sigmoid is 0
        return np.float32(0.0)
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-z))


@_jit
def _tanh(z):
    """tanh(z) from one exp, in float64 so that the subtraction loses nothing float32 keeps
    (the result rounds as float32 tanh does): libm's float32 tanh took 22 ns here, this 4."""
    s = abs(np.float64(z))
    if s < 1e-4:  # tanh(z) = z (1 - z^2 / 3 + ...): z within float32 rounding
        return z
    t = 1.0 - 2.0 / (np.exp(2.0 * s) + 1.0)
    return np.float32(t if z >= 0 else -t)


@_jit
def _elu(z):
    """elu(z): z above 0, else e^z - 1 in float64 (libm's float32 expm1 took 11 ns here)."""
    if z > 0:
        return z
    w = np.float64(z)
    if w > -1e-4:  # e^w - 1 = w + w^2 / 2 + ...: the cubic term is below float32 rounding
        return np.float32(w + 0.5 * w * w)
    return np.float32(np.exp(w) - 1.0)


@_jit
def _activate(code, z):
    if code == 1:
        return max(z, np.float32(0.0))
    if code == 2:
        return _tanh(z)
    if code == 3:
        return _elu(z)
    if code == 4:
        return _sigmoid(z)
    return z


@_jit
def _activation_grad(code, da, z, a):
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


@_jit
def _forward(
    flat, x, rows, start, count, layers, drops, uniforms, rates, scales, train, inputs, zs, acts
):
    """Layer by layer for ``count`` rows ``rows[start:]``: each Dense layer's input (after
    its dropouts) in ``inputs``, pre-activations in ``zs``, activations in ``acts``; the
    output layer's logits are ``zs[L - 1]``."""
    n_layers = layers.shape[0]
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
        elif n_in * n_out >= _BLAS_WEIGHTS:
            product = np.dot(
                np.ascontiguousarray(inputs[i, :count, :n_in]), _kernel(flat, kernel, n_in, n_out)
            )
            for r in range(count):
                z = zs[i, r]
                for j in range(n_out):
                    z[j] = product[r, j]
        else:
            weights = _kernel(flat, kernel, n_in, n_out)
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
                    acts[i, r, j] = _activate(code, zs[i, r, j])


@_jit
def _kernel(flat, offset, n_in, n_out):
    """A Dense kernel of one member's flat vector (or its gradient) as an (inputs, outputs)
    view: indexed ``[k, j]`` in loops over ``range``, without a slice per row of it (making
    a slice cost more than a narrow row's arithmetic: the output layer has one unit)."""
    return flat[offset : offset + n_in * n_out].reshape((n_in, n_out))


@_jit
def _row_values(kind, from_logits, low, high, z, yf, yi, row, values):
    """One row's loss and metric values (``values`` by METRIC_CODES) from its logits ``z``."""
    n_out = z.shape[0]
    for v in range(_VALUES):
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
                p = min(max(_sigmoid(z[o]), low), high)
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


@_jit
def _output_grad(kind, from_logits, low, high, z, yf, yi, row, weight, dz):
    """d (batch mean loss) / d logits of one row whose weight is 1 / rows."""
    n_out = z.shape[0]
    if kind == 0:
        for o in range(n_out):
            dz[o] = np.float32(2.0 / n_out) * (z[o] - yf[row, o]) * weight
        return
    if kind == 1:
        for o in range(n_out):
            p = _sigmoid(z[o])
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


@_jit
def _penalty(flat, l1, l2, variables):
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


@_jit
def _penalize(flat, grad, l1, l2, variables):
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


@_jit
def _member_epoch(
    m,
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
    count,
    uniforms,
    layers,
    drops,
    variables,
    flags,
    hyper,
    metric_codes,
    logs,
):
    """One member's epoch over its ``count`` shuffled ``rows``; its logs into ``logs``."""
    kind, from_logits, optimizer = flags[0], flags[1] != 0, flags[2]
    nesterov, has_momentum, batch = flags[3] != 0, flags[4] != 0, flags[5]
    momentum, rho, beta_1, beta_2 = hyper[0], hyper[1], hyper[2], hyper[3]
    epsilon, low, high = hyper[4], hyper[5], hyper[6]
    n_layers = layers.shape[0]
    n_out = layers[n_layers - 1, 3]
    width = max(x.shape[1], layers[:, 3].max())
    inputs = np.zeros((n_layers, batch, width), dtype=np.float32)
    zs = np.zeros((n_layers, batch, width), dtype=np.float32)
    acts = np.zeros((n_layers, batch, width), dtype=np.float32)
    upper = np.zeros((batch, width), dtype=np.float32)  # d loss / d (a layer's output)
    lower = np.zeros((batch, width), dtype=np.float32)
    grad = np.zeros(flat.shape[0], dtype=np.float32)
    values = np.zeros(_VALUES, dtype=np.float32)
    sums = np.zeros(_VALUES, dtype=np.float64)
    one = np.float32(1.0)
    for start in range(0, count, batch):
        rows_now = min(batch, count - start)
        weight = one / rows_now
        _forward(
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
            True,
            inputs,
            zs,
            acts,
        )
        loss = np.float32(0.0)
        for r in range(rows_now):
            logits = zs[n_layers - 1, r, :n_out]
            _row_values(kind, from_logits, low, high, logits, yf, yi, rows[start + r], values)
            loss += values[0]
            for v in range(1, _VALUES):
                sums[v] += values[v]
            _output_grad(
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
                        upper[r, j] = _activation_grad(
                            code, upper[r, j], zs[i, r, j], acts[i, r, j]
                        )
            # One output unit (a regression's): the loops run over the inputs, without BLAS.
            single = n_out_i == 1
            big = not single and n_in * n_out_i >= _BLAS_WEIGHTS
            if big:
                above = np.ascontiguousarray(upper[:rows_now, :n_out_i])
                weights = _kernel(flat, kernel, n_in, n_out_i)
                product = np.dot(np.ascontiguousarray(inputs[i, :rows_now, :n_in]).T, above)
                grad[kernel : kernel + n_in * n_out_i] = product.reshape(n_in * n_out_i)
            kernel_grad = _kernel(grad, kernel, n_in, n_out_i)
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
                weights = _kernel(flat, kernel, n_in, n_out_i)
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
        penalty = _penalize(flat, grad, l1, l2, variables)
        sums[0] += (loss / rows_now + penalty) * rows_now
        _clip(grad, variables, clipnorm, global_clipnorm, clipvalue)
        step[m] += 1
        _update(
            flat,
            grad,
            slots,
            m,
            step[m],
            lr,
            optimizer,
            nesterov,
            has_momentum,
            momentum,
            rho,
            beta_1,
            beta_2,
            epsilon,
        )
    logs[m, 0] = sums[0] / count
    for k in range(metric_codes.shape[0]):
        logs[m, 1 + k] = sums[metric_codes[k]] / count


@_jit
def _clip(grad, variables, clipnorm, global_clipnorm, clipvalue):
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


@_jit
def _update(
    flat,
    grad,
    slots,
    m,
    step,
    lr,
    optimizer,
    nesterov,
    has_momentum,
    momentum,
    rho,
    beta_1,
    beta_2,
    epsilon,
):
    """Keras' update rules (SGD with momentum or Nesterov, RMSprop, Adam), one member."""
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


@_jit
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
    for m in members:
        _member_epoch(
            m,
            flat[m],
            slots,
            step,
            lr,
            l1[m],
            l2[m],
            clipnorm[m],
            global_clipnorm[m],
            clipvalue[m],
            rates[m],
            scales[m],
            x,
            yf,
            yi,
            rows[m],
            counts[m],
            uniforms[m],
            layers,
            drops,
            variables,
            flags,
            hyper,
            metric_codes,
            logs,
        )


@_jit
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
    width = max(x.shape[1], layers[:, 3].max())
    empty_drops = np.zeros(0, dtype=np.int64)
    empty_uniforms = np.zeros((0, 0), dtype=np.float32)
    no_rates = np.zeros(0, dtype=np.float32)
    for m in members:
        count = counts[m]
        inputs = np.zeros((n_layers, count, width), dtype=np.float32)
        zs = np.zeros((n_layers, count, width), dtype=np.float32)
        acts = np.zeros((n_layers, count, width), dtype=np.float32)
        values = np.zeros(_VALUES, dtype=np.float32)
        sums = np.zeros(_VALUES, dtype=np.float64)
        _forward(
            flat[m],
            x,
            rows[m],
            0,
            count,
            layers,
            empty_drops,
            empty_uniforms,
            no_rates,
            no_rates,
            False,
            inputs,
            zs,
            acts,
        )
        for r in range(count):
            _row_values(
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
            for v in range(_VALUES):
                sums[v] += values[v]
        logs[m, 0] = sums[0] / count + _penalty(flat[m], l1[m], l2[m], variables)
        for k in range(metric_codes.shape[0]):
            logs[m, 1 + k] = sums[metric_codes[k]] / count
