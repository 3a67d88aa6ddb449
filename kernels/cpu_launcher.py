"""Running a rule over its indices on the CPU (numba's threads), and what every launcher shares: the extent
of a launch (:class:`Count`) and timing launches per rule."""

import time

from gpusim.kernels.codegen import launcher
from gpusim.kernels.decorators import tally_size

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

    def __call__(self, fn, n, *args):
        """Run ``fn`` for indices ``0..n-1`` (``n`` an int or a :class:`Count`); returns the summed tally (int64)
        of a tallying rule."""
        if self.timings is None:
            return self._launch(fn, n, *args)
        self._wait()
        start = time.perf_counter()
        result = self._launch(fn, n, *args)
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

    def _launch(self, fn, n, *args):
        import numpy as np

        if isinstance(n, Count):
            n = min(int(n.live[0]), n.bound)  # as on the GPU, never past the bound
        size = tally_size(fn)
        if size:
            partials = np.zeros((self.TALLY_CHUNKS, size), dtype=np.int64)
            if n > 0:
                launcher(fn, "cpu")(n, *args, partials)
            return partials.sum(axis=0)
        if n > 0:
            launcher(fn, "cpu")(n, *args)
        return None
