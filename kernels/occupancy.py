"""Keeping the occupancy grid and the agent table in step, and placing new cells.

``occ[voxel]`` holds the slot of the cell in that voxel or -1.  After the
agent table is compacted or sorted, every cell writes its new slot into its
own voxel.  New cells (the initial tumour, infused effectors) are placed by
ranking free voxels by :func:`placement_key`, a selection of the smallest keys
that needs no memory per voxel (:mod:`gpusim.dosing`).
"""

import numpy as np

from gpusim.kernels.cells import DEAD, DEBRIS_LABEL, NECROTIC, TUMOUR
from gpusim.kernels.decorators import device, rule
from gpusim.kernels.lattice import N_DIRECTIONS, tissue_coords, tissue_voxel
from gpusim.kernels.molecules import ANTIGEN_A, ANTIGEN_B, CAR, N_SET_POINTS, N_SPECIES, SET_A, SET_B
from gpusim.kernels.params import DIVISION_BUDGET, SET_POINT, SET_POINT_ROW
from gpusim.kernels.pools import molecules, put_molecules, set_point
from gpusim.kernels.tally import STEP_TALLY, TABLE_FULL, tally_add
from gpusim.kernels.rng import INITIAL_HEADING, PLACEMENT, SET_POINT as SET_POINT_DRAW, draw, draw_index

_S32 = np.uint64(32)


@rule(reach=0)
def claim_own_voxel(i, voxel, occ):
    """Cell ``i`` writes its slot into its voxel."""
    occ[voxel[i]] = i


# channels of the voxel-field image written at snapshots (one source for the store and the viewer)
FIELD_NAMES = ("antigen_a", "acquired_antigen_a", "car")
FIELD_LABELS = ("tumour antigen A (molecules)", "acquired antigen A on effectors (molecules)", "CAR (molecules)")


@rule(reach=0)
def paint_field(j, first_voxel, channel, occ, kind, pools, params, field):
    """Molecule field ``channel`` (FIELD_NAMES) in voxel ``first_voxel + j``: tumour antigen, antigen acquired by
    effectors, or CAR on any cell; 0 where there is none.  A chunk of voxels and one channel at a time, so a
    snapshot needs little device memory."""
    i = occ[first_voxel + j]
    field[j] = 0
    if i < 0:
        return
    tumour = kind[i] == TUMOUR
    if channel == 0 and tumour:
        field[j] = molecules(pools, params, ANTIGEN_A, i)
    elif channel == 1 and not tumour:
        field[j] = molecules(pools, params, ANTIGEN_A, i)
    elif channel == 2:
        field[j] = molecules(pools, params, CAR, i)


@rule(reach=0)
def paint_kind(j, first_voxel, occ, kind, state, volume):
    """The cell-kind map in voxel ``first_voxel + j``: 0 if empty, DEBRIS_LABEL for necrotic debris, else the
    cell's kind + 1."""
    i = occ[first_voxel + j]
    if i < 0:
        volume[j] = 0
    elif (state[i] & NECROTIC) != 0:
        volume[j] = DEBRIS_LABEL
    else:
        volume[j] = kind[i] + 1


@device
def placement_key(v, seed, step, centre_z, centre_y, centre_x, radius_sq, by_distance, params):
    """The integer key that ranks free voxel ``v`` for a new cell: the smallest keys are taken first.

    With ``by_distance`` the key ranks first by how far the voxel's squared
    distance to the centre is from ``radius_sq`` (a spherical shell of that
    radius, or a ball when it is 0), then at random; without, at random
    alone.  All integer, so every backend ranks alike.
    """
    noise = draw(seed, step, tissue_voxel(v, params), PLACEMENT) >> _S32
    if by_distance == 0:
        return noise
    z, y, x = tissue_coords(v, params)
    d_sq = (z - centre_z) * (z - centre_z) + (y - centre_y) * (y - centre_y) + (x - centre_x) * (x - centre_x)
    off = d_sq - radius_sq
    if off < 0:
        off = -off
    return (np.uint64(off) << _S32) | noise


@rule(reach=0)
def placement_digit(j, first_voxel, occ, seed, step, centre_z, centre_y, centre_x, radius_sq, by_distance, params,
                    prefix, prefix_shift, shift, width, digits):
    """One digit of voxel ``first_voxel + j``'s placement key, for the histogram of a radix selection.

    ``digits[j]`` is the ``width`` bits of the key from bit ``shift`` if the
    voxel is free and its key's bits from ``prefix_shift`` up equal
    ``prefix`` (the digits already chosen; none if ``prefix_shift`` is 64),
    else ``2**width`` (not counted).
    """
    v = first_voxel + j
    digits[j] = 1 << width
    if occ[v] >= 0:
        return
    key = placement_key(v, seed, step, centre_z, centre_y, centre_x, radius_sq, by_distance, params)
    if prefix_shift < 64 and (key >> np.uint64(prefix_shift)) != prefix:
        return
    digits[j] = np.int64((key >> np.uint64(shift)) & ((np.uint64(1) << np.uint64(width)) - np.uint64(1)))


