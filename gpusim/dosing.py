"""Placing new cells: the initial tumour, and scheduled infusions of effectors.

Placement takes the free voxels with the smallest integer keys
(:func:`gpusim.kernels.occupancy.placement_key`):

* the initial tumour fills the free voxels closest to the lattice centre (a
  ball), ties broken at random;
* ``rim`` infusions take the free voxels nearest to the tumour's surface,
  modelled as the sphere of the tumour's volume around its centre of mass, so
  effectors arrive hugging the tumour and spread outward when the shell is full;
* ``uniform`` infusions take free voxels uniformly at random.

New cells fill new slots in voxel order, which keeps placement independent of
the backend.  On a lattice split across ranks (gpusim.domain) each rank looks
at the voxels of its own layers only: the histograms and the count of tied
keys are summed over the ranks, and the ranks take tied voxels, and number
their new cells, in the order of their slabs, which is voxel order.
"""

import math
import warnings

import numpy as np

from gpusim.kernels.cells import KIND_NAMES
from gpusim.kernels.occupancy import (
    MOMENT_COUNT, MOMENT_X, MOMENT_Y, MOMENT_Z, equip_cell, placement_digit, placement_pick, tumour_moments,
)
from gpusim.state import chunk_size, voxel_chunks


DIGIT_BITS = 16  # bits of the placement key chosen per pass of the radix selection
DIGIT_BINS = 1 << DIGIT_BITS
COUNTED_AT_ONCE = 1 << 20  # digits counted into the histogram at a time (bounds the temporaries of counting)
_EVERY_KEY = 2**64 - 1  # above every placement key


class Placement:
    BALL = "ball"
    RIM = "rim"
    UNIFORM = "uniform"


