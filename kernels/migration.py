"""Effector migration: a persistent random walk on the lattice.

T cells crawl through tumour tissue at 2-10 um/min and keep their direction
for minutes (persistence ~10 min) before turning (Luque 2024 Sci Rep; the
vivarium tumor-tcell model).  On the lattice this becomes: each step an
effector attempts, with a probability set by its speed, to step one voxel
along its heading; with a probability set by its persistence it first turns to
a random new heading.  A step into an empty voxel is a claim on it; a step
into a tumour cell's voxel succeeds with a squeeze probability and swaps the
two cells (effectors squeeze between tumour cells, tumour cells do not push
effectors); any other obstacle turns the cell for its next attempt.  Cells in
a synapse stay where they are: an engaged effector does not walk, and a cell
held by an effector is neither walked nor squeezed past; necrotic debris is an
obstacle.

Chemotaxis: when an effector turns, with chance ``chemotaxis`` (per kind) it
takes the heading toward the neighbouring grid voxel with the most chemokine
instead of a random one, if that voxel holds at least
``chemotaxis_sensitivity`` more than its own (T cells follow CXCL9/10
gradients into tumours; a turning bias is the simplest biased random walk).
Only comparisons of field values decide, so every backend agrees.
"""

from gpusim.kernels.cells import DEAD, HELD, NECROTIC, TUMOUR
from gpusim.kernels.claims import claimed_voxel
from gpusim.kernels.diffusion import grid_coords
from gpusim.kernels.lattice import N_DIRECTIONS, direction_offset, neighbour, voxel_index
from gpusim.kernels.decorators import device, rule
from gpusim.kernels.params import (
    CHEMOTAXIS_THRESHOLD,
    GRID_NX,
    GRID_NY,
    GRID_NZ,
    MOVE_THRESHOLD,
    SQUEEZE_THRESHOLD,
    TURN_THRESHOLD,
)
from gpusim.kernels.tally import MOVES, STEP_TALLY, tally_add
from gpusim.kernels.rng import (
    CHEMOTAXIS,
    MOVE_ATTEMPT,
    MOVE_BOUNCE,
    MOVE_DIRECTION,
    MOVE_SQUEEZE,
    MOVE_TURN,
    draw_below,
    draw_index,
)


@device
def uphill_direction(voxel, chemokine, sensitivity, params):
    """Direction of the neighbouring grid voxel with the most chemokine, if it beats this one by ``sensitivity``; else -1."""
    zf, yf, xf = grid_coords(voxel, params)
    nzf = params[GRID_NZ]
    nyf = params[GRID_NY]
    nxf = params[GRID_NX]
    here = chemokine[voxel_index(zf, yf, xf, nzf, nyf, nxf)]
    best = -1
    best_level = here + sensitivity
    for d in range(N_DIRECTIONS):
        dz, dy, dx = direction_offset(d)
        g = voxel_index(zf + dz, yf + dy, xf + dx, nzf, nyf, nxf)
        if g >= 0 and chemokine[g] >= best_level:
            if best < 0 or chemokine[g] > best_level:
                best = d
                best_level = chemokine[g]
    return best


@rule(reach=1)
def choose_step(i, seed, step, agent_id, kind, state, voxel, heading, partner, occ, chemokine, sensitivity, params,
                claim):
    """Set ``claim[i]`` to the direction of the voxel effector ``i`` steps into this step, or -1.  Tumour cells
    stay put, but in a suspension culture (a tumour ``speed`` above 0) a free one drifts in a random direction."""
    claim[i] = -1
    k = int(kind[i])
    if k == TUMOUR and params[MOVE_THRESHOLD + TUMOUR] == 0:
        return
    if partner[i] >= 0 or (state[i] & (HELD | DEAD | NECROTIC)) != 0:
        return
    me = agent_id[i]
    if not draw_below(seed, step, me, MOVE_ATTEMPT, params[MOVE_THRESHOLD + k]):
        return
    direction = heading[i]
    if draw_below(seed, step, me, MOVE_TURN, params[TURN_THRESHOLD + k]):
        direction = draw_index(seed, step, me, MOVE_DIRECTION, N_DIRECTIONS)
        if draw_below(seed, step, me, CHEMOTAXIS, params[CHEMOTAXIS_THRESHOLD + k]):
            uphill = uphill_direction(voxel[i], chemokine, sensitivity[k], params)
            if uphill >= 0:
                direction = uphill
        heading[i] = direction
    target = neighbour(voxel[i], direction, params)
    if target >= 0:
        other = occ[target]
        if other < 0:
            claim[i] = direction
            return
        if kind[other] == TUMOUR and (state[other] & (HELD | NECROTIC)) == 0 and draw_below(seed, step, me, MOVE_SQUEEZE, params[SQUEEZE_THRESHOLD + k]):
            claim[i] = direction
            return
    heading[i] = draw_index(seed, step, me, MOVE_BOUNCE, N_DIRECTIONS)


@rule(reach=1, tally=STEP_TALLY)
def commit_step(i, claim, won, voxel, occ, params, tally):
    """The winner of a claimed voxel moves in; a tumour cell there takes its old voxel.

    Safe without atomics: a won voxel has one winner, and the winner's old
    voxel, held by an effector, is never claimed by anyone.
    """
    if won[i] == 0:
        return
    tally_add(tally, MOVES, 1)
    target = claimed_voxel(i, voxel, claim, params)
    old = voxel[i]
    displaced = occ[target]
    occ[target] = i
    voxel[i] = target
    occ[old] = displaced
    if displaced >= 0:
        voxel[displaced] = old
