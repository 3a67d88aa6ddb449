"""Control arms declared in a config (``arms = [...]``) run after the run with its seed, each into a store of its
own inside the run's, resume with it, and are drawn against it."""

import json

import numpy as np
import zarr

from gpusim import cli
from gpusim.store import read_timeseries

SHORT = ["--set", "run.duration=40 min", "--set", "run.snapshot_every=20 min", "--set", "run.checkpoint_every=20 min",
         "--set", "dose.0.time=10 min", "--quiet", "--backend", "cpu"]
ARMS = ["--set", 'arms=["untreated", "no_trogocytosis"]']


def meta(path):
    return json.loads((path / "zarr.json").read_text())["attributes"]["gpusim"]


def test_the_arms_run_with_the_runs_seed_into_stores_of_their_own(tmp_path, capsys):
    out = tmp_path / "run.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(out), *SHORT, *ARMS]) == 0
    untreated, off = out / "arms" / "untreated", out / "arms" / "no_trogocytosis"
    assert meta(untreated)["status"] == meta(off)["status"] == "complete"
    assert meta(untreated)["seed"] == meta(off)["seed"] == meta(out)["seed"]
    assert meta(untreated)["config"]["dose"] == [] and "arms" not in meta(untreated)["config"]
    run, alone, without = read_timeseries(out), read_timeseries(untreated), read_timeseries(off)
    assert run["cells_car_t"].max() > 0 and alone["cells_car_t"].max() == 0
    assert without["taken_antigen_a"].sum() == 0 < run["taken_antigen_a"].sum()
    # the untreated arm is the run without its doses, bit for bit
    plain = tmp_path / "plain.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(plain), *SHORT, "--set", "dose=[]"]) == 0
    for name, values in read_timeseries(plain).items():
        assert np.array_equal(values, alone[name], equal_nan=values.dtype.kind == "f"), name
    capsys.readouterr()
    assert cli.main(["info", str(out)]) == 0
    assert "arms         untreated (complete), no_trogocytosis (complete)" in capsys.readouterr().out
    assert cli.main(["report", str(out), "-o", str(tmp_path / "r.png")]) == 0
    assert zarr.open_group(str(out), mode="r")["arms"].attrs["description"]


def test_a_run_stopped_before_its_end_runs_its_arms_when_resumed(tmp_path):
    out = tmp_path / "run.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(out), *SHORT, *ARMS, "--stop-at", "20 min"]) == 0
    assert not (out / "arms").exists()
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    assert meta(out / "arms" / "no_trogocytosis")["status"] == "complete"
    assert cli.main(["resume", str(out)]) == 2  # all complete: nothing to do


def test_an_arm_listed_twice_is_refused(tmp_path, capsys):
    status = cli.main(["run", "tiny", "-o", str(tmp_path / "x.ome.zarr"), "--set", 'arms=["untreated", "untreated"]'])
    assert status == 2 and "arms: an arm is listed twice" in capsys.readouterr().err
