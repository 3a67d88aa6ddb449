"""The phenomena of BIOLOGY.md emerge from the rules (none of them is written in).

Each scenario is a tumour ball of 1,500 cells in a 24^3 lattice (10 um voxels)
with effectors infused at its rim, run for hours of simulated time; every
claim is a direction or a ratio with a margin, checked on three seeds.
"""

import numpy as np
import pytest

from gpusim.config import validate
from gpusim.engine import Simulation
from gpusim.kernels.cells import CAR_T, TUMOUR
from gpusim.kernels.molecules import ANTIGEN_A, CAR, bound_complexes
from gpusim.kernels.params import K_CAR

SEEDS = (1, 2, 3)


def scene(seed, hours=8, tumour=None, effectors=None, dose=None, depletion=None):
    raw = {
        "run": {"duration": f"{hours} h", "snapshot_every": f"{hours} h", "sort_every": "1 h", "seed": seed},
        "lattice": {"shape": [24, 24, 24]},
        "tumour": {"initial_cells": 1500, **(tumour or {})},
        "effectors": effectors or {},
        "dose": [{"time": "0 min", "count": 750}] if dose is None else dose,
        "depletion": depletion or [],
    }
    sim = Simulation(validate(raw))
    sim.run()
    return sim, sim.timeseries.arrays()


def car_t(count):
    return [{"time": "0 min", "count": count}]


@pytest.mark.parametrize("seed", SEEDS)
def test_A_antigen_shifts_down_effectors_turn_positive_survivors_antigen_low_not_negative(seed):
    sim, s = scene(seed, hours=6)
    _, control = scene(seed, hours=6, dose=[])
    assert s["mean_antigen_a_tumour"][-1] < 0.8 * control["mean_antigen_a_tumour"][-1]
    assert s["trog_positive_car_t"].max() > 0.02 * s["cells_car_t"].max()
    snap = sim.state.snapshot()
    survivors = snap["pools"][ANTIGEN_A][snap["kind"] == TUMOUR]
    assert survivors.size > 100
    assert np.mean(survivors < 100) < 0.02  # antigen-low, not antigen-negative


