"""Placing new cells: the initial tumour, and scheduled infusions of effectors.

Placement ranks free voxels with an integer key (:func:`placement_key`):

* the initial tumour fills the free voxels closest to the lattice centre (a
  ball), ties broken at random;
* ``rim`` infusions take the free voxels nearest to the tumour's surface,
  modelled as the sphere of the tumour's volume around its centre of mass, so
  effectors arrive hugging the tumour and spread outward when the shell is full;
* ``uniform`` infusions take free voxels uniformly at random.

New cells fill new slots in voxel order, which keeps placement independent of
the backend.
"""

import math
import warnings

import numpy as np

from gpusim.kernels.cells import KIND_NAMES, TUMOUR
from gpusim.kernels.occupancy import equip_cell, placement_key


# bytes per lattice voxel held for a moment while cells are placed: the free voxels' indices, their keys,
# the sort's order and its own buffers (choose_voxels)
PLACEMENT_BYTES_PER_VOXEL = 40


class Placement:
    BALL = "ball"
    RIM = "rim"
    UNIFORM = "uniform"


def _tumour_sphere(state):
    """(centre z, y, x) rounded to voxels and squared radius of the tumour's equivalent sphere."""
    xp = state.xp
    nz, ny, nx = state.shape
    tumour_voxels = state.view("voxel")[state.view("kind") == TUMOUR]
    count = int(tumour_voxels.shape[0])
    if count == 0:
        return (nz // 2, ny // 2, nx // 2), 0
    z = tumour_voxels // (ny * nx)
    y = (tumour_voxels // nx) % ny
    x = tumour_voxels % nx
    centre = tuple(int((int(xp.sum(c)) * 2 + count) // (2 * count)) for c in (z, y, x))
    radius = (3.0 * count / (4.0 * math.pi)) ** (1.0 / 3.0)
    return centre, int(round(radius * radius))


def choose_voxels(sim, count, placement):
    """``count`` free voxels (sorted) for new cells, ranked by ``placement``; fewer if the lattice is full."""
    state, xp = sim.state, sim.xp
    free = xp.flatnonzero(state.occ < 0)
    if placement == Placement.BALL:
        nz, ny, nx = state.shape
        centre, radius_sq, by_distance = (nz // 2, ny // 2, nx // 2), 0, 1
    elif placement == Placement.RIM:
        centre, radius_sq = _tumour_sphere(state)
        by_distance = 1
    elif placement == Placement.UNIFORM:
        centre, radius_sq, by_distance = (0, 0, 0), 0, 0
    else:
        raise ValueError(f"unknown placement {placement!r}")
    keys = xp.empty(free.shape[0], dtype=np.uint64)
    sim.launch(
        placement_key, free.shape[0], sim.seed, sim.clock, free, *centre, radius_sq, by_distance, sim.params, keys
    )
    order = xp.argsort(keys, kind="stable")[:count]
    return xp.sort(free[order])


def add_cells(sim, count, kind, placement):
    """Place ``count`` new cells of ``kind``; returns how many found room."""
    voxels = choose_voxels(sim, count, placement)
    placed = int(voxels.shape[0])
    if placed < count:
        warnings.warn(
            f"only {placed} of {count} {KIND_NAMES[kind]} cells found a free voxel at step {sim.clock}",
            RuntimeWarning,
            stacklevel=2,
        )
    if placed == 0:
        return 0
    state = sim.state
    first_slot, _first_id = state.append(placed)
    new = slice(first_slot, first_slot + placed)
    state["agent_id"][new] = sim.xp.arange(_first_id, _first_id + placed, dtype=np.int64)
    state["voxel"][new] = voxels
    state["kind"][new] = kind
    state.occ[voxels] = sim.xp.arange(first_slot, first_slot + placed, dtype=np.int32)
    sim.launch(
        equip_cell, placed, sim.seed, sim.clock, first_slot, state["agent_id"], state["kind"], state["heading"],
        state["partner"], state["divisions_left"], state["pools"], state["set_points"], sim.params, sim.set_point_table,
    )
    return placed
