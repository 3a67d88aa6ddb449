"""From the validated config to what the rules read: integer parameters and lookup tables.

Every probability per step is turned into a 32-bit threshold here, on the
host, once, so that rules decide events by integer comparison and every
backend decides alike.
"""

import math

import numpy as np

from gpusim.kernels import params as P
from gpusim.kernels.cell_cycle import cycle_table_steps
from gpusim.kernels.cells import EFFECTOR_KINDS, KIND_NAMES, TUMOUR
from gpusim.kernels.rng import probability_threshold


def chance_per_step(rate_per_min, dt_min):
    """Probability of at least one event of a Poisson process in one step."""
    return -math.expm1(-rate_per_min * dt_min)


def effector_step_chances(effector, dt_min, voxel_um):
    """(chance to attempt a step, chance to turn per attempt) of a persistent random walk.

    Speed sets the attempts: ``speed * dt / voxel`` per step.  Persistence is
    the mean time between turns, so a cell turns at a fraction
    ``dt / (attempt * persistence)`` of its attempts.
    """
    attempt = min(1.0, effector.speed * dt_min / voxel_um)
    turn = 1.0 if attempt == 0 else min(1.0, dt_min / (attempt * effector.persistence))
    return attempt, turn


def build(cfg):
    """``(params, cycle_table)`` as host numpy arrays."""
    dt = cfg.run.dt
    params = np.zeros(P.N_PARAMS, dtype=np.int64)
    params[P.NZ], params[P.NY], params[P.NX] = cfg.lattice.shape
    params[P.APOPTOSIS_THRESHOLD + TUMOUR] = probability_threshold(chance_per_step(cfg.tumour.apoptosis_rate, dt))
    for kind in EFFECTOR_KINDS:
        effector = getattr(cfg.effectors, KIND_NAMES[kind])
        attempt, turn = effector_step_chances(effector, dt, cfg.lattice.voxel_size)
        params[P.MOVE_THRESHOLD + kind] = probability_threshold(attempt)
        params[P.TURN_THRESHOLD + kind] = probability_threshold(turn)
        params[P.SQUEEZE_THRESHOLD + kind] = probability_threshold(effector.squeeze)
        params[P.APOPTOSIS_THRESHOLD + kind] = probability_threshold(chance_per_step(1.0 / effector.lifespan, dt))
    cycle_table = cycle_table_steps(cfg.tumour.cycle_time, cfg.tumour.cycle_time_cv, dt)
    return params, cycle_table
