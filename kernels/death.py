"""Death: lethal lytic damage, engulfment, trogoptosis, and apoptosis.

A cell dies this step when

* it was engulfed whole by a CAR-macrophage (phagocytosis; Morrissey 2018),
* its lytic damage reached the lethal dose: lysis of a tumour cell, or
  fratricide of an effector killed by another effector (docs/model.md, phenomenon B),
* enough trogocytic bites have landed (trogoptosis; Velmurugan 2016),
* or by apoptosis, at a constant chance per step per kind (tumour turnover;
  effector lifespan, CAR-T ~8.6 d, Luque 2024);

and every cell of a kind goes at a scheduled depletion (``[[depletion]]`` in
the config: the CAR-T removal arm of Hamieh 2019).

It is marked dead and leaves its voxel at once; its molecules are tallied as
lost with dead cells, and the host compacts the table at the end of the step.

A tumour cell anoxic for ``tumour.necrosis_time`` (:mod:`gpusim.kernels.oxygen`)
dies necrotic: its death and molecules are tallied the same way, but it stays
in its voxel as debris (``NECROTIC``: no uptake, no target, no division, an
obstacle) until it is cleared after ``tumour.debris_clearance``.  This is the
necrotic core of a solid tumour.
"""

from gpusim.kernels.cells import (
    APOPTOSIS,
    DEAD,
    NECROSIS,
    NECROTIC,
    NOT_HYPOXIC,
    NOT_QUIESCENT,
    DEPLETION,
    ENGULFED,
    FRATRICIDE,
    LYSIS,
    N_KINDS,
    PHAGOCYTOSIS,
    TROGOPTOSIS,
    TUMOUR,
)
from gpusim.kernels.decorators import device, rule
from gpusim.kernels.molecules import N_SPECIES
from gpusim.kernels.params import (
    APOPTOSIS_THRESHOLD, DEBRIS_STEPS, LETHAL_BITES, LETHAL_DAMAGE, NECROSIS_STEPS, POOL_ROW,
)
from gpusim.kernels.rng import APOPTOSIS as APOPTOSIS_DRAW
from gpusim.kernels.rng import draw_below
from gpusim.kernels.tally import CLEARED, DEATHS, LOST, STEP_TALLY, tally_add


@rule(reach=0, tally=STEP_TALLY)
def die(i, seed, step, agent_id, kind, state, voxel, damage, bites, cycle_timer, anoxic_steps, pools, occ, params,
        tally):
    """Mark cell ``i`` dead if anything killed it, free its voxel, and tally the cause and its molecules.

    Necrotic debris counts down its clearance (in ``cycle_timer``) and then leaves.
    """
    k = int(kind[i])
    flags = state[i]
    if flags & DEAD:
        return
    if flags & NECROTIC:
        left = cycle_timer[i]
        if left > 0:
            cycle_timer[i] = left - 1
        else:
            state[i] = flags | DEAD
            occ[voxel[i]] = -1
            tally_add(tally, CLEARED, 1)
        return
    if k == TUMOUR and anoxic_steps[i] >= params[NECROSIS_STEPS] and (flags & ENGULFED) == 0:
        _become_debris(i, k, state, damage, bites, cycle_timer, pools, params, tally)
        return
    if flags & ENGULFED:
        cause = PHAGOCYTOSIS
    elif damage[i] >= params[LETHAL_DAMAGE + k]:
        cause = LYSIS if k == TUMOUR else FRATRICIDE
    elif bites[i] >= params[LETHAL_BITES + k]:
        cause = TROGOPTOSIS
    elif draw_below(seed, step, agent_id[i], APOPTOSIS_DRAW, params[APOPTOSIS_THRESHOLD + k]):
        cause = APOPTOSIS
    else:
        return
    _remove(i, k, cause, state, voxel, pools, occ, params, tally)


@device
def _become_debris(i, k, state, damage, bites, cycle_timer, pools, params, tally):
    """Necrosis: tally the death and the molecules lost; the cell stays in its voxel as debris."""
    state[i] = (state[i] | NECROTIC) & NOT_HYPOXIC & NOT_QUIESCENT
    cycle_timer[i] = params[DEBRIS_STEPS]
    damage[i] = 0
    bites[i] = 0
    _tally_death(i, k, NECROSIS, pools, params, tally)
    for row in range(pools.shape[0]):
        pools[row, i] = 0


@device
def _remove(i, k, cause, state, voxel, pools, occ, params, tally):
    """Mark cell ``i`` dead, free its voxel, tally its cause and the molecules it takes with it."""
    state[i] = state[i] | DEAD
    occ[voxel[i]] = -1
    _tally_death(i, k, cause, pools, params, tally)


@device
def _tally_death(i, k, cause, pools, params, tally):
    """Tally the death of cell ``i`` (of kind ``k``) by ``cause`` and its molecules of every species the run holds."""
    tally_add(tally, DEATHS + cause * N_KINDS + k, 1)
    for s in range(N_SPECIES):
        row = params[POOL_ROW + s]
        if row >= 0:
            tally_add(tally, LOST + s, pools[row, i])


@rule(reach=0, tally=STEP_TALLY)
def deplete(i, depleted_kind, kind, state, voxel, pools, occ, params, tally):
    """Remove every cell of ``depleted_kind`` (a scheduled depletion, e.g. of the CAR-T cells)."""
    k = int(kind[i])
    if k == depleted_kind and (state[i] & DEAD) == 0:
        _remove(i, k, DEPLETION, state, voxel, pools, occ, params, tally)
