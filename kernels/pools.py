"""Reading and writing the pools of the species a run holds.

A run's pools table has a row only for the species some cell can carry:
a species whose set point is 0 on every kind is never made, so trogocytosis,
bites and division never have any of it to move, and every cell holds 0 of
it for the whole run (single-antigen CAR-T runs hold 2 of the 6 species).
The parameter vector maps each species to its row, or -1 (``POOL_ROW``; the
host fills it in :func:`gpusim.parameters.build`), and likewise the per-cell
antigen set points (``SET_POINT_ROW``).  Rules read a species through
:func:`molecules`, which answers 0 for a species without a row, so a rule
reads as if every species were there and the result is the same bit for bit.
"""

import numpy as np

from gpusim.kernels.decorators import device
from gpusim.kernels.params import POOL_ROW, SET_POINT_ROW


@device
def _value(table, row, i):
    """Cell ``i``'s value in ``row`` of a per-run table, 0 where the run has no such row (``row`` -1)."""
    if row < 0:
        return np.int64(0)
    return np.int64(table[row, i])


@device
def molecules(pools, params, species, i):
    """Molecules of ``species`` on cell ``i`` (0 when the run holds none of the species)."""
    return _value(pools, params[POOL_ROW + species], i)


@device
def add_molecules(pools, params, species, i, amount):
    """Add ``amount`` (possibly negative) molecules of ``species`` to cell ``i``; a species the run holds none of
    only ever receives 0."""
    row = params[POOL_ROW + species]
    if row >= 0:
        pools[row, i] += amount


@device
def put_molecules(pools, params, species, i, value):
    """Set cell ``i``'s molecules of ``species`` to ``value`` (always 0 for a species the run holds none of)."""
    row = params[POOL_ROW + species]
    if row >= 0:
        pools[row, i] = value


@device
def set_point(set_points, params, which, i):
    """Cell ``i``'s heritable set point ``which`` (kernels.molecules SET_A, SET_B): 0 when the run has no row."""
    return _value(set_points, params[SET_POINT_ROW + which], i)
