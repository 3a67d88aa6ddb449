"""Counters that rules add to: the per-step ledger of molecules, kills and events.

A tallying rule (``@rule(tally=K)``) receives ``tally``, a vector of K int64
counters, and adds to it with :func:`tally_add`.  On the CPU each thread adds
into a private row; on the GPU the add is atomic in the block's shared
memory.  Integer addition is exact in any order, so the sums are identical on
every backend and thread count.

Every tallying rule of the step uses the one layout below (``STEP_TALLY``
counters), so the engine adds their results into one ledger per step.
"""

from gpusim.kernels.cells import N_CAUSES, N_KINDS
from gpusim.kernels.launch import Layout, device_for_targets
from gpusim.kernels.molecules import N_SPECIES


def _tally_add_cuda(tally, slot, amount):
    cuda.atomic.add(tally, slot, amount)  # noqa: F821 - `cuda` is bound when compiled for the GPU


@device_for_targets(cuda=_tally_add_cuda)
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
