"""Running a rule over its indices on the CPU (numba's threads), and what every launcher shares: the extent
of a launch (:class:`Count`) and timing launches per rule."""

import time

from gpusim.kernels.codegen import ghost_gate, launcher
from gpusim.kernels.decorators import tally_size

import numpy as np

_NO_GHOSTS = np.zeros(0, dtype=np.uint8)  # the flags of a launch that counts every index
_GATED = np.zeros(1, dtype=np.uint8)  # stands for the flags of a rule that reads them from its own `state`


def ghost_arguments(fn, ghosts, none, gated):
    """The last two arguments of a tallying launch of ``fn``: the GHOST flags (``none`` to count every index;
    ``gated`` where the rule's own ``state`` holds them, kernels.codegen.ghost_gate) and the offset of index 0
    in them."""
    if ghosts is None:
        return none, 0
    flags, offset = ghosts
    return (gated if ghost_gate(fn) == "state" else flags), int(offset)


class Count:
    """The extent of a launch over the agent table when only the device knows it exactly.

    ``live`` is a one-element int64 array on the device holding the number of
    cells; ``bound`` a host integer no smaller than it.  A CUDA launch starts
    ``bound`` threads and those at ``live[0]`` or beyond do nothing, so the
    host need not wait for the device to learn the count.  On the CPU the
    array is host memory and the launch reads it.
    """

    __slots__ = ("bound", "live")

    def __init__(self, bound, live):
        self.bound = int(bound)
        self.live = live

    def __repr__(self):
        return f"Count(bound={self.bound})"


class Launcher:
    """What both launchers share: running a rule, and on request timing every launch per rule."""

    timings = None  # rule name -> [launches, seconds] while timing (see time_rules)

    def time_rules(self, on=True):
        """Start (or with ``on`` False, stop) recording the wall time of every launch per rule, the device waited
        for before and after each; returns the record (a dict filled as launches happen)."""
        self.timings = {} if on else None
        return self.timings

    def __call__(self, fn, n, *args, ghosts=None):
        """Run ``fn`` for indices ``0..n-1`` (``n`` an int or a :class:`Count`); returns the summed tally (int64)
        of a tallying rule.

        ``ghosts``, for a tallying rule: ``(flags, offset)``, the table's ``state`` column and where index 0's
        cell sits in it; what an index whose cell carries the GHOST flag (a copy of a cell another process
        steps, kernels.cells) adds is left out of the tally, so that each process counts only its own cells.
        """
        if self.timings is None:
            return self._launch(fn, n, args, ghosts)
        self._wait()
        start = time.perf_counter()
        result = self._launch(fn, n, args, ghosts)
        self._wait()
        entry = self.timings.setdefault(fn.__name__, [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - start
        return result

    def _wait(self):
        """Wait for the device (nothing to wait for on the CPU)."""


class CPULauncher(Launcher):
    """Runs rules with numba's CPU threads.

    A tallying rule runs over ``TALLY_CHUNKS`` contiguous ranges of indices,
    each adding into its own row of counters; the rows are summed after.
    """

    target = "cpu"
    TALLY_CHUNKS = 64

    def _launch(self, fn, n, args, ghosts):
        if isinstance(n, Count):
            n = min(int(n.live[0]), n.bound)  # as on the GPU, never past the bound
        size = tally_size(fn)
        if size:
            partials = np.zeros((self.TALLY_CHUNKS, 2, size), dtype=np.int64)  # [chunk, counted or not, counter]
            if n > 0:
                flags, offset = ghost_arguments(fn, ghosts, _NO_GHOSTS, _GATED)
                launcher(fn, "cpu")(n, *args, partials, flags, int(offset))
            return partials[:, 0].sum(axis=0)
        if n > 0:
            launcher(fn, "cpu")(n, *args)
        return None

