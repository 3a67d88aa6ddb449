"""Counters that rules add to: the per-step ledger of molecules, kills and events.

A tallying rule (``@rule(tally=K)``) receives ``tally``, a vector of K int64
counters, and adds to it with :func:`tally_add`.  On the CPU each thread adds
into a private row; on the GPU the add is atomic in the block's shared
memory.  Integer addition is exact in any order, so the sums are identical on
every backend and thread count.
"""

from gpusim.kernels.launch import device_for_targets


def _tally_add_cuda(tally, slot, amount):
    cuda.atomic.add(tally, slot, amount)  # noqa: F821 - `cuda` is bound when compiled for the GPU


@device_for_targets(cuda=_tally_add_cuda)
def tally_add(tally, slot, amount):
    """``tally[slot] += amount``, safely on every target."""
    tally[slot] += amount
