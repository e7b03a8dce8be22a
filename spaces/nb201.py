"""NAS-Bench-201's cell (Dong & Yang, 2020): an operation on each of the 6 edges."""

from __future__ import annotations

from search.tabular_space import TabularSpace

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class NB201(TabularSpace):
    """The 15625 cells of the nb201-* tables (3 runs each)."""

    table = "nb201"
    description = "tabular NAS-Bench-201 cell: one of 5 operations on each of 6 edges"
    grid = {f"Op{edge}": OPERATIONS for edge in range(6)}
