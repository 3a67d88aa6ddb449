"""Counters that rules add to: the per-step ledger of molecules, kills and events.

A tallying rule (``@rule(tally=K)``) receives ``tally``, a vector of K int64
counters, and adds to it with :func:`tally_add`.  On the CPU each thread adds
into a private row; on the GPU the add is atomic in the block's shared
memory, on the counters' 32-bit halves.  Integer addition is exact in any
order, so the sums are identical on every backend and thread count.

Every tallying rule of the step uses the one layout below (``STEP_TALLY``
counters), so the engine adds their results into one ledger per step.
"""

import numpy as np

from gpusim.kernels.cells import N_CAUSES, N_KINDS
from gpusim.kernels.decorators import Layout, device, device_for_targets
from gpusim.kernels.molecules import N_SPECIES

_LOW_WORD = np.uint64(0xFFFFFFFF)
_WORD_BITS = np.uint64(32)


def _tally_add_cuda(tally, slot, amount):
    """On the GPU the block's counters are two rows of 32-bit words, ``tally[0]`` the low and ``tally[1]`` the
    high half of each int64 (two's complement): a 64-bit atomic add in shared memory is a compare-and-swap
    loop (``ATOMS.CAST.SPIN.64`` on sm_90) in which the lanes of a warp adding to one counter succeed one a
    round, where a 32-bit add is one instruction.  The low words add with the carry out of them going to the
    high word, which counts and pool sums below 2**32 never touch; the sums are exact modulo 2**64, so equal
    to the int64 ones."""
    value = np.uint64(np.int64(amount))
    low = np.uint32(value & _LOW_WORD)
    before = cuda.atomic.add(tally, (0, slot), low)  # noqa: F821 - `cuda` is bound when compiled for the GPU
    carry = (np.uint64(before) + np.uint64(low)) >> _WORD_BITS
    high = np.uint32(((value >> _WORD_BITS) + carry) & _LOW_WORD)
    if high != 0:
        cuda.atomic.add(tally, (1, slot), high)  # noqa: F821


@device_for_targets(cuda=_tally_add_cuda)
def tally_add(tally, slot, amount):
    """``tally[slot] += amount``, safely on every target."""
    tally[slot] += amount


@device
def whole_counter(low, high):
    """The int64 a GPU block's counter holds as its low and high 32-bit words (see ``_tally_add_cuda``): their
    64 bits read as two's complement (numba and numpy alike convert uint64 to int64 by wrapping)."""
    return np.int64((np.uint64(high) << _WORD_BITS) | np.uint64(low))


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
