"""Molecule pools and what happens in the contact between two membranes.

Pools are integer molecule counts per cell, one row of the ``pools`` table
per species a run's cells can carry (rules read them through
:mod:`gpusim.kernels.pools`).  The same species means the same molecule on
any cell: antigen on a CAR cell is acquired antigen, CAR on a tumour cell is
acquired CAR.

Binding in a synapse is the quasi-steady state of 2D receptor-ligand binding
(docs/model.md, synapse; CARCADE):
``C = ((R + L + K) - sqrt((R + L + K)^2 - 4 R L)) / 2`` with R and L the
molecules inside the contact area and K the 2D dissociation constant in
molecules per contact area.  It is computed in integers (an exact integer
square root), so every backend binds the same number of complexes.
"""

import math

import numpy as np

from gpusim.kernels.decorators import device

# species (rows of the pools table)
ANTIGEN_A = 0  # target antigen (e.g. CD19); on effectors: acquired by trogocytosis
ANTIGEN_B = 1  # second antigen, for dual targeting
CAR = 2  # CAR against A; on tumour cells: acquired by reverse trogocytosis
RECEPTOR_B = 3  # second receptor against B: a CAR, or a chimeric costimulatory receptor (CCR)
ICAR = 4  # inhibitory CAR
ICAR_LIGAND = 5  # the iCAR's ligand, an NK self-marker
N_SPECIES = 6
SPECIES_NAMES = ("antigen_a", "antigen_b", "car", "receptor_b", "icar", "icar_ligand")

# rows of the per-cell set-point table (heritable tumour antigen levels)
SET_A = 0
SET_B = 1
N_SET_POINTS = 2
SET_POINT_SPECIES = (ANTIGEN_A, ANTIGEN_B)  # the antigen of each set-point row

# a membrane pool is shared by at most this many exchanges per step (26 neighbours
# attacking it plus the cell's own synapse), so that outflows never exceed the pool
SHARES = 27

_S32 = np.uint64(32)
_HALVES = (32, 16, 8, 4, 2, 1)  # the widths bit_length halves its search by
_LOW32 = np.uint64(0xFFFFFFFF)

# flow-cytometer bins: 0, 1, 2, 3 exactly, then four bins per doubling from 4 up
# to 2**20, and one last bin for 2**20 and more
HIST_BINS = 77
HIST_BINS_PER_DOUBLING = 4


@device
def isqrt(x):
    """floor(sqrt(x)) of a non-negative int64, exact on every backend."""
    if x <= 0:
        return np.int64(0)
    r = np.int64(math.sqrt(float(x)))
    while r * r > x:
        r -= 1
    while (r + 1) * (r + 1) <= x:
        r += 1
    return r


@device
def bound_complexes(receptors, ligands, k_2d):
    """Complexes at quasi-steady state of 2D binding (molecules, integers)."""
    r = np.int64(receptors)
    lig = np.int64(ligands)
    if r <= 0 or lig <= 0:
        return np.int64(0)
    total = r + lig + np.int64(k_2d)
    c = (total - isqrt(total * total - 4 * r * lig)) // 2
    return min(c, min(r, lig))


@device
def share(amount, fraction_q32, bits):
    """``amount * fraction`` rounded stochastically to an integer (expected value exact).

    ``fraction_q32`` is the fraction times 2**32; ``bits`` a random uint64 whose
    low 32 bits decide the rounding.
    """
    if amount <= 0:
        return np.int64(0)
    product = np.uint64(amount) * np.uint64(fraction_q32) + (np.uint64(bits) & _LOW32)
    return np.int64(product >> _S32)


@device
def bit_length(x):
    """Number of bits of a positive integer below 2**63 (0 for 0 or less): the doubling it falls in.

    Found by halving the width searched, six steps whatever the value, not by
    shifting one bit at a time (15 rounds for a typical antigen count, on
    every cell the census bins).
    """
    if x <= 0:
        return 0
    bits = 1
    rest = x
    for width in _HALVES:
        if (rest >> width) != 0:
            rest >>= width
            bits += width
    return bits


@device
def log_bin(x):
    """Flow-cytometer bin of a molecule count: 0 for none, then quarter-doublings up to 2**20."""
    if x <= 0:
        return 0
    bits = bit_length(x)
    if bits > 20:
        return HIST_BINS - 1
    if bits <= 2:
        return x  # 1 -> 1, 2 -> 2, 3 -> 3
    sub = (x >> (bits - 3)) & 3
    return 4 + (bits - 3) * HIST_BINS_PER_DOUBLING + sub


def log_bin_edges():
    """Host side: the ``HIST_BINS + 1`` bin edges in molecules (bin b holds edges[b] <= x < edges[b + 1])."""
    edges = [0, 1, 2, 3]
    for bits in range(3, 21):
        for sub in range(4):
            edges.append((4 + sub) << (bits - 3))
    edges += [2**20, 2**31]
    return np.asarray(edges, dtype=np.int64)
