"""The integer arithmetic the rules share is exact, compiled or run as Python (as numba's CUDA simulator runs it)."""

import numpy as np
import pytest

from gpusim.kernels import molecules
from gpusim.kernels.codegen import compile_device


def values_to_check():
    """Every value below 2**16, each power of two up to 2**62 and its neighbours, and log-normal molecule counts."""
    powers = np.array([2**b for b in range(63)], dtype=np.int64)
    rng = np.random.default_rng(11)
    counts = np.exp(rng.normal(np.log(20000), 2.0, 5000)).astype(np.int64)
    return np.unique(np.concatenate([np.arange(-3, 2**16), powers - 1, powers, powers[:-1] + 1, counts,
                                     [2**63 - 1]]))


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "numba"])
def test_bit_length_is_pythons(compiled):
    fn = compile_device(molecules.bit_length, "cpu") if compiled else molecules.bit_length
    for x in values_to_check():
        assert fn(np.int64(x)) == (int(x).bit_length() if x > 0 else 0), int(x)


def test_log_bins_are_those_the_cytometers_edges_describe():
    """The flow cytometer's bin of a count (0, 1, 2, 3 exactly, then four a doubling, the last from 2**20 up) is
    the one its host-side edges put it in."""
    fn = compile_device(molecules.log_bin, "cpu")
    values = values_to_check()
    edges = molecules.log_bin_edges()
    expected = np.clip(np.searchsorted(edges, np.maximum(values, 0), side="right") - 1, 0, molecules.HIST_BINS - 1)
    assert [fn(np.int64(x)) for x in values] == list(expected)
