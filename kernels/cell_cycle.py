"""Cell cycle and division: tumour cells, and activated effectors within their division budget.

Each tumour cell carries a countdown (``cycle_timer``, in steps) to its next
division, drawn at birth from the population's cycle-length distribution
(tumour doubling 26-40 h in vitro, Raji in vivo 1.37 d: Cazaux 2019,
Barros 2021).  The distribution is tabulated on the host as a lookup table of
cycle lengths in whole steps at equally spaced quantiles, so a draw is an
integer index and CPU and GPU agree exactly.

A tumour cell short of oxygen (``HYPOXIC``, see :mod:`gpusim.kernels.oxygen`)
holds its countdown and is quiescent; necrotic debris never divides.

A cell whose countdown has run out divides into a free neighbour voxel,
chosen at random; where none is free it waits, quiescent (contact
inhibition), and tries again every step.  Two cells that pick the same voxel
resolve it by claim (:mod:`gpusim.kernels.claims`); the loser retries next
step.  Daughters take slots after the last cell, in the order of their
parents' slots: the parents are listed by the prefix sum of the winners, on
the device, so the host need not know how many daughters there are.
:func:`could_divide_next_step`, counted by the census at the end of a step,
bounds the daughters of the next one; the engine makes that much room in the agent table beforehand.

An effector activated by a strong enough signal (see
:mod:`gpusim.kernels.synapse`) divides the same way when its activation
clock runs out, if it has divisions left; both cells then have one division
fewer and must be activated again.

Division splits every molecule pool exactly (the parent keeps the odd
molecule).  A tumour daughter inherits its parent's antigen set points with
small multiplicative noise (a log-normal factor from a lookup table) and, at a
rare chance, loses antigen A altogether (an antigen-negative clone).
"""

import numpy as np

from gpusim.kernels.cells import (
    ACTIVATED, DEAD, HYPOXIC, NECROTIC, NOT_ACTIVATED, NOT_QUIESCENT, QUIESCENT, TUMOUR,
)
from gpusim.kernels.claims import claimed_voxel
from gpusim.kernels.lattice import N_DIRECTIONS, neighbour_at, voxel_coords
from gpusim.kernels.decorators import device, rule
from gpusim.kernels.molecules import N_SET_POINTS, N_SPECIES, SET_A
from gpusim.kernels.params import ANTIGEN_LOSS, DIVISION_STEPS, NX, NY, NZ, POOL_ROW, SET_POINT_ROW, SYNTHESIS
from gpusim.kernels.tally import BIRTHS, STEP_TALLY, tally_add
from gpusim.kernels.rng import ANTIGEN_LOSS as ANTIGEN_LOSS_DRAW
from gpusim.kernels.rng import CYCLE_LENGTH, CYCLE_PHASE, DIVISION_SITE, INHERIT, draw_below, draw_index

_Q16 = np.int64(16)


@device
def cycle_length(seed, step, agent_id, cycle_table):
    """A cycle length in steps, drawn from the tabulated distribution."""
    return cycle_table[draw_index(seed, step, agent_id, CYCLE_LENGTH, cycle_table.shape[0])]


_ONE_Q30 = np.uint64(1 << 30)
_S30 = np.uint64(30)
_S2 = np.uint64(2)


@device
def fraction_power(keep_q30, exponent):
    """``(keep / 2**30) ** exponent`` as a fraction times 2**30, by repeated squaring: integer steps, the same on
    every backend."""
    result = _ONE_Q30
    base = np.uint64(keep_q30)
    e = np.int64(exponent)
    while e > 0:
        if e & 1:
            result = (result * base) >> _S30
        base = (base * base) >> _S30
        e >>= 1
    return result


@device
def steady_fraction(relax_q32, length, age):
    """The share of its set point (times 2**30) a cycling cell holds ``age`` steps into a cycle of ``length``
    steps, at the steady state of re-expression and division.

    A pool relaxes toward the set point S by the fraction f per step (``relax_q32``, kernels.expression), and
    division halves it.  A cell born with x0 holds ``S - (S - x0) g**a`` at age a (g = 1 - f), and at its
    division ``x_end = S - (S - x0) g**T``; in the steady state each daughter starts with half of that,
    ``x0 = x_end / 2``, so ``x_end = S (1 - g**T) / (1 - g**T / 2)``.
    """
    keep = (np.uint64(1 << 32) - np.uint64(relax_q32)) >> _S2
    kept_over_cycle = fraction_power(keep, length)
    at_division = ((_ONE_Q30 - kept_over_cycle) << _S30) // (_ONE_Q30 - (kept_over_cycle >> np.uint64(1)))
    at_birth = at_division >> np.uint64(1)
    return _ONE_Q30 - (((_ONE_Q30 - at_birth) * fraction_power(keep, age)) >> _S30)


