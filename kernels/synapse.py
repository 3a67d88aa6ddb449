"""The immunological synapse: engaging a partner, and what passes between the two cells.

engage
    A free, non-refractory effector engages the first neighbour it
    recognises, looking around from a random direction: a tumour cell, or an
    effector that wears acquired antigen (fratricide), whose signal reaches
    the recognition level.  Which recognised neighbour it meets first is
    chance, not its antigen: an effector does not weigh its 26 neighbours and
    pick the richest, which would make the killing itself remove antigen-high
    cells first and lower the tumour's antigen without any trogocytosis.  The
    partner is stored as a direction.

synapse
    In two rules, so that every transfer is computed once and applied to both
    cells (docs/design.md, conservation).  :func:`synapse_exchange` runs per effector on the
    state as it was: signal, a lytic hit (probability from the signal, lowered
    by exhaustion), trogocytosis of bound antigen to the effector and reverse
    trogocytosis of bound CAR to the target (fractions per step, integer,
    stochastically rounded; the fraction is the rate at which the membrane
    under a complex is pulled in, times the share of complexes that hold
    through the pull, ``exp(-koff * extraction time)``: what separates a
    fast-off binder from a slow one, since both bind nearly every molecule in
    the synapse; gpusim.parameters.holding_share), stimulation, activation for proliferation, and
    the end of the synapse on time-out (a CAR-macrophage's contact then ends
    in engulfment or a trogocytic bite).  It writes what it did into scratch.
    :func:`synapse_apply` applies each effector's own side and marks the cell
    it was in contact with; :func:`synapse_receive` runs per marked cell and
    gathers from every
    neighbour that struck it this step the same amounts with opposite sign,
    the hits, bites and engulfment.  Every outflow of a
    pool is capped at ``pool // SHARES`` so a pool never goes negative, even
    with every neighbour at it at once.  Lytic damage from several effectors
    adds up on the target: cooperative killing (Weigelin 2021).
"""

from gpusim.kernels.cells import ACTIVATED, CAR_M, DEAD, ENGULFED, HELD, N_KINDS, NECROTIC, NOT_HELD, TUMOUR
from gpusim.kernels.lattice import N_DIRECTIONS, occupant_at, opposite, voxel_coords
from gpusim.kernels.decorators import rule
from gpusim.kernels.molecules import ANTIGEN_A, ANTIGEN_B, CAR, SHARES, share
from gpusim.kernels.params import (
    ACTIVATION_TABLE,
    ATTACKS_EFFECTORS,
    BITE_SHARE,
    DIVISION_STEPS,
    ENGULF,
    EXHAUSTION_LIMIT,
    HIT_TABLE,
    NX,
    NY,
    NZ,
    RECOGNITION,
    REFRACTORY_STEPS,
    REVERSE_TROGOCYTOSIS,
    STIMULATION_TABLE,
    SYNAPSE_STEPS,
    TROGOCYTOSIS,
    TROGOCYTOSIS_B,
)
from gpusim.kernels.pools import add_molecules, molecules
from gpusim.kernels.rng import (
    ENGAGE,
    SYNAPSE_ACTIVATE,
    SYNAPSE_ENGULF,
    SYNAPSE_HIT,
    SYNAPSE_REVERSE,
    SYNAPSE_STIMULATE,
    SYNAPSE_TAKE_A,
    SYNAPSE_TAKE_B,
    draw,
    draw_below,
    draw_index,
)
from gpusim.kernels.signal import signal_bucket, synapse_signal
from gpusim.kernels.tally import BITES, ENGAGEMENTS, GIVEN, HITS, STEP_TALLY, TAKEN, tally_add

# what an effector did to its partner this step (the `strike` scratch)
STRUCK_HIT = 1
STRUCK_BITE = 2
STRUCK_ENGULF = 4


