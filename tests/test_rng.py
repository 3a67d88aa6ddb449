"""The counter-based random numbers: reproducible, uniform, and independent across purposes."""

import numpy as np
import pytest

from gpusim.kernels import rng
from gpusim.kernels.codegen import compile_device

draw = compile_device(rng.draw, "cpu")
draw_index = compile_device(rng.draw_index, "cpu")
draw_below = compile_device(rng.draw_below, "cpu")


def test_draw_is_a_pure_function_of_its_four_keys():
    assert draw(1, 2, 3, 4) == draw(1, 2, 3, 4)
    base = draw(1, 2, 3, 4)
    assert len({base, draw(2, 2, 3, 4), draw(1, 3, 3, 4), draw(1, 2, 4, 4), draw(1, 2, 3, 5)}) == 5


def test_compiled_and_plain_python_agree():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for key in [(0, 0, 0, 0), (123456789, 2880, 10**12, 7), (2**63 - 1, 5, 3, 1)]:
            assert int(rng.draw(*key)) == int(draw(*key))


def test_draw_index_is_uniform_over_26_directions():
    counts = np.bincount([draw_index(9, 1, agent, rng.MOVE_DIRECTION, 26) for agent in range(52000)], minlength=26)
    expected = 52000 / 26
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert counts.size == 26
    assert chi2 < 52.6  # 25 degrees of freedom, p = 0.001


@pytest.mark.parametrize("p", [0.0, 0.01, 0.3, 1.0])
def test_draw_below_hits_its_probability(p):
    threshold = rng.probability_threshold(p)
    hits = sum(draw_below(4, 0, agent, rng.APOPTOSIS, threshold) for agent in range(40000))
    assert abs(hits / 40000 - p) < 4 * np.sqrt(max(p * (1 - p), 1e-9) / 40000) + 1e-9


def test_purposes_are_independent():
    a = np.array([draw(5, 10, agent, rng.MOVE_ATTEMPT) >> np.uint64(11) for agent in range(20000)], dtype=np.float64)
    b = np.array([draw(5, 10, agent, rng.MOVE_TURN) >> np.uint64(11) for agent in range(20000)], dtype=np.float64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03