@rule(reach=0)
def start_cycle(i, seed, step, agent_id, kind, cycle_timer, pools, cycle_table, age_table, params):
    """A cell of the initial tumour, seeded at the steady state of a growing population: its age drawn from the
    age distribution of exponential growth (``age_table``: ages as fractions of the cycle times 2**16, at equally
    spaced quantiles), and each of its pools at the share of its set point a cell of that age holds in the
    balance of re-expression and division (:func:`steady_fraction`), so that an untreated tumour's antigen per
    cell stays where it starts."""
    if kind[i] != TUMOUR:
        return
    me = agent_id[i]
    length = cycle_length(seed, step, me, cycle_table)
    age = (np.int64(length) * age_table[draw_index(seed, step, me, CYCLE_PHASE, age_table.shape[0])]) >> _Q16
    cycle_timer[i] = max(length - 1 - age, 0)  # steps left, as a uniform phase in [0, length) would leave
    for s in range(N_SPECIES):
        row = params[POOL_ROW + s]
        relax = params[SYNTHESIS + TUMOUR * N_SPECIES + s]
        if row >= 0 and pools[row, i] > 0 and relax > 0:  # a pool never re-expressed holds what it was given
            share_q30 = steady_fraction(relax, length, age)
            pools[row, i] = (np.uint64(pools[row, i]) * share_q30) >> _S30


@rule(reach=1, cuda_c="cell_cycle.cu")
def choose_division_site(i, seed, step, agent_id, kind, state, voxel, cycle_timer, divisions_left, occ, params, claim):
    """Advance the cycle clock; a due cell claims a random free neighbour voxel (its direction)."""
    claim[i] = -1
    if kind[i] != TUMOUR and ((state[i] & ACTIVATED) == 0 or divisions_left[i] <= 0):
        return
    if (state[i] & (NECROTIC | DEAD)) != 0:
        return
    if (state[i] & HYPOXIC) != 0:
        state[i] = state[i] | QUIESCENT
        return
    remaining = cycle_timer[i]
    if remaining > 0:
        cycle_timer[i] = remaining - 1
        return
    nz = params[NZ]
    ny = params[NY]
    nx = params[NX]
    z, y, x = voxel_coords(voxel[i], params)
    free = 0
    for d in range(N_DIRECTIONS):
        v = neighbour_at(z, y, x, d, nz, ny, nx)
        if v >= 0 and occ[v] < 0:
            free += 1
    if free == 0:
        state[i] = state[i] | QUIESCENT
        return
    state[i] = state[i] & NOT_QUIESCENT
    pick = draw_index(seed, step, agent_id[i], DIVISION_SITE, free)
    for d in range(N_DIRECTIONS):
        v = neighbour_at(z, y, x, d, nz, ny, nx)
        if v >= 0 and occ[v] < 0:
            if pick == 0:
                claim[i] = d
                return
            pick -= 1


# the dtypes of the agent table's row blocks (gpusim.state.RowBlock), in the order copy_parent takes them
TABLE_DTYPES = ("<i8", "<i4", "<i2", "|i1", "|u1")


@device
def copy_slot(table, source, destination):
    """``table[:, destination] = table[:, source]`` for a ``[row, slot]`` table."""
    for r in range(table.shape[0]):
        table[r, destination] = table[r, source]


@rule(reach=0)
def copy_parent(j, first_slot, parents, int64_rows, int32_rows, int16_rows, int8_rows, uint8_rows):
    """Daughter ``j`` starts as a copy of its parent, in every row of the agent table (one ``[row, slot]`` table
    per dtype, TABLE_DTYPES: one launch for all of them)."""
    if j >= parents.shape[0]:
        return
    parent = parents[j]
    daughter = first_slot + j
    copy_slot(int64_rows, parent, daughter)
    copy_slot(int32_rows, parent, daughter)
    copy_slot(int16_rows, parent, daughter)
    copy_slot(int8_rows, parent, daughter)
    copy_slot(uint8_rows, parent, daughter)