@rule(reach=1, tally=STEP_TALLY, cuda_c="synapse.cu")
def choose_partner(i, seed, step, agent_id, kind, state, voxel, partner, refractory_steps, synapse_steps, pools, occ,
                   params, tally):
    """A free effector engages the first neighbour it recognises, looking from a random direction on."""
    k = int(kind[i])
    if k == TUMOUR or partner[i] >= 0 or refractory_steps[i] > 0 or (state[i] & DEAD) != 0:
        return
    nz = params[NZ]
    ny = params[NY]
    nx = params[NX]
    z, y, x = voxel_coords(voxel[i], params)
    recognition = params[RECOGNITION + k]
    attacks_effectors = params[ATTACKS_EFFECTORS + k] != 0
    first = draw_index(seed, step, agent_id[i], ENGAGE, N_DIRECTIONS)
    for m in range(N_DIRECTIONS):
        d = first + m
        if d >= N_DIRECTIONS:
            d -= N_DIRECTIONS
        j = occupant_at(z, y, x, d, occ, nz, ny, nx)
        if j < 0 or (state[j] & NECROTIC) != 0:  # debris is no target
            continue
        if kind[j] != TUMOUR and (not attacks_effectors or molecules(pools, params, ANTIGEN_A, j) + molecules(pools, params, ANTIGEN_B, j) == 0):
            continue
        signal, _car, _b = synapse_signal(i, j, k, int(kind[j]), pools, params)
        if signal >= recognition:
            partner[i] = d
            synapse_steps[i] = 0
            tally_add(tally, ENGAGEMENTS, 1)
            return


