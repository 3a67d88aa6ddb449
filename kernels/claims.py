"""Claims on a voxel: who gets it when several cells want the same one.

A cell that wants a voxel (to step into it, or to put a daughter there) writes
the voxel's index into its own ``claim`` entry.  Every contender for a voxel is
one of that voxel's 26 neighbours, so each contender can look around the
voxel and see whether a rival with a higher priority claims it too: the
winner is decided by looking, with no atomics and no dependence on thread
order.  Priorities are random draws of the step (``rng.draw`` with a purpose
of the phase), ties broken by the higher cell id.
"""

from gpusim.kernels.launch import rule
from gpusim.kernels.lattice import voxel_coords, voxel_index
from gpusim.kernels.params import NX, NY, NZ
from gpusim.kernels.rng import draw


@rule(cuda_c="claims.cu")
def resolve_claim(i, seed, step, purpose, agent_id, claim, occ, params, won):
    """``won[i] = 1`` if cell ``i`` claims a voxel and no rival outranks it, else 0."""
    target = claim[i]
    if target < 0:
        won[i] = 0
        return
    nz = params[NZ]
    ny = params[NY]
    nx = params[NX]
    my_id = agent_id[i]
    my_priority = draw(seed, step, my_id, purpose)
    z, y, x = voxel_coords(target, ny, nx)
    for dz in range(-1, 2):
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                v = voxel_index(z + dz, y + dy, x + dx, nz, ny, nx)
                if v < 0 or v == target:
                    continue
                rival = occ[v]
                if rival < 0 or rival == i or claim[rival] != target:
                    continue
                rival_priority = draw(seed, step, agent_id[rival], purpose)
                if rival_priority > my_priority or (rival_priority == my_priority and agent_id[rival] > my_id):
                    won[i] = 0
                    return
    won[i] = 1
