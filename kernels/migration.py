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
held by an effector is neither walked nor squeezed past.
"""

from gpusim.kernels.cells import HELD, TUMOUR
from gpusim.kernels.lattice import N_DIRECTIONS, neighbour
from gpusim.kernels.launch import rule
from gpusim.kernels.params import MOVE_THRESHOLD, NX, NY, NZ, SQUEEZE_THRESHOLD, TURN_THRESHOLD
from gpusim.kernels.rng import (
    MOVE_ATTEMPT,
    MOVE_BOUNCE,
    MOVE_DIRECTION,
    MOVE_SQUEEZE,
    MOVE_TURN,
    draw_below,
    draw_index,
)


@rule
def choose_step(i, seed, step, agent_id, kind, state, voxel, heading, partner, occ, params, claim):
    """Set ``claim[i]`` to the voxel effector ``i`` steps into this step, or -1."""
    claim[i] = -1
    k = int(kind[i])
    if k == TUMOUR or partner[i] >= 0 or (state[i] & HELD) != 0:
        return
    me = agent_id[i]
    if not draw_below(seed, step, me, MOVE_ATTEMPT, params[MOVE_THRESHOLD + k]):
        return
    direction = heading[i]
    if draw_below(seed, step, me, MOVE_TURN, params[TURN_THRESHOLD + k]):
        direction = draw_index(seed, step, me, MOVE_DIRECTION, N_DIRECTIONS)
        heading[i] = direction
    target = neighbour(voxel[i], direction, params[NZ], params[NY], params[NX])
    if target >= 0:
        other = occ[target]
        if other < 0:
            claim[i] = target
            return
        if kind[other] == TUMOUR and (state[other] & HELD) == 0 and draw_below(seed, step, me, MOVE_SQUEEZE, params[SQUEEZE_THRESHOLD + k]):
            claim[i] = target
            return
    heading[i] = draw_index(seed, step, me, MOVE_BOUNCE, N_DIRECTIONS)


@rule
def commit_step(i, claim, won, voxel, occ):
    """The winner of a claimed voxel moves in; a tumour cell there takes its old voxel.

    Safe without atomics: a won voxel has one winner, and the winner's old
    voxel, held by an effector, is never claimed by anyone.
    """
    if won[i] == 0:
        return
    target = claim[i]
    old = voxel[i]
    displaced = occ[target]
    occ[target] = i
    voxel[i] = target
    occ[old] = displaced
    if displaced >= 0:
        voxel[displaced] = old
