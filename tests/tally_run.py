"""Sum large, negative and carrying amounts with a tallying rule on a backend; print the sums as JSON.

    NUMBA_ENABLE_CUDASIM=1 python tests/tally_run.py cuda     (or: python tests/tally_run.py cpu)

The GPU's block counters are 32-bit halves (kernels.tally); these amounts
carry out of the low half, borrow through negative values and reach past
2**32 in one add, so that the sums show the halves recombine exactly.
"""

import json
import sys

import numpy as np

from gpusim.kernels.decorators import rule
from gpusim.kernels.tally import tally_add


@rule(reach=0, tally=4)
def add_amounts(i, amounts, tally):
    tally_add(tally, 0, amounts[i])
    tally_add(tally, 1, -amounts[i])
    tally_add(tally, 2, 1)
    if amounts[i] > 0:
        tally_add(tally, 3, amounts[i] * 3)


def amounts(n):
    rng = np.random.default_rng(4)
    values = rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
    values[::7] = 2**32 - 1  # each one carries the low half over
    values[::11] = -1
    values[::13] = 2**62 // n
    return values


def expected_sums(values):
    """What add_amounts sums ``values`` to, by numpy's int64 arithmetic."""
    return [int(values.sum()), -int(values.sum()), len(values), int((values[values > 0] * 3).sum())]


def main():
    from gpusim.backend import select

    backend = select(sys.argv[1])
    values = amounts(1000)
    sums = backend.to_host(backend.launch(add_amounts, len(values), backend.to_device(values)))
    print(json.dumps({"backend": backend.label, "sums": [int(x) for x in sums]}))


if __name__ == "__main__":
    main()
