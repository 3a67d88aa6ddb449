"""Conservation: molecules move between cells to the molecule; only synthesis, decay and death change totals."""

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.kernels.molecules import SPECIES_NAMES

from helpers import small_config

FAST = {"synapse_time": "6 min", "refractory_time": "2 min", "division_time": "20 min", "trogocytosis": "0.3 /min",
        "reverse_trogocytosis": "0.2 /min", "divisions": 4}


def busy_config(frozen, seed=3):
    """Many transfers, bites, engulfments and divisions of tumour cells and effectors."""
    never = "1e9 d"  # fractions below 2**-32 per step round to exactly zero
    tumour = {"initial_cells": 900, "cycle_time": "90 min", "antigen_b": 6000, "antigen_loss": 0.05}
    car_t = {"receptor_b": 8000, "receptor_b_role": "car", **FAST}
    car_nk = {"icar": 5000, **FAST}
    car_m = {"synapse_time": "4 min"}
    damage = {}
    if frozen:
        tumour |= {"reexpression_time": never, "acquired_car_half_life": never, "apoptosis_rate": "0 /h"}
        for eff in (car_t, car_nk, car_m):
            eff |= {"car_reexpression_time": never, "acquired_antigen_half_life": never, "lifespan": never,
                    "car_internalisation": "0 /min"}
        damage = {"lethal_hits": 10000, "effector_lethal_hits": 10000, "lethal_bites": 10000}
        car_m |= {"phagocytosis": 0.0}
    return small_config(
        run={"duration": "3 h", "seed": seed},
        lattice={"shape": [20, 20, 20]},
        tumour=tumour,
        damage=damage,
        effectors={"car_t": car_t, "car_nk": car_nk, "car_m": car_m},
        dose=[{"time": "0 min", "count": 200}, {"time": "0 min", "count": 100, "kind": "car_nk"},
              {"time": "0 min", "count": 60, "kind": "car_m"}],
    )[0]


def test_without_synthesis_decay_or_death_every_species_is_constant_to_the_molecule():
    sim = Simulation(busy_config(frozen=True), debug=True)
    sim.run()
    s = sim.timeseries.arrays()
    assert s["taken_antigen_a"].sum() > 10_000 and s["given_car"].sum() > 1_000 and s["bites"].sum() > 0
    assert s["births_tumour"].sum() > 100 and s["births_car_t"].sum() > 0
    for species in SPECIES_NAMES:
        totals = s[f"total_{species}"]
        assert np.all(totals == totals[0]), species
        assert s[f"synthesised_{species}"].sum() == s[f"degraded_{species}"].sum() == s[f"lost_{species}"].sum() == 0


@pytest.mark.parametrize("seed", [3, 8])
def test_ledger_balances_exactly_with_synthesis_decay_and_death(seed):
    sim = Simulation(busy_config(frozen=False, seed=seed))
    sim.run()
    s = sim.timeseries.arrays()
    assert s["deaths_lysis"].sum() > 0 and s["synthesised_antigen_a"].sum() > 0 and s["degraded_car"].sum() > 0
    for species in SPECIES_NAMES:
        change = np.diff(s[f"total_{species}"])
        flows = (s[f"synthesised_{species}"] - s[f"degraded_{species}"] - s[f"lost_{species}"]
                 + s[f"infused_{species}"])[1:]
        assert np.array_equal(change, flows), species


def test_division_splits_pools_exactly():
    cfg = busy_config(frozen=True)
    sim = Simulation(cfg)
    before = sim.state.snapshot()
    sim.run(60)
    after = sim.state.snapshot()
    assert after["agent_id"].size > before["agent_id"].size
    assert np.array_equal(before["pools"].sum(axis=1), after["pools"].sum(axis=1))
    assert after["pools"].min() >= 0
