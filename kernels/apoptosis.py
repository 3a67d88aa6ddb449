"""Apoptosis: programmed death at a constant rate per kind.

A cell dies with a fixed chance per step (from the config's apoptosis rate for
tumour cells, and from the lifespan of effectors: CAR-T ~8.6 d, Luque 2024).
It is marked dead and leaves its voxel at once; the host compacts the agent
table at the end of the step.
"""

from gpusim.kernels.cells import DEAD
from gpusim.kernels.launch import rule
from gpusim.kernels.params import APOPTOSIS_THRESHOLD
from gpusim.kernels.rng import APOPTOSIS, draw_below


@rule
def apoptosis(i, seed, step, agent_id, kind, state, voxel, occ, params):
    """Mark cell ``i`` dead with its kind's apoptosis chance, and free its voxel."""
    if draw_below(seed, step, agent_id[i], APOPTOSIS, params[APOPTOSIS_THRESHOLD + kind[i]]):
        state[i] = state[i] | DEAD
        occ[voxel[i]] = -1
