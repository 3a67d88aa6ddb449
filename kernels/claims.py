"""Claims on a voxel: who gets it when several cells want the same one.

A cell that wants a voxel (to step into it, or to put a daughter there) writes
the voxel's direction from its own voxel (0..25, :mod:`gpusim.kernels.lattice`)
into its own ``claim`` entry, one byte, like a synapse partner.  Every
contender for a voxel is one of that voxel's 26 neighbours, so each contender
can look around the voxel and see whether a rival with a higher priority
claims it too (a neighbour in direction ``e`` of the voxel claims it with the
direction back, ``opposite(e)``): the winner is decided by looking, with no
atomics and no dependence on thread order.  Priorities are random draws of
the step (``rng.draw`` with a purpose of the phase), ties broken by the
higher cell id.
"""

from gpusim.kernels.decorators import device, rule
from gpusim.kernels.lattice import direction_offset, opposite, step_towards, voxel_coords, voxel_index
from gpusim.kernels.params import NX, NY, NZ
from gpusim.kernels.rng import draw


@device
def claimed_voxel(i, voxel, claim, params):
    """The voxel cell ``i`` claims: its own voxel's neighbour in the direction ``claim[i]`` (>= 0), which is inside
    the lattice (no phase claims past a wall)."""
    return voxel[i] + step_towards(claim[i], params[NY], params[NX])


@rule(reach=2, cuda_c="claims.cu")
def resolve_claim(i, seed, step, purpose, agent_id, voxel, claim, occ, params, won):
    """``won[i] = 1`` if cell ``i`` claims a voxel and no rival outranks it, else 0."""
    d = claim[i]
    if d < 0:
        won[i] = 0
        return
    nz = params[NZ]
    ny = params[NY]
    nx = params[NX]
    my_id = agent_id[i]
    my_priority = draw(seed, step, my_id, purpose)
    z, y, x = voxel_coords(voxel[i], params)
    cz, cy, cx = direction_offset(d)
    z, y, x = z + cz, y + cy, x + cx  # the claimed voxel
    e = 0  # the direction from the claimed voxel to (z + dz, y + dy, x + dx), in the lattice's order of directions
    for dz in range(-1, 2):
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                if dz == 0 and dy == 0 and dx == 0:
                    continue
                v = voxel_index(z + dz, y + dy, x + dx, nz, ny, nx)
                rival = occ[v] if v >= 0 else -1
                if rival >= 0 and rival != i and claim[rival] == opposite(e):  # it claims the voxel too
                    rival_priority = draw(seed, step, agent_id[rival], purpose)
                    if rival_priority > my_priority or (rival_priority == my_priority and agent_id[rival] > my_id):
                        won[i] = 0
                        return
                e += 1
    won[i] = 1
