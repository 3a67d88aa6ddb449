"""Mechanisms the recalibration added, each against its control: the same scene with the mechanism off (or the
rule it replaced), where the effect must not appear."""

import numpy as np
import pytest

from gpusim import assays
from gpusim.config import validate
from gpusim.engine import Simulation
from gpusim.kernels.cells import TUMOUR
from gpusim.kernels.lattice import N_DIRECTIONS, neighbour
from gpusim.kernels.molecules import ANTIGEN_A, CAR

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_effector_engages_a_recognised_neighbour_by_chance_not_the_richest(seed):
    """Among effectors just engaged in a dense well of widely varying antigen (trogocytosis and killing off, so
    nothing changes the targets), the engaged target holds what its recognised neighbours hold on average; the
    richest neighbour, which the rule before chose, holds far more."""
    raw = assays.coculture(2000, 0.5, 1, seed=seed, occupancy=0.4, tumour={"antigen_a_cv": 1.0},
                           effectors={"car_t": {"trogocytosis": "0 /min", "reverse_trogocytosis": "0 /min",
                                                "hit_chance": 0.0}})
    sim = Simulation(validate(raw))
    sim.run(1)
    cells = sim.state.snapshot()
    slot_of = {int(v): k for k, v in enumerate(cells["voxel"])}
    antigen, kind = cells["pools"][ANTIGEN_A], cells["kind"]
    engaged, average, richest = [], [], []
    for k in np.flatnonzero((kind != TUMOUR) & (cells["partner"] >= 0)):
        around = [slot_of.get(neighbour(int(cells["voxel"][k]), d, sim.params), -1) for d in range(N_DIRECTIONS)]
        targets = [j for j in around if j >= 0 and kind[j] == TUMOUR]
        engaged.append(antigen[slot_of[neighbour(int(cells["voxel"][k]), int(cells["partner"][k]), sim.params)]])
        average.append(np.mean(antigen[targets]))
        richest.append(np.max(antigen[targets]))
    assert len(engaged) > 300
    assert abs(np.mean(engaged) / np.mean(average) - 1) < 0.1
    assert np.mean(richest) / np.mean(average) > 1.5  # the rule it replaced would stand out


@pytest.mark.parametrize("seed", SEEDS)
def test_cells_seeded_at_their_set_points_would_drift_where_the_steady_state_holds(seed):
    """The control of the untreated culture's stationarity: the same well with every tumour cell put back at its
    set point after seeding (as before the steady-state seeding) loses well over 5% of its antigen per cell as
    division halves the pools faster than re-expression restores them."""
    raw = assays.untreated(assays.coculture(1500, 0.0, 48, seed=seed, occupancy=0.02))

    def drift(at_set_points):
        sim = Simulation(validate(raw))
        if at_set_points:
            cells = sim.state.host_columns()
            columns = dict(cells, pools=cells["pools"].copy())
            columns["pools"][ANTIGEN_A] = cells["set_points"][0]
            sim.state.load_columns(columns, sim.state.n)
        sim.run()
        mean = sim.timeseries.arrays()["mean_antigen_a_tumour"]
        return mean[-1] / mean[1]

    assert abs(drift(False) - 1) < 0.05
    assert drift(True) < 0.9


@pytest.mark.parametrize("seed", SEEDS)
def test_engaged_effectors_internalise_car_and_do_not_without_internalisation(seed):
    def car_per_effector(rate):
        raw = assays.coculture(1000, 0.5, 8, seed=seed, effectors={"car_t": {
            "car_internalisation": rate, "reverse_trogocytosis": "0 /min"}})
        return assays.run_arms(raw, [8], arms=("treated",))["treated"].at(8).car_per_effector

    assert car_per_effector("0.005 /min") < 0.9 * 30000
    assert car_per_effector("0 /min") > 0.99 * 30000


@pytest.mark.parametrize("seed", SEEDS)
def test_effectors_resist_fratricide_with_more_lethal_hits_than_tumour_cells(seed):
    def fratricide(hits):
        raw = assays.coculture(1000, 1.0, 12, seed=seed, extra={"damage": {"effector_lethal_hits": hits}})
        return assays.run_arms(raw, [12], arms=("treated",))["treated"].at(12).fratricide

    assert fratricide(6) < 0.5 * fratricide(3)  # at the tumour's 3 hits, effectors die far more often


def test_the_car_pools_of_a_fresh_effector_are_at_the_set_point():
    """The internalisation test's baseline: effectors start with their set point of CAR."""
    sim = Simulation(validate(assays.coculture(200, 0.5, 1, seed=1)))
    cells = sim.state.snapshot()
    assert np.all(cells["pools"][CAR][cells["kind"] != TUMOUR] == 30000)
