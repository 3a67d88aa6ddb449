"""Keeping the occupancy grid and the agent table in step, and placing new cells.

``occ[voxel]`` holds the slot of the cell in that voxel or -1.  After the
agent table is compacted or sorted, every cell writes its new slot into its
own voxel.  New cells (the initial tumour, infused effectors) are placed by
ranking free voxels with :func:`placement_key`.
"""

import numpy as np

from gpusim.kernels.launch import rule
from gpusim.kernels.lattice import N_DIRECTIONS, voxel_coords
from gpusim.kernels.params import NX, NY
from gpusim.kernels.rng import INITIAL_HEADING, PLACEMENT, draw, draw_index

_S32 = np.uint64(32)


@rule
def claim_own_voxel(i, voxel, occ):
    """Cell ``i`` writes its slot into its voxel."""
    occ[voxel[i]] = i


@rule
def paint_kind(i, voxel, kind, volume):
    """The cell-kind map: ``volume[voxel] = kind + 1`` (0 is an empty voxel)."""
    volume[voxel[i]] = kind[i] + 1


@rule
def placement_key(j, seed, step, candidates, centre_z, centre_y, centre_x, radius_sq, by_distance, params, keys):
    """A sort key for placing a new cell in free voxel ``candidates[j]``.

    With ``by_distance`` the key ranks first by how far the voxel's squared
    distance to the centre is from ``radius_sq`` (a spherical shell of that
    radius, or a ball when it is 0), then at random; without, at random
    alone.  All integer, so every backend ranks alike.
    """
    v = candidates[j]
    noise = draw(seed, step, v, PLACEMENT) >> _S32
    if by_distance == 0:
        keys[j] = noise
        return
    z, y, x = voxel_coords(v, params[NY], params[NX])
    d_sq = (z - centre_z) * (z - centre_z) + (y - centre_y) * (y - centre_y) + (x - centre_x) * (x - centre_x)
    off = d_sq - radius_sq
    if off < 0:
        off = -off
    keys[j] = (np.uint64(off) << _S32) | noise


@rule
def initial_heading(i, seed, step, first_slot, agent_id, heading):
    """A random heading for a new effector."""
    slot = first_slot + i
    heading[slot] = draw_index(seed, step, agent_id[slot], INITIAL_HEADING, N_DIRECTIONS)
