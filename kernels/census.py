"""Counting the population: the per-step census and the virtual flow cytometer.

Both are tallying rules, so counts and sums are exact integers identical on
every backend.  The census runs every step; the flow cytometer (a histogram of
every pool per kind, on log-scale bins as a cytometrist would draw them) at
every snapshot.
"""

from gpusim.kernels.cell_cycle import could_divide_next_step
from gpusim.kernels.cells import ACTIVATED, DEAD, HYPOXIC, N_KINDS, NECROTIC, QUIESCENT, TUMOUR
from gpusim.kernels.decorators import rule
from gpusim.kernels.molecules import ANTIGEN_A, ANTIGEN_B, HIST_BINS, N_SPECIES, log_bin
from gpusim.kernels.params import EXHAUSTION_LIMIT, POOL_ROW
from gpusim.kernels.pools import molecules
from gpusim.kernels.tally import tally_add

# per-kind census rows: [kind * CENSUS_ROW + field]
LIVE = 0  # + (state & QUIESCENT): live cells cycling (LIVE), quiescent (LIVE + QUIESCENT)
DEAD_SLOTS = 1  # dead cells whose slots compaction has not reclaimed yet (gpusim.engine); not among the cells
STATE_CODES = 3
ENGAGED = STATE_CODES  # effectors in a synapse
EXHAUSTED = ENGAGED + 1  # effectors at their exhaustion limit
TROG_POSITIVE = EXHAUSTED + 1  # effectors wearing acquired antigen above the detection level
ACTIVATED_COUNT = TROG_POSITIVE + 1  # effectors activated to divide
NECROTIC_COUNT = ACTIVATED_COUNT + 1  # necrotic debris (not among the cells above)
HYPOXIC_COUNT = NECROTIC_COUNT + 1  # live cells short of oxygen
DIVISION_CANDIDATES = HYPOXIC_COUNT + 1  # cells that could divide in the next step (kernels.cell_cycle)
STIMULATION_SUM = DIVISION_CANDIDATES + 1  # sum of cumulative stimulation
POOL_SUM = STIMULATION_SUM + 1  # + species: molecules of each species on cells of this kind
CENSUS_ROW = POOL_SUM + N_SPECIES
ANTIGEN_HISTOGRAM = N_KINDS * CENSUS_ROW  # + kind * HIST_BINS + bin: antigen A per kind
CENSUS_SIZE = ANTIGEN_HISTOGRAM + N_KINDS * HIST_BINS

CYTOMETER_SIZE = N_SPECIES * N_KINDS * HIST_BINS  # [(species * N_KINDS + kind) * HIST_BINS + bin]


@rule(reach=0, tally=CENSUS_SIZE, cuda_c="census.cu")
def census(i, kind, state, voxel, partner, cycle_timer, divisions_left, stimulation, pools, occ, params, detection,
           tally):
    """Add cell ``i`` to the per-kind counts, pool sums and antigen-A histogram."""
    k = int(kind[i])
    flags = state[i]
    row = k * CENSUS_ROW
    if flags & DEAD:
        tally_add(tally, row + DEAD_SLOTS, 1)
        return
    if flags & NECROTIC:
        tally_add(tally, row + NECROTIC_COUNT, 1)
        return
    tally_add(tally, row + LIVE + int(flags & QUIESCENT), 1)
    if flags & HYPOXIC:
        tally_add(tally, row + HYPOXIC_COUNT, 1)
    if could_divide_next_step(i, kind, state, voxel, cycle_timer, divisions_left, occ, params):
        tally_add(tally, row + DIVISION_CANDIDATES, 1)
    for s in range(N_SPECIES):
        pool_row = params[POOL_ROW + s]
        if pool_row >= 0:  # a species the run holds
            tally_add(tally, row + POOL_SUM + s, pools[pool_row, i])
    tally_add(tally, ANTIGEN_HISTOGRAM + k * HIST_BINS + log_bin(molecules(pools, params, ANTIGEN_A, i)), 1)
    if k == TUMOUR:
        return
    if partner[i] >= 0:
        tally_add(tally, row + ENGAGED, 1)
    if stimulation[i] >= params[EXHAUSTION_LIMIT + k]:
        tally_add(tally, row + EXHAUSTED, 1)
    if molecules(pools, params, ANTIGEN_A, i) + molecules(pools, params, ANTIGEN_B, i) >= detection:
        tally_add(tally, row + TROG_POSITIVE, 1)
    if flags & ACTIVATED:
        tally_add(tally, row + ACTIVATED_COUNT, 1)
    tally_add(tally, row + STIMULATION_SUM, stimulation[i])


@rule(reach=0, tally=CYTOMETER_SIZE)
def flow_cytometry(i, kind, state, pools, params, tally):
    """Add cell ``i`` to the histogram of every pool of its kind (debris and the dead are not cells to measure)."""
    if (state[i] & (NECROTIC | DEAD)) != 0:
        return
    k = int(kind[i])
    for s in range(N_SPECIES):
        tally_add(tally, (s * N_KINDS + k) * HIST_BINS + log_bin(molecules(pools, params, s, i)), 1)