@rule(reach=0)
def placement_pick(j, first_voxel, occ, seed, step, centre_z, centre_y, centre_x, radius_sq, by_distance, params,
                   threshold, picked):
    """``picked[j]``: 1 if voxel ``first_voxel + j`` is free with a placement key below ``threshold``, 2 if free
    with a key equal to it (taken in voxel order while room is left), else 0."""
    v = first_voxel + j
    picked[j] = 0
    if occ[v] >= 0:
        return
    key = placement_key(v, seed, step, centre_z, centre_y, centre_x, radius_sq, by_distance, params)
    if key < threshold:
        picked[j] = 1
    elif key == threshold:
        picked[j] = 2


@rule(reach=0)
def equip_cell(j, seed, step, first_slot, first_id, new_kind, agent_id, voxel, kind, heading, partner, divisions_left,
               pools, set_points, params, set_point_table, occ):
    """A new cell of ``new_kind`` in slot ``first_slot + j`` (its voxel already chosen): the next id, its slot in
    the occupancy grid, pools at their set points, and for effectors a heading and a division budget.

    A new tumour cell draws its heritable antigen set points from the
    population's log-normal distribution (``set_point_table[row]``, values at
    equally spaced quantiles).
    """
    slot = first_slot + j
    me = first_id + j
    agent_id[slot] = me
    kind[slot] = new_kind
    occ[voxel[slot]] = slot
    k = int(new_kind)
    partner[slot] = -1
    for s in range(N_SPECIES):
        put_molecules(pools, params, s, slot, params[SET_POINT + k * N_SPECIES + s])
    if k == TUMOUR:
        for r in range(N_SET_POINTS):
            row = params[SET_POINT_ROW + r]
            if row >= 0:
                set_points[row, slot] = set_point_table[
                    r, draw_index(seed, step, me, SET_POINT_DRAW + r, set_point_table.shape[1])
                ]
        put_molecules(pools, params, ANTIGEN_A, slot, set_point(set_points, params, SET_A, slot))
        put_molecules(pools, params, ANTIGEN_B, slot, set_point(set_points, params, SET_B, slot))
    else:
        heading[slot] = draw_index(seed, step, me, INITIAL_HEADING, N_DIRECTIONS)
        divisions_left[slot] = params[DIVISION_BUDGET + k]


# the tally of tumour_moments
MOMENT_Z, MOMENT_Y, MOMENT_X, MOMENT_COUNT = range(4)
N_MOMENTS = 4


@rule(reach=0, tally=N_MOMENTS)
def tumour_moments(i, kind, state, voxel, params, tally):
    """Tumour cell ``i`` adds its voxel's z, y and x and 1: the sums that give the tumour's centre of mass (where
    rim infusions are placed) without a copy of the tumour's voxels."""
    if kind[i] != TUMOUR or (state[i] & DEAD) != 0:
        return
    z, y, x = tissue_coords(voxel[i], params)
    tally_add(tally, MOMENT_Z, z)
    tally_add(tally, MOMENT_Y, y)
    tally_add(tally, MOMENT_X, x)
    tally_add(tally, MOMENT_COUNT, 1)


@rule(reach=0)
def gather_slots(j, order, source, destination):
    """``destination[:, j] = source[:, order[j]]``: rows of the agent table reordered (compaction, sort; the rows
    of one dtype a block at a time, gpusim.state.RowBlock)."""
    slot = order[j]
    for r in range(source.shape[0]):
        destination[r, j] = source[r, slot]


@rule(reach=0)
def mark_survivor(i, live, state, keep):
    """``keep[i] = 1`` if slot ``i`` holds a cell (below the count ``live[0]``) that is not dead, else 0."""
    keep[i] = 1 if i < live[0] and (state[i] & DEAD) == 0 else 0


@rule(reach=0, tally=STEP_TALLY)
def list_by_rank(i, rank, listing, tally):
    """Slot ``i``, if marked, enters ``listing`` at ``rank[i] - 1``; ``rank`` is the inclusive prefix sum of the
    marks (0 or 1 per slot), so the list is in slot order and built without knowing its length.

    Lists the survivors of compaction and the parents of the step's
    daughters.  The list of parents has room for the bound the engine made
    room for (:func:`gpusim.kernels.cell_cycle.could_divide_next_step`); an
    entry past the end is counted (``TABLE_FULL``), never written, and the
    engine stops the run.
    """
    before = rank[i - 1] if i > 0 else 0
    if rank[i] == before:
        return
    j = rank[i] - 1
    if j >= listing.shape[0]:
        tally_add(tally, TABLE_FULL, 1)
        return
    listing[j] = i


@rule(reach=0)
def mark_occupied(j, first_voxel, occ, marks):
    """``marks[j] = 1`` if voxel ``first_voxel + j`` holds a cell, else 0."""
    marks[j] = 1 if occ[first_voxel + j] >= 0 else 0


@rule(reach=0)
def list_occupied(j, first_voxel, occ, rank, listed, listing):
    """The cell in voxel ``first_voxel + j``, if any, enters ``listing`` after the ``listed[0]`` of the voxels
    before the chunk; ``rank`` is the inclusive prefix sum of the chunk's marks.  Over every chunk, the slots
    in voxel order: the order that sorts the agent table by voxel."""
    slot = occ[first_voxel + j]
    if slot >= 0:
        listing[listed[0] + rank[j] - 1] = slot
