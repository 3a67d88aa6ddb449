"""Counters that rules add to: the per-step ledger of molecules, kills and events.

A tallying rule (``@rule(tally=K)``) receives ``tally``, a vector of K int64
counters, and adds to it with :func:`tally_add`.  On the CPU each thread adds
into a private row; on the GPU the add is atomic in the block's shared
memory, once per warp and counter: the lanes adding to the same counter sum
their amounts first, since same-address atomics in shared memory run one lane
after another (the census, where every lane of a warp adds to the same few
counters, took 38% of a step at 1e8 agents on an H200).  Integer addition is
exact in any order, so the sums are identical on every backend and thread
count.

Every tallying rule of the step uses the one layout below (``STEP_TALLY``
counters), so the engine adds their results into one ledger per step.
"""

import numba

from gpusim.kernels.cells import N_CAUSES, N_KINDS
from gpusim.kernels.launch import Layout, device_for_targets
from gpusim.kernels.molecules import N_SPECIES

ALL_LANES = 0xFFFFFFFF


def _tally_add_warp(tally, slot, amount):
    """The lanes of a warp that add to the same slot sum their amounts by shuffles; the lowest adds the sum."""
    # `cuda` is bound by the launch layer when this is compiled for the GPU
    peers = cuda.match_any_sync(cuda.activemask(), slot)  # noqa: F821 - lanes here adding to this slot
    total = numba.int64(amount)
    if peers == ALL_LANES:  # the whole warp: a butterfly sum, every lane ends with the total
        offset = 16
        while offset > 0:
            total += cuda.shfl_xor_sync(ALL_LANES, total, offset)  # noqa: F821
            offset //= 2
    else:  # each peer reads every peer's amount in lane order (all peers run the same loop)
        total = 0
        rest = peers
        while rest != 0:
            total += cuda.shfl_sync(peers, numba.int64(amount), cuda.ffs(rest) - 1)  # noqa: F821
            rest &= rest - 1
    if cuda.laneid == cuda.ffs(peers) - 1:  # noqa: F821
        cuda.atomic.add(tally, slot, total)  # noqa: F821


def _tally_add_simulated(tally, slot, amount):
    cuda.atomic.add(tally, slot, amount)  # noqa: F821 - numba's CUDA simulator has no warp intrinsics


@device_for_targets(cuda=_tally_add_simulated if numba.config.ENABLE_CUDASIM else _tally_add_warp)
def tally_add(tally, slot, amount):
    """``tally[slot] += amount``, safely on every target."""
    tally[slot] += amount


_layout = Layout()
_block = _layout.block


SYNTHESISED = _block(N_SPECIES)  # molecules made by expression, per species
DEGRADED = _block(N_SPECIES)  # molecules internalised or degraded, per species
LOST = _block(N_SPECIES)  # molecules on cells that died, per species
TAKEN = _block(N_SPECIES)  # molecules moved from targets to effectors (trogocytosis, bites)
GIVEN = _block(N_SPECIES)  # molecules moved from effectors to targets (reverse trogocytosis)
DEATHS = _block(N_CAUSES * N_KINDS)  # [cause * N_KINDS + kind]
HITS = _block(1)  # lytic hits delivered
BITES = _block(1)  # trogocytic bites by CAR-macrophages
ENGAGEMENTS = _block(1)  # synapses formed
TONIC = _block(1)  # steps of tonic self-stimulation (acquired antigen meeting the cell's own CAR)
CLEARED = _block(1)  # necrotic debris cleared from its voxel
BIRTHS = _block(N_KINDS)  # daughters placed, per kind
MOVES = _block(1)  # steps taken by migrating effectors
TABLE_FULL = _block(1)  # daughters that found no slot in the agent table (always 0: the engine raises otherwise)
STEP_TALLY = _layout.size
