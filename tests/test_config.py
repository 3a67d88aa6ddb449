"""Bad input is refused before anything runs: one line naming the key and the reason, exit 2, nothing written."""

import json

import pytest

from gpusim import config
from gpusim.units import parse_quantity

from helpers import run_gpusim


@pytest.mark.parametrize(
    "text, dimension, expected",
    [("2 d", "time", 2880.0), ("90 s", "time", 1.5), ("1.5 h", "time", 90.0), ("10 um", "length", 10.0),
     ("0.1 mm", "length", 100.0), ("5 um/min", "speed", 5.0), ("60 um/h", "speed", 1.0), ("0.06 /h", "rate", 0.001),
     ("1/d", "rate", 1 / 1440), ("2 per min", "rate", 2.0)],
)
def test_units_convert_to_internal_units(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected)


def test_presets_all_validate():
    for name in config.preset_names():
        cfg, _ = config.load(name)
        assert cfg.steps > 0


def test_set_reads_toml_values_or_plain_strings():
    cfg, raw = config.load("tiny", ["run.duration=2 h", "tumour.initial_cells=10", 'run.snapshot_every="30 min"',
                                    "lattice.shape=[8, 9, 10]", "dose.0.count=5"])
    assert cfg.steps == 120 and cfg.tumour.initial_cells == 10 and cfg.lattice.shape == (8, 9, 10)
    assert cfg.dose[0].count == 5 and raw["run"]["duration"] == "2 h"


BAD = [
    (["--set", "tumour.colour=red"], "tumour.colour: unknown key"),
    (["--set", "tumour.apoptosis_rate=-0.1 /h"], "tumour.apoptosis_rate: must not be negative"),
    (["--set", "tumour.cycle_time=24 kg"], "tumour.cycle_time: unit 'kg' is not a time"),
    (["--set", "tumour.cycle_time=24"], "tumour.cycle_time: missing unit"),
    (["--set", "effectors.car_t.speed=5 h"], "effectors.car_t.speed: unit 'h' is not a speed"),
    (["--set", "lattice.shape=[1024, 2048, 2049]"], "lattice.shape: 1024 x 2048 x 2049 is 4,297,064,448 voxels; a "
     "lattice holds at most 4,294,967,296"),
    (["--set", "tumour.initial_cells=-5"], "tumour.initial_cells: input should be greater than or equal to 0"),
    (["--set", "effectors.car_t.speed=50 um/min"], "effectors.car_t.speed:"),
    (["--set", "run.snapshot_every=7 min"], "run.snapshot_every:"),
    (["--set", "run.backend=tpu"], "run.backend:"),
    (["--set", "nonsense"], "expected section.key=value"),
    (["--set", "effectors.car_t.receptor_b=5000"], "effectors.car_t.receptor_b: 5000 receptors against antigen B"),
    (["--set", "effectors.car_t.proliferation_threshold=100"],
     "effectors.car_t.proliferation_threshold: 100 is below the lysis threshold"),
    (["--set", "effectors.car_t.hit_chance=1.5"], "effectors.car_t.hit_chance: input should be less than or equal to 1"),
    (["--set", "effectors.car_t.trogocytosis=0.3"], "effectors.car_t.trogocytosis: missing unit"),
    (["--set", "effectors.car_m.bite_fraction=0.2"], "effectors.car_m.bite_fraction:"),
    (["--set", "effectors.car_t.car_kd=50 kg"], "effectors.car_t.car_kd: unit 'kg' is not a concentration"),
    (["--set", "effectors.car_t.icar=100", "--set", "effectors.car_nk.icar_ligand=0"],
     "effectors.car_t.icar: 100 iCARs, but no cell carries their ligand"),
]