@pytest.mark.parametrize("seed", SEEDS)
def test_A_antigen_recovers_when_the_car_t_cells_are_removed(seed):
    """Mostly trogocytic loss (weak killing): removing the CAR-T at 6 h lets density come back."""
    tumour = {"reexpression_time": "12 h"}
    weak_killers = {"car_t": {"hit_chance": 0.01, "trogocytosis": 0.3}}
    _, s = scene(seed, hours=48, tumour=tumour, effectors=weak_killers, dose=car_t(1500), depletion=[{"time": "6 h"}])
    _, control = scene(seed, hours=48, tumour=tumour, dose=[])
    ratio = s["mean_antigen_a_tumour"] / control["mean_antigen_a_tumour"]
    assert ratio[360] < 0.88  # down at removal
    assert ratio[-1] > ratio[360] + 0.08  # and back up two days later
    assert s["cells_car_t"][-1] == 0 and s["deaths_depletion"].sum() > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_A_low_dose_leaves_antigen_low_survivors_that_a_higher_dose_clears(seed):
    _, low = scene(seed, hours=24, dose=car_t(250))
    _, high = scene(seed, hours=24, dose=car_t(3000))
    assert low["cells_tumour"][-1] > 300
    assert low["mean_antigen_a_tumour"][-1] < 0.8 * low["mean_antigen_a_tumour"][0]
    assert high["cells_tumour"][-1] < 0.1 * low["cells_tumour"][-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_B_fratricide_and_tonic_exhaustion_rise_with_trogocytosis_and_vanish_without(seed):
    runs = {trog: scene(seed, effectors={"car_t": {"trogocytosis": trog}})[1] for trog in (0.0, 0.05, 0.2)}
    assert runs[0.0]["deaths_fratricide"].sum() == 0
    assert runs[0.0]["tonic_stimulations"].sum() == 0
    assert runs[0.0]["taken_antigen_a"].sum() == 0 and runs[0.0]["trog_positive_car_t"].max() == 0
    assert 0 < runs[0.05]["deaths_fratricide"].sum() < runs[0.2]["deaths_fratricide"].sum()
    assert 0 < runs[0.05]["tonic_stimulations"].sum() < runs[0.2]["tonic_stimulations"].sum()
    hold = {"hit_chance": 0.0}  # no killing: effectors stay engaged and only trogocytosis differs
    calm = scene(seed, hours=12, effectors={"car_t": {"trogocytosis": 0.0, **hold}})[1]
    busy = scene(seed, hours=12, effectors={"car_t": {"trogocytosis": 0.3, **hold}})[1]
    assert busy["mean_stimulation_car_t"][-1] > 1.5 * calm["mean_stimulation_car_t"][-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_C_an_icar_spares_car_nk_from_fratricide_and_controls_the_tumour_better(seed):
    nk = [{"time": "0 min", "count": 750, "kind": "car_nk"}]
    plain = scene(seed, hours=12, dose=nk, effectors={"car_nk": {"trogocytosis": 0.2}})[1]
    guarded = scene(seed, hours=12, dose=nk, effectors={"car_nk": {"trogocytosis": 0.2, "icar": 20000}})[1]
    assert plain["deaths_fratricide"].sum() > 50
    assert guarded["deaths_fratricide"].sum() < 0.1 * plain["deaths_fratricide"].sum()
    assert guarded["cells_car_nk"][-1] > 1.3 * plain["cells_car_nk"][-1]
    assert guarded["deaths_lysis"].sum() >= 0.95 * plain["deaths_lysis"].sum()  # tumour killing not weakened
    assert guarded["cells_tumour"][-1] < plain["cells_tumour"][-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_D_lower_affinity_much_less_trogocytosis_similar_killing_longer_persistence(seed):
    high = scene(seed, effectors={"car_t": {"car_kd": "50 nM"}})[1]
    low = scene(seed, effectors={"car_t": {"car_kd": "5 uM"}})[1]
    assert low["taken_antigen_a"].sum() < 0.1 * high["taken_antigen_a"].sum()
    assert low["deaths_fratricide"].sum() <= 0.2 * high["deaths_fratricide"].sum()
    assert low["deaths_lysis"].sum() > 0.8 * high["deaths_lysis"].sum()
    assert low["cells_car_t"][-1] >= high["cells_car_t"][-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_D_cd28_beats_41bb_on_antigen_low_targets(seed):
    antigen_low = {"antigen_a": 2500}
    cd28 = scene(seed, tumour=antigen_low, effectors={"car_t": {"costimulation": "cd28"}})[1]
    bb = scene(seed, tumour=antigen_low, effectors={"car_t": {"costimulation": "41bb"}})[1]
    assert cd28["deaths_lysis"].sum() > 1.2 * bb["deaths_lysis"].sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_E_higher_dose_and_dual_targeting_kill_antigen_low_cells_single_low_dose_misses(seed):
    antigen_low = {"antigen_a": 1500, "antigen_b": 10000}
    single_low = scene(seed, tumour=antigen_low, dose=car_t(300))[1]
    single_high = scene(seed, tumour=antigen_low, dose=car_t(1500))[1]
    dual_low = scene(seed, tumour=antigen_low, dose=car_t(300), effectors={"car_t": {"receptor_b": 20000}})[1]
    assert single_high["deaths_lysis"].sum() > 2 * single_low["deaths_lysis"].sum()
    assert dual_low["deaths_lysis"].sum() > 1.15 * single_low["deaths_lysis"].sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_F_reverse_trogocytosis_puts_car_on_tumour_cells_masks_antigen_and_strips_car_cells(seed):
    sim, s = scene(seed, hours=6, effectors={"car_t": {"reverse_trogocytosis": 0.05}})
    none = scene(seed, hours=6, effectors={"car_t": {"reverse_trogocytosis": 0.0}})[0]
    snap, plain = sim.state.snapshot(), none.state.snapshot()
    tumour = snap["kind"] == TUMOUR
    acquired_car = snap["pools"][CAR][tumour]
    assert s["given_car"].sum() > 0 and np.mean(acquired_car > 0) > 0.05  # the contacted rim
    assert plain["pools"][CAR][plain["kind"] == TUMOUR].max() == 0
    k_car = int(sim.params[K_CAR + CAR_T])
    masked = [bound_complexes(c, a, k_car) for c, a in zip(acquired_car, snap["pools"][ANTIGEN_A][tumour])]
    assert sum(masked) > 0  # antigen bound in cis is not presented in trans
    assert snap["pools"][CAR][snap["kind"] == CAR_T].mean() < 30000  # below the CAR set point
    assert plain["pools"][CAR][plain["kind"] == CAR_T].mean() >= snap["pools"][CAR][snap["kind"] == CAR_T].mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_G_car_macrophages_bite_adherent_tumours_and_kill_by_bites_only_when_frequent(seed):
    macrophages = [{"time": "0 min", "count": 750, "kind": "car_m"}]
    loose = scene(seed, hours=12, tumour={"adherence": 0.0}, dose=macrophages)[1]
    sticky = scene(seed, hours=12, tumour={"adherence": 5.0}, dose=macrophages)[1]
    assert sticky["bites"].sum() > 1.15 * loose["bites"].sum()
    assert sticky["deaths_phagocytosis"].sum() < 0.8 * loose["deaths_phagocytosis"].sum()
    assert sticky["taken_antigen_a"].sum() > 1.2 * loose["taken_antigen_a"].sum()
    bites_only = {"phagocytosis": 0.0}
    rare = scene(seed, hours=12, dose=macrophages, effectors={"car_m": {"synapse_time": "3 h", **bites_only}})[1]
    frequent = scene(seed, hours=12, dose=macrophages, effectors={"car_m": {"synapse_time": "10 min", **bites_only}})[1]
    assert frequent["deaths_trogoptosis"].sum() > 4 * max(rare["deaths_trogoptosis"].sum(), 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_H_trogocytosis_pushes_antigen_below_the_lysis_threshold_and_tumour_cells_escape(seed):
    near_threshold = {"antigen_a": 4000, "antigen_a_cv": 0.3}
    without = scene(seed, hours=12, tumour=near_threshold, dose=car_t(400), effectors={"car_t": {"trogocytosis": 0.0}})[1]
    with_trog = scene(seed, hours=12, tumour=near_threshold, dose=car_t(400), effectors={"car_t": {"trogocytosis": 0.1}})[1]
    assert with_trog["cells_tumour"][-1] > 1.5 * without["cells_tumour"][-1]
    assert with_trog["deaths_lysis"][-240:].sum() < without["deaths_lysis"][-240:].sum()
