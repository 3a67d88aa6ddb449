"""Nothing is lost: a run killed at any moment resumes from its store to the result it would have reached."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import zarr

from gpusim.store import read_timeseries

from conftest import run_gpusim

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
    clock_a, state_a = final_state(straight)
    clock_b, state_b = final_state(killed)
    assert clock_a == clock_b == 360
    for name in state_a:
        assert np.array_equal(state_a[name], state_b[name]), name
    series_a, series_b = read_timeseries(straight), read_timeseries(killed)
    for name in series_a:
        assert np.array_equal(series_a[name], series_b[name], equal_nan=series_a[name].dtype.kind == "f"), name
    for image in ("labels/cells/s0", "fields/s0"):
        a = zarr.open_group(str(straight), mode="r")[image][...]
        assert np.array_equal(a, zarr.open_group(str(killed), mode="r")[image][...]), image
    assert "field_values" in state_a  # the checkpoint holds the fields
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
