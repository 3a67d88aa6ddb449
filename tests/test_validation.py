"""The model against the papers: the validation suite's rows on each of seeds 1-3, and the properties of the
co-culture every row stands on (an untreated culture holds its antigen; killing follows mass action at low density
and saturates at the handling time the rules imply)."""

import numpy as np
import pytest

from gpusim import assays, validation
from gpusim.config import validate
from gpusim.engine import Simulation

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def results():
    return validation.run(seeds=SEEDS, quick=True)


@pytest.mark.parametrize("key", [row.key for row in validation.ROWS])
def test_a_validation_row_holds_on_each_seed(results, key):
    result = next(r for r in results if r.row.key == key)
    assert result.passed, f"{key}: {result.values} outside [{result.row.low}, {result.row.high}] ({result.row.criterion})"


def test_the_table_and_the_figure_show_every_row(results, tmp_path):
    table = validation.markdown(results, SEEDS)
    assert table.count("\n") == len(validation.ROWS) + 1 and "Hamieh 2019" in table and "**fail**" not in table
    path = validation.figure(results, tmp_path / "validation.png")
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize("seed", SEEDS)
def test_an_untreated_culture_keeps_its_antigen_per_cell_within_5_percent_over_48_h(seed):
    """Cells seeded at the steady state of division (which halves their pools) and re-expression: a growing
    culture without effectors holds its mean antigen per cell."""
    raw = assays.untreated(assays.coculture(1500, 0.0, 48, seed=seed, occupancy=0.02))
    sim = Simulation(validate(raw))
    sim.run()
    series = sim.timeseries.arrays()
    mean = series["mean_antigen_a_tumour"]
    assert series["cells_tumour"][-1] > 3 * series["cells_tumour"][0]  # it grew: two days of division
    assert np.all(np.abs(mean[::60] / mean[0] - 1) < 0.05)


def kills(effectors, targets, seed, hours=2.0, edge=250):
    """Tumour cells lysed in the first ``hours`` of a sparse co-culture on a lattice of edge ``edge`` (trogocytosis
    off: the test is of encounters and killing alone)."""
    raw = assays.no_trogocytosis(assays.coculture(targets, effectors / targets, hours, seed=seed))
    raw["lattice"]["shape"] = [edge] * 3
    sim = Simulation(validate(raw))
    sim.run()
    return sim.timeseries.arrays()["deaths_lysis"].sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_killing_at_low_density_follows_mass_action(seed):
    """At 0.006-0.05% of voxels occupied, kills per hour are proportional to effectors and to targets: log-log
    slopes of 1.0 +- 0.15 over an eightfold range of each."""
    counts = (1000, 2000, 4000, 8000)
    by_effectors = [kills(e // 2, 8000, seed) for e in counts]
    by_targets = [kills(4000, t, seed) for t in counts]
    for observed in (by_effectors, by_targets):
        slope = np.polyfit(np.log(counts), np.log(observed), 1)[0]
        assert abs(slope - 1.0) <= 0.15, (observed, slope)


@pytest.mark.parametrize("seed", SEEDS)
def test_killing_at_high_density_saturates_at_the_handling_time_the_rules_imply(seed):
    """Among many targets (E:T 1:20, 30% of voxels) an effector kills at the rate its contact time, hit chance,
    repair, lethal dose and refractory time imply (assays.implied_kill_rate), within 25%, over the first 2 h."""
    raw = assays.coculture(4000, 0.05, 2, seed=seed, occupancy=0.3)
    arm = assays.run_arms(raw, [2], arms=("no_trogocytosis",))["no_trogocytosis"]
    rate = assays.kills_per_effector(arm, 2) / 2.0
    implied = assays.implied_kill_rate(validate(raw))
    assert 0.75 * implied <= rate <= 1.25 * implied, (rate, implied)


def test_gpusim_validate_prints_the_table_draws_the_figure_and_refuses_bad_input(tmp_path, capsys):
    from gpusim import cli

    figure, record = tmp_path / "v.png", tmp_path / "v.md"
    status = cli.main(["validate", "--quick", "--seeds", "1", "--rows", "kill_rate_max,car_t_antigen_positive",
                       "--figure", str(figure), "--record", str(record)])
    out = capsys.readouterr().out
    assert status == 0 and "2 of 2 rows pass" in out and "Singh 2020" in out
    assert figure.stat().st_size > 5000 and record.read_text().count("\n") == 4
    for argv, reason in ((["--rows", "no_such_row"], "no row 'no_such_row'"), (["--seeds", "1,x"], "--seeds"),
                         (["--figure", str(tmp_path / "missing" / "v.png")], "no folder")):
        assert cli.main(["validate", *argv]) == 2
        assert reason in capsys.readouterr().err


def test_in_a_suspension_culture_free_tumour_cells_drift(tmp_path):
    """tumour.speed > 0: tumour cells take random steps like a shaken suspension (the lattice invariants hold);
    at 0 they never move (effectors that squeeze past them held off here)."""
    def tumour_voxels(speed, steps):
        raw = assays.coculture(300, 0.5, 1, seed=2, tumour={"speed": speed}, effectors={"car_t": {"squeeze": 0.0}})
        sim = Simulation(validate(raw), debug=True)
        before = sim.state.snapshot()
        sim.run(steps)
        after = sim.state.snapshot()
        ids = np.intersect1d(before["agent_id"][before["kind"] == 0], after["agent_id"][after["kind"] == 0])
        where = lambda snap: dict(zip(snap["agent_id"].tolist(), snap["voxel"].tolist()))  # noqa: E731
        b, a = where(before), where(after)
        return sum(b[i] != a[i] for i in ids.tolist()), len(ids)

    moved, total = tumour_voxels("5 um/min", 20)
    assert moved > 0.5 * total
    still, _ = tumour_voxels("0 um/min", 20)
    assert still == 0
