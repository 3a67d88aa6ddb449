"""Expression: pools relax toward their set points; effectors recover between contacts.

Each species on each cell moves a fixed fraction per step of the way to its
set point (docs/model.md, express): below it, synthesis (tumour antigen
re-expression over hours to days; CAR re-expression); above it,
internalisation or degradation (acquired antigen on effectors, half-life
2-24 h; acquired CAR on tumour cells).  The fraction is rounded
stochastically to whole molecules, and every molecule made or removed is
tallied, so the ledger start + synthesis - decay - lost with dead cells = end
balances exactly.  Tumour cells take their antigen set points from their own
heritable columns, every other pool from its kind's set point.

An engaged effector takes part of its surface CAR into the cell each step
(down-modulation on engagement: Davenport 2015, Walker 2017), which
re-expression then restores over hours.

Between contacts effectors recover: exhaustion (cumulative stimulation) falls
back one step at a time, lytic damage and bites are repaired, refractory time
runs out.  Acquired antigen meeting the cell's own CAR in cis stimulates it
tonically, which exhausts trogocytosis-positive cells (Hamieh 2019; Kim 2025).
"""

import numpy as np

from gpusim.kernels.cells import DEAD, NECROTIC, TUMOUR
from gpusim.kernels.decorators import device, fuse, rule
from gpusim.kernels.molecules import ANTIGEN_A, ANTIGEN_B, CAR, N_SPECIES, SET_A, SET_B, bound_complexes, share
from gpusim.kernels.params import (
    BITE_REPAIR,
    DAMAGE_REPAIR,
    DECAY,
    EXHAUSTION_RECOVERY,
    INTERNALISATION,
    K_CAR,
    POOL_ROW,
    SET_POINT,
    STIMULATION_TABLE,
    SYNTHESIS,
    TONIC_WEIGHT_Q16,
)
from gpusim.kernels.pools import molecules, set_point
from gpusim.kernels.rng import BITE_REPAIR as BITE_REPAIR_DRAW
from gpusim.kernels.rng import DAMAGE_REPAIR as DAMAGE_REPAIR_DRAW
from gpusim.kernels.rng import EXHAUSTION_RECOVERY as RECOVERY_DRAW
from gpusim.kernels.rng import EXPRESS, INTERNALISE, TONIC, draw, draw_below
from gpusim.kernels.signal import signal_bucket
from gpusim.kernels.tally import DEGRADED, STEP_TALLY, SYNTHESISED, tally_add
from gpusim.kernels.tally import TONIC as TONIC_STEPS

_Q16 = np.int64(16)


@rule(reach=0, tally=STEP_TALLY)
def express(i, seed, step, agent_id, kind, state, partner, pools, set_points, params, tally):
    """Every pool of cell ``i`` moves toward its set point; an engaged effector internalises some of its CAR;
    synthesis and decay are tallied."""
    if state[i] & (DEAD | NECROTIC):
        return
    k = int(kind[i])
    if k != TUMOUR and partner[i] >= 0:
        internalise_car(i, seed, step, agent_id, k, pools, params, tally)
    for s in range(N_SPECIES):
        row = params[POOL_ROW + s]
        if row < 0:  # a species no cell of the run carries
            continue
        if k == TUMOUR and s == ANTIGEN_A:
            target = set_point(set_points, params, SET_A, i)
        elif k == TUMOUR and s == ANTIGEN_B:
            target = set_point(set_points, params, SET_B, i)
        else:
            target = params[SET_POINT + k * N_SPECIES + s]
        current = pools[row, i]
        if current < target:  # the cell's id is read only where it draws: most pools sit at their set point
            rolled = draw(seed, step, agent_id[i], EXPRESS + s)
            made = share(target - current, params[SYNTHESIS + k * N_SPECIES + s], rolled)
            if made > 0:
                pools[row, i] = current + made
                tally_add(tally, SYNTHESISED + s, made)
        elif current > target:
            rolled = draw(seed, step, agent_id[i], EXPRESS + s)
            lost = share(current - target, params[DECAY + k * N_SPECIES + s], rolled)
            if lost > 0:
                pools[row, i] = current - lost
                tally_add(tally, DEGRADED + s, lost)


@device
def internalise_car(i, seed, step, agent_id, k, pools, params, tally):
    """An engaged effector takes part of its surface CAR into the cell (down-modulation on engagement: Davenport
    2015, Walker 2017); the molecules leave the ledger as degraded, and re-expression brings CAR back."""
    row = params[POOL_ROW + CAR]
    if row < 0 or pools[row, i] <= 0:
        return
    lost = share(pools[row, i], params[INTERNALISATION + k], draw(seed, step, agent_id[i], INTERNALISE))
    if lost > 0:
        pools[row, i] -= lost
        tally_add(tally, DEGRADED + CAR, lost)


@rule(reach=0, tally=STEP_TALLY)
def recover(i, seed, step, agent_id, kind, state, partner, refractory_steps, stimulation, damage, bites, pools, params,
            tables, tally):
    """Clocks and repair of cell ``i``: refractory time, exhaustion, damage and bites; tonic stimulation."""
    if state[i] & DEAD:
        return
    k = int(kind[i])
    if damage[i] > 0 and draw_below(seed, step, agent_id[i], DAMAGE_REPAIR_DRAW, params[DAMAGE_REPAIR + k]):
        damage[i] -= 1
    if bites[i] > 0 and draw_below(seed, step, agent_id[i], BITE_REPAIR_DRAW, params[BITE_REPAIR + k]):
        bites[i] -= 1
    if k == TUMOUR:
        return
    if refractory_steps[i] > 0:
        refractory_steps[i] -= 1
    cis = bound_complexes(molecules(pools, params, CAR, i), molecules(pools, params, ANTIGEN_A, i), params[K_CAR + k])
    tonic = (cis * params[TONIC_WEIGHT_Q16 + k]) >> _Q16
    if tonic > 0 and draw_below(seed, step, agent_id[i], TONIC, tables[STIMULATION_TABLE, k, signal_bucket(tonic)]):
        stimulation[i] += 1
        tally_add(tally, TONIC_STEPS, 1)
    elif (partner[i] < 0 and stimulation[i] > 0
          and draw_below(seed, step, agent_id[i], RECOVERY_DRAW, params[EXHAUSTION_RECOVERY + k])):
        stimulation[i] -= 1


# The express phase in one launch: each cell's pools, clocks and repair are its own, so a cell's recovery may run
# right after its own expression (one pass over the table instead of two).
express_and_recover = fuse(express, recover)
