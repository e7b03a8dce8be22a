"""How the loop's functions are compiled: numba, cached on disk, without the GIL.

Loops over a part of a vector run over a slice of it (``w = flat[a:b]``, ``w[p]``), never
over ``flat[a + p]``: LLVM vectorises the first and not the second, whose offset numba must
check for a negative index first (4-8x slower on a step's weights and gradients).
"""

from __future__ import annotations

import numba

# Fused multiply-adds and reassociated sums, but never "no NaN" or "no inf": a diverging
# member must still show a non-finite loss. Division by zero follows numpy (inf, no raise).
jit = numba.njit(
    cache=True,
    nogil=True,
    error_model="numpy",
    fastmath={"contract", "reassoc", "nsz", "arcp"},
)