@rule(reach=1, tally=STEP_TALLY)
def place_daughter(
    j, seed, step, first_slot, first_id, parents, claim, agent_id, kind, state, voxel, cycle_timer, divisions_left,
    partner, pools, set_points, occ, params, cycle_table, inheritance_table, tally,
):
    """Daughter ``j`` of this step, in slot ``first_slot + j``: id, voxel, split pools, inherited set points,
    fresh clocks.

    The slot already holds a copy of the parent's columns (:func:`copy_parent`); this sets what differs.
    """
    if j >= parents.shape[0]:
        return
    parent = parents[j]
    daughter = first_slot + j  # within the table: parents lists no more than the room made (list_by_rank)
    daughter_id = first_id + j
    tally_add(tally, BIRTHS + int(kind[parent]), 1)
    agent_id[daughter] = daughter_id
    site = claimed_voxel(parent, voxel, claim, params)
    voxel[daughter] = site
    occ[site] = daughter
    partner[daughter] = -1
    for row in range(pools.shape[0]):  # every species the run holds
        total = pools[row, parent]
        pools[row, daughter] = total // 2
        pools[row, parent] = total - total // 2
    if kind[parent] == TUMOUR:
        cycle_timer[parent] = cycle_length(seed, step, agent_id[parent], cycle_table)
        cycle_timer[daughter] = cycle_length(seed, step, daughter_id, cycle_table)
        for r in range(N_SET_POINTS):
            row = params[SET_POINT_ROW + r]
            if row >= 0:
                factor = inheritance_table[draw_index(seed, step, daughter_id, INHERIT + r, inheritance_table.shape[0])]
                set_points[row, daughter] = (np.int64(set_points[row, parent]) * factor) >> _Q16
        antigen_a = params[SET_POINT_ROW + SET_A]
        if draw_below(seed, step, daughter_id, ANTIGEN_LOSS_DRAW, params[ANTIGEN_LOSS]) and antigen_a >= 0:
            set_points[antigen_a, daughter] = 0
    else:
        left = divisions_left[parent] - 1
        divisions_left[parent] = left
        divisions_left[daughter] = left
        state[parent] = state[parent] & NOT_ACTIVATED
        state[daughter] = state[daughter] & NOT_ACTIVATED
        cycle_timer[parent] = 0
        cycle_timer[daughter] = 0


@device
def could_divide_next_step(i, kind, state, voxel, cycle_timer, divisions_left, occ, params):
    """Whether cell ``i`` could divide in the next step; the census counts these, the bound on that step's
    daughters.

    Asked at the end of a step, before the next one's engage, synapse,
    express and move phases, which can make a cell due but only in these ways:

    * a tumour cell's countdown changes only in the divide phase, so it must
      be due already (``cycle_timer`` 0); and it needs a free neighbour voxel
      then.  Before the divide phase voxels are vacated only by effectors
      stepping away, and a tumour cell itself moves only when an effector
      squeezes past it into its voxel; so a due tumour cell with no empty
      neighbour and no effector neighbour cannot divide next step;
    * an effector with divisions left divides when activated with its clock
      run out: activated now with the clock at 0, or activated during the next
      synapse phase if its kind's clock starts at 0 (``DIVISION_STEPS``).

    Hypoxia and death only remove candidates.  Daughters born next step
    cannot divide in it (they are placed after the division sites are chosen).
    """
    flags = state[i]
    if (flags & (DEAD | NECROTIC)) != 0:
        return False
    k = int(kind[i])
    if k != TUMOUR:
        if divisions_left[i] <= 0:
            return False
        if (flags & ACTIVATED) != 0:
            return cycle_timer[i] <= 0
        return params[DIVISION_STEPS + k] <= 0
    if cycle_timer[i] > 0:
        return False
    z, y, x = voxel_coords(voxel[i], params)
    for d in range(N_DIRECTIONS):
        v = neighbour_at(z, y, x, d, params[NZ], params[NY], params[NX])
        if v >= 0 and (occ[v] < 0 or kind[occ[v]] != TUMOUR):
            return True
    return False


def lognormal_quantiles(median, cv, size=1024):
    """Host side: a log-normal distribution (median, coefficient of variation) at ``size`` mid-quantiles."""
    from statistics import NormalDist

    sigma = float(np.sqrt(np.log1p(cv * cv)))
    unit = NormalDist()
    quantiles = np.asarray([unit.inv_cdf((q + 0.5) / size) for q in range(size)])
    return median * np.exp(sigma * quantiles)


def inheritance_factors_q16(cv, size=1024):
    """Host side: multiplicative set-point noise at division, as factors times 2**16 (median 1)."""
    return np.rint(lognormal_quantiles(1.0, cv, size) * 65536).astype(np.int64)


def growth_age_table_q16(size=1024):
    """Host side: ages of the cells of an exponentially growing population as fractions of their cycle, times
    2**16, at ``size`` mid-quantiles.  Ages in such a population have the density ``2 ln2 2**-x`` on [0, 1) of a
    cycle (twice as many newborns as cells about to divide), so the quantile u lies at ``-log2(1 - u / 2)``."""
    u = (np.arange(size) + 0.5) / size
    return np.rint(-np.log2(1.0 - u / 2.0) * 65536).astype(np.int64)


def cycle_table_steps(median_min, cv, dt_min, size=1024):
    """Host side: the lookup table of cycle lengths (whole steps, at least 1).

    Cycle lengths are log-normal with the given median and coefficient of
    variation, tabulated at the mid-points of ``size`` equal quantile bins.
    """
    lengths = lognormal_quantiles(median_min, cv, size) / dt_min
    return np.maximum(np.rint(lengths), 1).astype(np.int32)
