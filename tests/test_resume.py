"""Nothing is lost: a run killed at any moment resumes from its store to the result it would have reached."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from gpusim.store import read_timeseries

from helpers import run_gpusim

ARGS = ["--set", "run.duration=6 h", "--set", "run.checkpoint_every=30 min", "--seed", "4", "--quiet",
        "--set", "fields.oxygen.supply=38 mmHg", "--set", "fields.chemokine.decay=0.02 /min"]  # fields resume too


def checkpoint_clock(path):
    try:
        meta = json.loads((path / "zarr.json").read_text())["attributes"]["gpusim"]
    except (OSError, ValueError, KeyError):
        return -1
    return (meta.get("checkpoint") or {}).get("clock", -1)


def final_state(path):
    root = zarr.open_group(str(path), mode="r")
    pointer = root.attrs["gpusim"]["checkpoint"]
    group = root[pointer["path"]]
    return pointer["clock"], {name: group[name][...] for name in group.array_keys()}


def assert_same_run(straight, other, clock):
    """The run in store ``other`` ended as the one in ``straight`` did, at step ``clock``: every column of the
    final checkpoint (the fields' values among them), every time series, the last snapshot's cells and fields,
    bit for bit.  Returns the final checkpoint's columns."""
    clock_a, state_a = final_state(straight)
    clock_b, state_b = final_state(other)
    assert clock_a == clock_b == clock
    assert "field_values" in state_a  # the checkpoint holds the fields
    for name in state_a:
        assert np.array_equal(state_a[name], state_b[name]), name
    series_a, series_b = read_timeseries(straight), read_timeseries(other)
    for name in series_a:
        assert np.array_equal(series_a[name], series_b[name], equal_nan=series_a[name].dtype.kind == "f"), name
    for image in ("labels/cells/s0", "fields/s0"):
        a = zarr.open_group(str(straight), mode="r")[image][...]
        assert np.array_equal(a, zarr.open_group(str(other), mode="r")[image][...]), image
    return state_a


def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    straight, killed = tmp_path / "straight.ome.zarr", tmp_path / "killed.ome.zarr"
    assert run_gpusim("run", "tiny", "-o", straight, *ARGS).returncode == 0

    process = subprocess.Popen([sys.executable, "-m", "gpusim", "run", "tiny", "-o", str(killed), *ARGS],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while checkpoint_clock(killed) < 90 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stopped_at = checkpoint_clock(killed)
    assert 90 <= stopped_at < 360, "the run was not killed midway"

    info = run_gpusim("info", killed)  # a killed store opens
    assert info.returncode == 0 and "running" in info.stdout

    resumed = run_gpusim("resume", killed, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(straight, killed, 360)
    assert run_gpusim("resume", killed).returncode == 2  # already complete


def test_ctrl_c_stops_at_a_step_with_a_checkpoint_and_resumes(tmp_path):
    straight, stopped = tmp_path / "straight.ome.zarr", tmp_path / "stopped.ome.zarr"
    assert run_gpusim("run", "tiny", "-o", straight, *ARGS).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "gpusim", "run", "tiny", "-o", str(stopped), *ARGS],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while checkpoint_clock(stopped) < 60 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "checkpoint" in err
    meta = zarr.open_group(str(stopped), mode="r").attrs["gpusim"]
    assert meta["status"] == "stopped" and meta["checkpoint"]["clock"] == meta["steps_done"]
    assert run_gpusim("resume", stopped, "--quiet").returncode == 0
    for name, values in read_timeseries(straight).items():
        assert np.array_equal(values, read_timeseries(stopped)[name], equal_nan=values.dtype.kind == "f"), name


# a small run that infuses its CAR-T cells in the middle stretch below, with both fields on
SMALL = ["--set", "run.duration=15 min", "--set", "run.snapshot_every=5 min", "--set", "run.checkpoint_every=5 min",
         "--set", "lattice.shape=[8, 8, 8]", "--set", "tumour.initial_cells=60", "--set", "dose.0.time=6 min",
         "--set", "dose.0.count=12", *ARGS[4:]]


def move_between_backends(tmp_path, gpu_env):
    """Run the small scenario on the CPU, and again stopped at 5 min (--stop-at), resumed on the CUDA backend
    (with ``gpu_env`` added to its environment) to 10 min, then on the CPU to the end; require the second run
    to end bit for bit as the first, and its store to say which stretch ran where.  Returns the label of the
    CUDA backend it ran on."""
    straight, moved = tmp_path / "straight.ome.zarr", tmp_path / "moved.ome.zarr"
    assert run_gpusim("run", "tiny", "-o", straight, *SMALL, "--backend", "cpu").returncode == 0

    first = run_gpusim("run", "tiny", "-o", moved, *SMALL, "--stop-at", "5 min", "--backend", "cpu")
    assert first.returncode == 0, first.stderr
    assert zarr.open_group(str(moved), mode="r").attrs["gpusim"]["status"] == "stopped"
    assert checkpoint_clock(moved) == 5
    on_gpu = run_gpusim("resume", moved, "--quiet", "--stop-at", "10 min", "--backend", "cuda", env=gpu_env)
    assert on_gpu.returncode == 0, on_gpu.stderr[-3000:]
    assert checkpoint_clock(moved) == 10
    last = run_gpusim("resume", moved, "--quiet", "--backend", "cpu")
    assert last.returncode == 0, last.stderr

    final = assert_same_run(straight, moved, 15)
    assert (final["kind"] != 0).any()  # the CAR-T cells infused on the GPU path are there

    info = json.loads(run_gpusim("info", moved, "--json").stdout)
    assert info["status"] == "complete"
    stretches = [(s["from_step"], s["backend"]) for s in info["segments"]]
    assert [step for step, _ in stretches] == [0, 5, 10] and stretches[0][1] == stretches[2][1] == "cpu"
    gpu_label = stretches[1][1]
    assert gpu_label.startswith("cuda")
    assert f"resumed      at 5 min on {gpu_label}, at 10 min on cpu" in run_gpusim("info", moved).stdout
    return gpu_label


def test_a_run_moved_from_the_cpu_to_the_gpu_path_and_back_ends_as_if_it_never_moved(tmp_path):
    """--stop-at stops a run with a checkpoint at a chosen time; resumed on the CUDA launch path (numba's
    simulator standing in for the GPU; tests/test_gpu.py does it on a GPU) for the stretch in which the CAR-T
    cells are infused, then on the CPU, the run ends bit for bit as the one that stayed on the CPU."""
    label = move_between_backends(tmp_path, {"NUMBA_ENABLE_CUDASIM": "1", "GPUSIM_CUDA_GRID": "all"})  # 2 blocks
    assert label == "cuda (CUDA simulator) (grid-stride: every rule)"


def test_a_stop_time_the_run_cannot_stop_at_is_refused_before_anything_is_written(tmp_path):
    store = tmp_path / "x.ome.zarr"
    for when, reason in (("5.5 min", "not a whole number of steps of run.dt = 1 min"),
                         ("20 min", "no later than its end (15 min)"), ("0 min", "must come after"),
                         ("soon", "cannot read 'soon' as a time")):
        result = run_gpusim("run", "tiny", "-o", store, *SMALL, "--stop-at", when)
        assert result.returncode == 2 and "gpusim: error: --stop-at: " in result.stderr and reason in result.stderr
        assert not store.exists()
    assert run_gpusim("run", "tiny", "-o", store, *SMALL, "--stop-at", "10 min").returncode == 0
    before = (store / "zarr.json").read_text()
    again = run_gpusim("resume", store, "--stop-at", "10 min")
    assert again.returncode == 2 and "must come after the run's present time (10 min)" in again.stderr
    assert (store / "zarr.json").read_text() == before


def test_a_resume_too_large_for_the_machine_is_refused_before_allocating(tmp_path, monkeypatch, capsys):
    """The memory preflight of a resume counts the cells its checkpoint holds (not the config's initial cells)
    and the doses still to come."""
    from gpusim import backend as backends
    from gpusim import cli
    from gpusim.engine import Simulation, cells_to_come, memory_needed
    from gpusim.store import RunStore

    store = tmp_path / "x.ome.zarr"
    assert run_gpusim("run", "tiny", "-o", store, *SMALL, "--stop-at", "5 min").returncode == 0
    reopened = RunStore.reopen(store)
    cfg = reopened.cfg
    reopened.close()
    assert cells_to_come(cfg, 5, 100) == 112 and cells_to_come(cfg, 7, 100) == 100  # the dose at 6 min
    grown = 10**6  # as if the tumour had grown to a million cells by the checkpoint
    checkpoint_header = RunStore.checkpoint_header

    def grown_checkpoint_header(self):
        clock, _cells, next_id = checkpoint_header(self)
        return clock, grown, next_id

    monkeypatch.setattr(RunStore, "checkpoint_header", grown_checkpoint_header)
    monkeypatch.setattr(RunStore, "load_checkpoint", lambda self: pytest.fail("read the columns before refusing"))
    monkeypatch.setattr(backends.Backend, "memory_available",
                        lambda self: memory_needed(cfg, cells_to_come(cfg, 5, grown)) - 1)
    monkeypatch.setattr(Simulation, "restore", lambda *a, **k: pytest.fail("restored before refusing"))
    assert cli.main(["resume", str(store)]) == 2
    assert "with 1,000,012 cells needs" in capsys.readouterr().err
    assert memory_needed(cfg) < memory_needed(cfg, cells_to_come(cfg, 5, grown))  # the config alone would pass


def test_a_resume_by_other_code_is_told_and_noted(tmp_path, monkeypatch, capsys):
    """Bit-for-bit continuation holds for the code that ran the run; a resume by another source revision or
    gpusim version says so (and goes on), and the store notes where the code changed."""
    import gpusim
    from gpusim import cli, store as stores

    path = str(tmp_path / "x.ome.zarr")
    monkeypatch.setattr(stores, "source_revision", lambda: "aaaa")
    assert cli.main(["run", "tiny", "-o", path, *SMALL, "--stop-at", "5 min"]) == 0
    assert cli.main(["resume", path, "--quiet", "--stop-at", "10 min"]) == 0
    assert "warning" not in capsys.readouterr().err  # the same code: nothing to say
    monkeypatch.setattr(stores, "source_revision", lambda: "bbbb")
    assert cli.main(["resume", path, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "gpusim: warning: source revision aaaa last ran this store; this is bbbb" in err

    assert cli.main(["info", path]) == 0
    assert "resumed      at 5 min on cpu, at 10 min on cpu (source revision bbbb)" in capsys.readouterr().out
    version = gpusim.__version__
    monkeypatch.setattr(gpusim, "__version__", "99.0")
    reopened = stores.RunStore.reopen(path)
    assert reopened.code_changed() == f"gpusim {version} last ran this store; this is gpusim 99.0"
    reopened.close()
    monkeypatch.setattr(gpusim, "__version__", version)
    monkeypatch.setattr(stores, "source_revision", lambda: "unknown")  # outside a git checkout: versions only
    reopened = stores.RunStore.reopen(path)
    assert reopened.code_changed() is None
    reopened.close()