@pytest.mark.parametrize("extra, message", BAD)
def test_bad_values_are_refused_with_the_key_and_exit_2(tmp_path, extra, message):
    out = tmp_path / "out.ome.zarr"
    result = run_gpusim("run", "tiny", "-o", out, *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_missing_file_and_malformed_toml(tmp_path):
    out = tmp_path / "out.ome.zarr"
    missing = run_gpusim("run", tmp_path / "nope.toml", "-o", out)
    assert missing.returncode == 2 and "no such config file" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nduration = \n")
    malformed = run_gpusim("run", bad, "-o", out)
    assert malformed.returncode == 2 and "malformed TOML" in malformed.stderr
    assert len(malformed.stderr.strip().splitlines()) == 1
    unknown = run_gpusim("run", "no_such_preset", "-o", out)
    assert unknown.returncode == 2 and "no such preset" in unknown.stderr
    assert not out.exists()


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[run]\nduration = "1 kg"\nfrobnicate = 3\n[tumour]\ncycle_time = -3\n')
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    keys = {p.split(":")[0] for p in err.value.problems}
    assert keys == {"run.duration", "run.frobnicate", "tumour.cycle_time"}


def test_existing_store_is_not_touched_without_overwrite(tmp_path):
    out = tmp_path / "run.ome.zarr"
    assert run_gpusim("run", "tiny", "-o", out, "--set", "run.duration=1 h", "--quiet").returncode == 0
    before = (out / "zarr.json").read_text()
    refused = run_gpusim("run", "tiny", "-o", out, "--set", "run.duration=1 h", "--quiet", "--seed", "9")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert (out / "zarr.json").read_text() == before
    replaced = run_gpusim("run", "tiny", "-o", out, "--set", "run.duration=1 h", "--quiet", "--seed", "9", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((out / "zarr.json").read_text())["attributes"]["gpusim"]["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ome.zarr"]  # nothing left beside it


def test_overwrite_never_removes_a_folder_that_is_not_a_store(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    result = run_gpusim("run", "tiny", "-o", out, "--overwrite")
    assert result.returncode == 2
    assert (out / "thesis.tex").exists()


def test_cuda_backend_without_a_gpu_is_a_clear_error(tmp_path):
    result = run_gpusim("run", "tiny", "-o", tmp_path / "o.ome.zarr", "--backend", "cuda",
                        env={"NUMBA_ENABLE_CUDASIM": "0"})
    if result.returncode == 0:
        pytest.skip("this machine has a usable CUDA GPU")
    assert result.returncode == 2
    assert "backend cuda is not usable here" in result.stderr
    assert not (tmp_path / "o.ome.zarr").exists()


def test_usage_errors_exit_2():
    assert run_gpusim("run").returncode == 2
    assert run_gpusim("frobnicate").returncode == 2


def test_a_failure_while_running_exits_1(tmp_path, monkeypatch, capsys):
    from gpusim import cli
    from gpusim.engine import Simulation

    def broken_step(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Simulation, "step", broken_step)
    status = cli.main(["run", "tiny", "-o", str(tmp_path / "o.ome.zarr"), "--quiet"])
    assert status == 1
    assert "run failed: RuntimeError: disk on fire" in capsys.readouterr().err


def test_a_preset_can_extend_another_and_override_only_what_differs(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "hamieh2019"\n[effectors.car_t]\ncar_kd = "5 uM"\n')
    cfg, _ = config.load(path)
    base, _ = config.load("hamieh2019")
    assert cfg.effectors.car_t.car_kd == 5000.0
    assert cfg.effectors.car_t.costimulation == base.effectors.car_t.costimulation
    assert cfg.dose == base.dose and cfg.tumour == base.tumour
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "no_such_preset"\n')
    with pytest.raises(config.ConfigError, match="extends: no preset named 'no_such_preset'"):
        config.load(loop)


def test_a_run_too_large_for_this_machine_is_refused_before_anything_is_written(tmp_path):
    """The memory preflight counts the lattice, the agent table and what placing cells holds for a moment."""
    out = tmp_path / "big.ome.zarr"
    result = run_gpusim("run", "tiny", "-o", out, "--backend", "cpu", "--set", "lattice.shape=[1600, 1600, 1600]",
                        "--set", "tumour.initial_cells=4000000000")  # a table of 4e9 cells: hundreds of GiB
    assert result.returncode == 2
    assert "lattice.shape" in result.stderr and "GiB" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