@rule(reach=1)
def synapse_exchange(
    i, seed, step, agent_id, kind, state, voxel, partner, synapse_steps, refractory_steps, stimulation,
    divisions_left, cycle_timer, pools, occ, params, tables, contact, taken_a, taken_b, car_given, strike, touched,
):
    """Effector ``i``'s side of its synapse this step, from the state as it was; results into scratch.

    Every cell's ``touched`` and ``contact`` are reset here; what an effector
    takes, gives and strikes only where it has a contact this step, since
    :func:`synapse_apply` and :func:`synapse_receive` read those only behind
    a contact (most cells are tumour cells: 13 bytes a cell not written).
    """
    touched[i] = 0
    contact[i] = -1
    d = partner[i]
    if d < 0 or (state[i] & DEAD) != 0:
        return
    k = int(kind[i])
    z, y, x = voxel_coords(voxel[i], params)
    j = occupant_at(z, y, x, d, occ, params[NZ], params[NY], params[NX])
    if j < 0:  # the partner is gone
        partner[i] = -1
        synapse_steps[i] = 0
        refractory_steps[i] = params[REFRACTORY_STEPS + k]
        return
    contact[i] = d
    strike[i] = 0
    me = agent_id[i]
    signal, car_complexes, b_complexes = synapse_signal(i, j, k, int(kind[j]), pools, params)
    bucket = signal_bucket(signal)
    limit = params[EXHAUSTION_LIMIT + k]
    vigour = limit - min(stimulation[i], limit)  # exhaustion lowers hits and proliferation
    hit_chance = (tables[HIT_TABLE, k, bucket] * vigour) // limit
    if hit_chance > 0 and draw_below(seed, step, me, SYNAPSE_HIT, hit_chance):
        strike[i] = STRUCK_HIT
    taken_a[i] = min(share(car_complexes, params[TROGOCYTOSIS + k], draw(seed, step, me, SYNAPSE_TAKE_A)),
                     molecules(pools, params, ANTIGEN_A, j) // SHARES)
    taken_b[i] = min(share(b_complexes, params[TROGOCYTOSIS_B + k], draw(seed, step, me, SYNAPSE_TAKE_B)),
                     molecules(pools, params, ANTIGEN_B, j) // SHARES)
    car_given[i] = min(share(car_complexes, params[REVERSE_TROGOCYTOSIS + k], draw(seed, step, me, SYNAPSE_REVERSE)),
                       molecules(pools, params, CAR, i) // SHARES)
    if draw_below(seed, step, me, SYNAPSE_STIMULATE, tables[STIMULATION_TABLE, k, bucket]):
        stimulation[i] += 1
    if divisions_left[i] > 0 and (state[i] & ACTIVATED) == 0:
        activation = (tables[ACTIVATION_TABLE, k, bucket] * vigour) // limit
        if activation > 0 and draw_below(seed, step, me, SYNAPSE_ACTIVATE, activation):
            state[i] = state[i] | ACTIVATED
            cycle_timer[i] = params[DIVISION_STEPS + k]
    elapsed = synapse_steps[i] + 1
    if elapsed < params[SYNAPSE_STEPS + k]:
        synapse_steps[i] = elapsed
        return
    partner[i] = -1
    synapse_steps[i] = 0
    refractory_steps[i] = params[REFRACTORY_STEPS + k]
    if k == CAR_M:
        bite = params[BITE_SHARE + k]
        if draw_below(seed, step, me, SYNAPSE_ENGULF, params[ENGULF + k * N_KINDS + int(kind[j])]):
            strike[i] = STRUCK_ENGULF
        elif bite > 0:  # a bite takes membrane: none taken, no bite
            strike[i] = STRUCK_BITE
            taken_a[i] = min(share(molecules(pools, params, ANTIGEN_A, j), bite, draw(seed, step, me, SYNAPSE_TAKE_A)),
                             molecules(pools, params, ANTIGEN_A, j) // SHARES)
            taken_b[i] = min(share(molecules(pools, params, ANTIGEN_B, j), bite, draw(seed, step, me, SYNAPSE_TAKE_B)),
                             molecules(pools, params, ANTIGEN_B, j) // SHARES)
            car_given[i] = -min(share(molecules(pools, params, CAR, j), bite, draw(seed, step, me, SYNAPSE_REVERSE)),
                                molecules(pools, params, CAR, j) // SHARES)


@rule(reach=1, tally=STEP_TALLY)
def synapse_apply(i, voxel, contact, pools, occ, params, taken_a, taken_b, car_given, strike, touched, tally):
    """Effector ``i`` applies its own side of this step's exchange, tallies it, and marks the cell it was in
    contact with (``touched``; several effectors may write the same 1)."""
    d = contact[i]
    if d < 0:
        return
    z, y, x = voxel_coords(voxel[i], params)
    touched[occupant_at(z, y, x, d, occ, params[NZ], params[NY], params[NX])] = 1
    add_molecules(pools, params, ANTIGEN_A, i, taken_a[i])
    add_molecules(pools, params, ANTIGEN_B, i, taken_b[i])
    add_molecules(pools, params, CAR, i, -car_given[i])
    tally_add(tally, TAKEN + ANTIGEN_A, taken_a[i])
    tally_add(tally, TAKEN + ANTIGEN_B, taken_b[i])
    if car_given[i] >= 0:
        tally_add(tally, GIVEN + CAR, car_given[i])
    else:
        tally_add(tally, TAKEN + CAR, -car_given[i])
    struck = strike[i]
    if struck & STRUCK_HIT:
        tally_add(tally, HITS, 1)
    if struck & STRUCK_BITE:
        tally_add(tally, BITES, 1)


@rule(reach=1, cuda_c="synapse.cu")
def synapse_receive(i, touched, state, voxel, partner, pools, damage, bites, occ, params, contact, taken_a, taken_b,
                    car_given, strike):
    """Cell ``i``, if an effector was in contact with it this step, gathers what every neighbour that struck it
    did, with opposite sign.

    Every cell drops last step's HELD; cells nobody touched (marked by
    :func:`synapse_apply`) return at once; a cell still in a synapse
    afterwards is HELD again.
    """
    state[i] = state[i] & NOT_HELD
    if touched[i] == 0:
        return
    nz = params[NZ]
    ny = params[NY]
    nx = params[NX]
    z, y, x = voxel_coords(voxel[i], params)
    held = False
    for d in range(N_DIRECTIONS):
        e = occupant_at(z, y, x, d, occ, nz, ny, nx)
        if e < 0:
            continue
        towards_me = opposite(d)
        if contact[e] == towards_me:
            add_molecules(pools, params, ANTIGEN_A, i, -taken_a[e])
            add_molecules(pools, params, ANTIGEN_B, i, -taken_b[e])
            add_molecules(pools, params, CAR, i, car_given[e])
            struck = strike[e]
            if struck & STRUCK_HIT:
                damage[i] += 1
            if struck & STRUCK_BITE:
                bites[i] += 1
            if struck & STRUCK_ENGULF:
                state[i] = state[i] | ENGULFED
        if partner[e] == towards_me:
            held = True
    if held:
        state[i] = state[i] | HELD


@rule(reach=1)
def release_partner(i, kind, state, voxel, partner, synapse_steps, refractory_steps, occ, params):
    """An effector whose partner died this step (or lies necrotic) leaves the synapse, before anything can
    take the voxel."""
    d = partner[i]
    if d < 0 or (state[i] & DEAD) != 0:
        return
    z, y, x = voxel_coords(voxel[i], params)
    j = occupant_at(z, y, x, d, occ, params[NZ], params[NY], params[NX])
    if j < 0 or (state[j] & NECROTIC) != 0:
        partner[i] = -1
        synapse_steps[i] = 0
        refractory_steps[i] = params[REFRACTORY_STEPS + int(kind[i])]
