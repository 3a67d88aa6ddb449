"""Voxels of the cubic lattice and their 26 neighbours (Moore neighbourhood).

Voxels are numbered ``(z * ny + y) * nx + x`` (C order of ``occ[z, y, x]``).
A *direction* is an integer 0..25 naming one of the 26 neighbours; it is stored
instead of a slot (for example the heading of a migrating cell) because it
survives sorting and compaction of the agent table.  Directions are ordered as
loops over dz, dy, dx from -1 to 1 meet them (the voxel itself skipped), so
that ``opposite(d) == 25 - d``.  Walls are closed: a neighbour past the edge
does not exist (-1).
"""

from gpusim.kernels.launch import device

N_DIRECTIONS = 26


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
def voxel_coords(voxel, ny, nx):
    """(z, y, x) of a flat voxel index."""
    plane = ny * nx
    z = voxel // plane
    rest = voxel - z * plane
    y = rest // nx
    return z, y, rest - y * nx


@device
def voxel_index(z, y, x, nz, ny, nx):
    """Flat index of (z, y, x), or -1 outside the lattice."""
    if z < 0 or y < 0 or x < 0 or z >= nz or y >= ny or x >= nx:
        return -1
    return (z * ny + y) * nx + x


@device
def neighbour(voxel, direction, nz, ny, nx):
    """Flat index of the neighbour of ``voxel`` in ``direction``, or -1 past a wall."""
    z, y, x = voxel_coords(voxel, ny, nx)
    dz, dy, dx = direction_offset(direction)
    return voxel_index(z + dz, y + dy, x + dx, nz, ny, nx)


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
