"""Bitwise determinism: seeds, thread counts, and the CPU versus the GPU launch path."""

import importlib
import inspect
import json
import pkgutil

import numpy as np
import pytest

import gpusim.kernels
from gpusim.engine import Simulation
from gpusim.kernels.launch import _RULE_MARK

from conftest import run_script, small_config


def all_rules():
    found = set()
    for info in pkgutil.iter_modules(gpusim.kernels.__path__):
        module = importlib.import_module(f"gpusim.kernels.{info.name}")
        for name, obj in inspect.getmembers(module, inspect.isfunction):
            if getattr(obj, _RULE_MARK, False) and obj.__module__ == module.__name__:
                found.add(f"{module.__name__}.{name}")
    return found


def final_state(cfg, steps=None):
    sim = Simulation(cfg, debug=True)
    sim.run(steps)
    return sim.state.snapshot(), sim.timeseries.arrays(), sim.kind_volume()


def test_same_seed_gives_identical_state_and_series():
    cfg, _ = small_config()
    (a, sa, va), (b, sb, vb) = final_state(cfg), final_state(cfg)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    for key in sa:
        assert np.array_equal(sa[key], sb[key], equal_nan=sa[key].dtype.kind == "f"), key
    assert np.array_equal(va, vb)


def test_other_seed_gives_another_run():
    cfg, _ = small_config()
    other, _ = small_config(run={"seed": 4})
    a, _, _ = final_state(cfg)
    b, _, _ = final_state(other)
    assert not np.array_equal(a["voxel"], b["voxel"]) or a["voxel"].size != b["voxel"].size


def _trace(backend, env, steps=12, edge=12, density=1 / 6, signatures=None):
    result = run_script("trace_run.py", backend, steps, edge, density, *([signatures] if signatures else []), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def simulator_trace(tmp_path_factory):
    """The CUDA launch path in numba's CUDA simulator on a sparse 12^3 scene (every thread runs in Python), with
    the numba types of every launch pickled for the real compiler."""
    signatures = tmp_path_factory.mktemp("kernels") / "signatures.pickle"
    return _trace("cuda", {"NUMBA_ENABLE_CUDASIM": "1"}, steps=7, density=1 / 14, signatures=signatures), signatures


def test_one_and_two_threads_agree_bit_for_bit():
    one = _trace("cpu", {"NUMBA_NUM_THREADS": "1"}, steps=40)
    two = _trace("cpu", {"NUMBA_NUM_THREADS": "2"}, steps=40)
    assert one["trace"] == two["trace"]
    assert one["final"] == two["final"]


def test_cpu_and_cuda_simulator_agree_for_every_rule(simulator_trace):
    """Every rule's launch, compared after each call on a 12^3 lattice: CPU (numba threads) vs CUDA kernels."""
    cpu = _trace("cpu", {"NUMBA_ENABLE_CUDASIM": "0"}, steps=7, density=1 / 14)
    gpu, _ = simulator_trace
    assert gpu["backend"] == "cuda (CUDA simulator)"
    launched = {name for name, _ in cpu["trace"]}
    assert launched == all_rules(), f"rules not exercised: {all_rules() - launched}"
    assert len(cpu["trace"]) == len(gpu["trace"])
    for (rule_c, digest_c), (rule_g, digest_g) in zip(cpu["trace"], gpu["trace"]):
        assert rule_c == rule_g
        assert digest_c == digest_g, f"{rule_c} differs between the CPU and the CUDA launch"
    assert cpu["final"] == gpu["final"]
    assert cpu["series"] == gpu["series"]


def test_every_cuda_kernel_compiles_for_an_h200(simulator_trace):
    """The simulator runs kernels as Python and would accept code numba-cuda's compiler refuses: every kernel the
    simulated run launched, with the same argument types, is compiled to PTX for compute capability 9.0 by NVVM
    (no GPU needed)."""
    _, signatures = simulator_trace
    result = run_script("kernel_compile_run.py", signatures, "9.0", env={"NUMBA_ENABLE_CUDASIM": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"][0]["error"]
    assert {entry["kernel"].split(" ")[0] for entry in report["compiled"]} == all_rules()
    assert all(entry["ptx_bytes"] > 1000 and ".entry" in entry["ptx_head"] for entry in report["compiled"])