def _tumour_sphere(sim):
    """(centre z, y, x) rounded to voxels and squared radius of the tumour's equivalent sphere."""
    state = sim.state
    nz, ny, nx = sim.domain.shape
    moments = sim.domain.sum(sim.backend.to_host(sim.launch_rule(tumour_moments, state.n)))
    count = int(moments[MOMENT_COUNT])
    if count == 0:
        return (nz // 2, ny // 2, nx // 2), 0
    centre = tuple(int((int(moments[m]) * 2 + count) // (2 * count)) for m in (MOMENT_Z, MOMENT_Y, MOMENT_X))
    radius = (3.0 * count / (4.0 * math.pi)) ** (1.0 / 3.0)
    return centre, int(round(radius * radius))


def _key_arguments(sim, placement):
    """The ranking's arguments to :func:`placement_key`, by name: centre, squared radius, by distance; and how
    many bits the keys can have."""
    shape = sim.domain.shape  # the whole lattice's
    if placement == Placement.BALL:
        nz, ny, nx = shape
        centre, radius_sq, by_distance = (nz // 2, ny // 2, nx // 2), 0, 1
    elif placement == Placement.RIM:
        centre, radius_sq = _tumour_sphere(sim)
        by_distance = 1
    elif placement == Placement.UNIFORM:
        centre, radius_sq, by_distance = (0, 0, 0), 0, 0
    else:
        raise ValueError(f"unknown placement {placement!r}")
    key_bits = 32  # the random part
    if by_distance:
        farthest_sq = sum(max(c, n - 1 - c) ** 2 for c, n in zip(centre, shape))
        key_bits += max(farthest_sq, radius_sq).bit_length()
    ranking = dict(zip(("centre_z", "centre_y", "centre_x"), centre), radius_sq=radius_sq, by_distance=by_distance)
    return ranking, key_bits


def placement_bytes(voxels):
    """Device memory held while cells are placed (:func:`choose_voxels`), whatever the number of cells."""
    chunk = chunk_size(voxels)
    histograms = 3 * DIGIT_BINS * 8  # the histogram, a chunk's counts, the last level's running sum
    counting = min(chunk, COUNTED_AT_ONCE) * (1 + 4 + 8)  # which digits count, those digits, as intp for bincount
    return max(chunk * 4 + counting, chunk * (1 + 1 + 8)) + histograms  # digits, or picks and a chunk's list


def _count_digits(xp, digits, histogram):
    """Add the digits below ``histogram``'s length (those of free voxels in the prefix) to it, COUNTED_AT_ONCE
    at a time."""
    bins = histogram.shape[0]
    for first in range(0, digits.shape[0], COUNTED_AT_ONCE):
        some = digits[first : first + COUNTED_AT_ONCE]
        histogram += xp.bincount(some[some < bins], minlength=bins)


def choose_voxels(sim, count, placement, out):
    """Write the ``count`` free voxels with the smallest placement keys (ties in voxel order) into ``out``, in
    voxel order; returns how many were written (fewer if the lattice is full).

    The same voxels as sorting every free voxel by its key, without holding
    anything per voxel: a radix selection finds the ``count``-th smallest key
    16 bits at a time, from the highest bit a key can have (a histogram of
    those bits over the free voxels whose higher bits are the ones already
    chosen), then one pass lists the voxels below it, and as many equal to it
    as are still wanted.  The lattice is walked in chunks (:func:`gpusim.state.voxel_chunks`).
    """
    xp, domain = sim.xp, sim.domain
    ranking, key_bits = _key_arguments(sim, placement)
    key_args = dict(ranking, step=sim.clock)
    first_own, stop_own = domain.own_voxels  # the voxels whose cells this process steps
    chunks = [(first_own + start, extent) for start, extent in voxel_chunks(stop_own - first_own)]
    chunk = chunk_size(stop_own - first_own)
    digits = xp.empty(chunk, dtype=np.int32)
    prefix, top, wanted = 0, key_bits, int(count)  # the key's bits from `top` up are `prefix`
    while top > 0:
        shift = max(top - DIGIT_BITS, 0)
        bins = 1 << (top - shift)
        histogram = xp.zeros(bins, dtype=np.int64)
        for start, extent in chunks:
            sim.launch_rule(placement_digit, extent, first_voxel=start, prefix=np.uint64(prefix), prefix_shift=top,
                        shift=shift, width=top - shift, digits=digits, **key_args)
            _count_digits(xp, digits[:extent], histogram)
        below_or_at = np.cumsum(domain.sum(sim.backend.to_host(histogram)))
        if top == key_bits and below_or_at[-1] <= wanted:  # no more free voxels than wanted: take them all
            prefix, wanted = _EVERY_KEY, 0
            break
        digit = int(np.searchsorted(below_or_at, wanted))  # the first digit at which enough are at or below
        wanted -= int(below_or_at[digit - 1]) if digit else 0
        prefix, top = (prefix << (top - shift)) | digit, shift
    del digits
    picked = xp.empty(chunk, dtype=np.uint8)

    def ties():
        tied = 0
        for start, extent in chunks:
            sim.launch_rule(placement_pick, extent, first_voxel=start, threshold=np.uint64(prefix), picked=picked,
                            **key_args)
            tied += int(xp.count_nonzero(picked[:extent] == 2))
        return tied

    wanted = domain.ties_to_take(wanted, ties)  # the ranks below take theirs first
    placed = 0
    for start, extent in chunks:
        sim.launch_rule(placement_pick, extent, first_voxel=start, threshold=np.uint64(prefix), picked=picked, **key_args)
        if wanted:
            ties = xp.flatnonzero(picked[:extent] == 2)[:wanted]
            picked[ties] = 1
            wanted -= int(ties.shape[0])
        chosen = xp.flatnonzero(picked[:extent] == 1)
        listed = out[placed : placed + chosen.shape[0]]
        listed[...] = chosen
        listed += start
        placed += int(chosen.shape[0])
        del chosen
    return placed


def add_cells(sim, count, kind, placement):
    """Place ``count`` new cells of ``kind``; returns how many found room.

    The voxels are chosen straight into the new slots of the voxel column.
    """
    state = sim.state
    state.make_room(count)
    placed = choose_voxels(sim, count, placement, out=state["voxel"][state.n : state.n + count])
    everywhere = sim.domain.sum(placed)
    if everywhere < count and sim.domain.rank == 0:
        warnings.warn(
            f"only {everywhere} of {count} {KIND_NAMES[kind]} cells found a free voxel at step {sim.clock}",
            RuntimeWarning,
            stacklevel=2,
        )
    first_id = sim.domain.new_ids(state, placed)
    if placed:
        first_slot, _ = state.append(placed, written=("voxel",))
        sim.launch_rule(equip_cell, placed, sim.clock, first_slot=first_slot, first_id=first_id, new_kind=kind)
    sim.domain.settle_ids(state)
    return everywhere
