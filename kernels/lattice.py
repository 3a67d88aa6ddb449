"""Voxels of the cubic lattice and their 26 neighbours (Moore neighbourhood).

Voxels are numbered ``(z * ny + y) * nx + x`` (C order of ``occ[z, y, x]``).
A *direction* is an integer 0..25 naming one of the 26 neighbours; it is stored
instead of a slot (for example the heading of a migrating cell) because it
survives sorting and compaction of the agent table.  Directions are ordered as
loops over dz, dy, dx from -1 to 1 meet them (the voxel itself skipped), so
that ``opposite(d) == 25 - d``.  Walls are closed: a neighbour past the edge
does not exist (-1).

A voxel's coordinates come from its index by two divisions, which the rules
do by multiplying (:func:`quotient`): the lattice's divisors arrive in
``params`` as multipliers, so a lattice holds at most ``MAX_VOXELS`` voxels.
"""

import numpy as np

from gpusim.kernels.decorators import device
from gpusim.kernels.params import FIRST_LAYER, NX, NY, NZ, PLANE_DIVISOR, ROW_DIVISOR

N_DIRECTIONS = 26
MAX_VOXELS = 2**32  # every voxel index below 2**32, as quotient needs
_HALF = np.uint64(32)


def division_magic(divisor):
    """Host side: ``(high, low)``, the 32-bit halves of ceil(2**64 / ``divisor``), with which :func:`quotient`
    divides by ``divisor`` (1 to 2**32)."""
    divisor = int(divisor)
    if not 1 <= divisor <= 2**32:
        raise ValueError(f"a divisor must be 1 to 2**32, not {divisor}")
    multiplier = -(-(1 << 64) // divisor)
    return multiplier >> 32, multiplier & 0xFFFFFFFF


@device
def quotient(n, magic_high, magic_low):
    """``n // divisor`` for 0 <= n < 2**32, ``(magic_high, magic_low) = division_magic(divisor)``, by multiplying.

    A 64-bit division is a library routine of dozens of instructions on a GPU
    (``__cuda_sm20_div_s64``) and tens of cycles on a CPU, and every rule that
    looks at a cell's neighbours needs two.  Exact: for c = ceil(2**64 / d)
    with d <= 2**32, floor(c n / 2**64) = floor(n / d) for every n < 2**32
    (Lemire, Kaser & Kurz 2019, Softw. Pract. Exp. 49:953, theorem 1); c n is
    taken from c's 32-bit halves, so no product passes 2**64.
    """
    u = np.uint64(n)
    return np.int64((np.uint64(magic_high) * u + ((np.uint64(magic_low) * u) >> _HALF)) >> _HALF)


@device
def direction_offset(direction):
    """(dz, dy, dx), each in -1..1, of a direction 0..25."""
    d = direction + 1 if direction >= 13 else direction
    return d // 9 - 1, (d // 3) % 3 - 1, d % 3 - 1


@device
def opposite(direction):
    """The direction pointing back."""
    return 25 - direction


@device
def voxel_coords(voxel, params):
    """(z, y, x) of a lattice voxel's flat index, by the lattice's divisors in ``params`` (:func:`quotient`)."""
    z = quotient(voxel, params[PLANE_DIVISOR], params[PLANE_DIVISOR + 1])
    rest = voxel - z * (params[NY] * params[NX])
    y = quotient(rest, params[ROW_DIVISOR], params[ROW_DIVISOR + 1])
    return z, y, rest - y * params[NX]


@device
def tissue_coords(voxel, params):
    """(z, y, x) of a voxel in the whole lattice: :func:`voxel_coords` with z counted from the lattice's first
    layer (``FIRST_LAYER``, not 0 where a rank holds only some layers of a split run)."""
    z, y, x = voxel_coords(voxel, params)
    return z + params[FIRST_LAYER], y, x


@device
def tissue_voxel(voxel, params):
    """The flat index of a voxel in the whole lattice (see :func:`tissue_coords`)."""
    return voxel + params[FIRST_LAYER] * (params[NY] * params[NX])


@device
def index_coords(index, ny, nx):
    """(z, y, x) of a flat index into any box of extent (., ny, nx), by division: for the field grid, whose
    kernels run every few steps over a fraction of the lattice's voxels."""
    plane = ny * nx
    z = index // plane
    rest = index - z * plane
    y = rest // nx
    return z, y, rest - y * nx


@device
def voxel_index(z, y, x, nz, ny, nx):
    """Flat index of (z, y, x), or -1 outside the lattice."""
    if z < 0 or y < 0 or x < 0 or z >= nz or y >= ny or x >= nx:
        return -1
    return (z * ny + y) * nx + x


@device
def neighbour(voxel, direction, params):
    """Flat index of the neighbour of lattice voxel ``voxel`` in ``direction``, or -1 past a wall."""
    z, y, x = voxel_coords(voxel, params)
    return neighbour_at(z, y, x, direction, params[NZ], params[NY], params[NX])


@device
def step_towards(direction, ny, nx):
    """How far, in flat voxel indices, the neighbour in ``direction`` lies from a voxel that has one there (no
    wall between: a claimed voxel, say)."""
    dz, dy, dx = direction_offset(direction)
    return (dz * ny + dy) * nx + dx


@device
def neighbour_at(z, y, x, direction, nz, ny, nx):
    """Flat index of the neighbour of voxel (z, y, x) in ``direction``, or -1 past a wall."""
    dz, dy, dx = direction_offset(direction)
    return voxel_index(z + dz, y + dy, x + dx, nz, ny, nx)


@device
def occupant_at(z, y, x, direction, occ, nz, ny, nx):
    """Slot of the cell next to voxel (z, y, x) in ``direction``: -1 if that voxel is empty or past a wall."""
    v = neighbour_at(z, y, x, direction, nz, ny, nx)
    if v < 0:
        return -1
    return occ[v]
