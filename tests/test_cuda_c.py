"""Rules hand-written in CUDA C (kernels/*.cu) against the rules themselves, on a machine without a GPU.

Each ``.cu`` file is compiled for the GPU by NVRTC (machine code for sm_90 and sm_80, no spills), and for the
host with a C++ compiler and tests/cuda_host.h; the host build then runs on the state of every launch of the
rule in small runs of presets whose synapses differ (one CAR, dual targeting, an iCAR, fratricide,
CAR-macrophages) and must leave every array and the tally exactly as the rule does.
"""

import copy
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpusim.config import read_source, validate
from gpusim.engine import Simulation
from gpusim.kernels import cuda_c
from gpusim.kernels.launch import cuda_c_source, rule_parameters, tally_size
from gpusim.kernels.tally import ENGAGEMENTS

RULES = cuda_c.rules_with_cuda_c()
TESTS = Path(__file__).parent
# presets whose synapses take every branch of the engage rule, shrunk to a 16^3 lattice with the effectors there
# from the start
PRESETS = ("sample", "dual_targeting", "li2022_car_nk", "li2022_car_nk_icar", "car_macrophage")


def test_every_cu_file_is_the_form_of_a_rule():
    """No .cu file goes unchecked: each is named by a rule, so the tests below compile and run it."""
    files = {path.name for path in cuda_c.FOLDER.glob("*.cu")}
    named = {cuda_c_source(fn).name for fn in RULES.values()}
    assert files == named
    assert "choose_partner" in RULES  # the neighbour scan of the engage phase (issue 6)


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("capability", [(9, 0), (8, 0)])
def test_compiles_for_the_gpu_without_spilling(name, capability):
    cubin, log = cuda_c.compile_program(RULES[name], capability)
    used = cuda_c.ptxas_resources(log, name)
    assert len(cubin) > 1000
    assert 0 < used["registers"] <= 255
    assert used["spill_bytes"] == 0 and used["local_bytes"] == 0, log
    assert "warning" not in log.lower(), log


def test_a_source_that_does_not_compile_is_refused_with_the_compiler_log(monkeypatch):
    broken = cuda_c.program_source(RULES["choose_partner"]).replace("best_signal = signal;", "best_signal = sgnal;")
    monkeypatch.setattr(cuda_c, "program_source", lambda fn: broken)
    with pytest.raises(RuntimeError, match=r"synapse\.cu does not compile for sm_90:(.|\n)*sgnal"):
        cuda_c.compile_program(RULES["choose_partner"], (9, 0))


def test_gpusim_cuda_c_names_rules_with_a_cuda_c_form():
    assert cuda_c.requested("") == frozenset() and cuda_c.requested("0") == frozenset()
    assert cuda_c.requested("1") == cuda_c.requested("all") == frozenset(RULES)
    assert cuda_c.requested(" choose_partner ") == {"choose_partner"}
    with pytest.raises(ValueError, match="die, which have no CUDA C form; those that have one: choose_partner"):
        cuda_c.requested("choose_partner,die")


class HostKernels:
    """The .cu files built for the host (g++ and tests/cuda_host.h), one entry point per rule."""

    def __init__(self, folder):
        compiler = shutil.which("g++") or shutil.which("c++")
        if compiler is None:
            pytest.fail("the CUDA C tests need a C++ compiler (.ci/run installs g++)")
        wrapper = ['#include "cuda_host.h"', cuda_c.constants_header()]
        self.declarations = {}
        for name, fn in sorted(RULES.items()):
            declarations = cuda_c.kernel_declarations(cuda_c_source(fn), name)
            names = cuda_c.kernel_parameters(cuda_c_source(fn), name)
            self.declarations[name] = declarations
            wrapper += [
                f'#include "{cuda_c_source(fn)}"',
                f'extern "C" void host_{name}({", ".join(declarations)}, unsigned blocks, unsigned threads) {{',
                f"    gpusim_host_launch({name}, blocks, threads, {', '.join(names)});",
                "}",
            ]
        source = folder / "host_kernels.cpp"
        source.write_text("\n".join(wrapper) + "\n")
        library = folder / "host_kernels.so"
        built = subprocess.run(
            [compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Werror", "-Wno-unused-function",
             f"-I{TESTS}", "-o", str(library), str(source)],
            capture_output=True, text=True,
        )
        assert built.returncode == 0, built.stderr
        self.library = ctypes.CDLL(str(library))

    def launch(self, fn, n, args, threads_per_block=64):
        """Run rule ``fn``'s host-built kernel over ``n`` indices on host arrays ``args`` (the rule's); returns
        the tally of a tallying rule."""
        totals = (np.zeros(tally_size(fn), dtype=np.int64),) if tally_size(fn) else ()
        blocks = (n + threads_per_block - 1) // threads_per_block
        self.raw_kernel(fn)((blocks,), (threads_per_block,), (n, *cuda_c.kernel_arguments(fn, args), *totals))
        return totals[0] if totals else None

    def raw_kernel(self, fn):
        """Rule ``fn``'s host-built kernel, called as a cupy RawKernel is: ``kernel(grid, block, arguments)``."""
        entry = getattr(self.library, f"host_{fn.__name__}")

        def call(grid, block, arguments):
            values = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else ctypes.c_longlong(int(a))
                      for a in arguments]
            entry(*values, ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]))

        return call


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    return HostKernels(tmp_path_factory.mktemp("cuda_c"))


def small_preset(name):
    """Preset ``name`` on a 16^3 lattice for 40 minutes, its effectors there from the start."""
    raw = read_source(name)
    raw["lattice"]["shape"] = [16, 16, 16]
    raw["tumour"]["initial_cells"] = 500
    raw["run"].update({"duration": "40 min", "snapshot_every": "40 min"})
    raw.get("fields", {})["settle"] = 0
    for dose in raw.get("dose", []):
        dose.update({"time": "0 min", "count": 120})
    return validate(raw)


@pytest.mark.parametrize("preset", PRESETS)
def test_host_build_equals_the_rule_at_every_launch_of_a_run(preset, host_kernels):
    """A run's every launch of a rule with a CUDA C form is also made by the host build, on copies of the
    arguments; both must leave every array and the tally identical."""
    sim = Simulation(small_preset(preset), backend=None)
    compared = {name: 0 for name in RULES}
    engaged = 0
    launch = sim.launch

    def compare_then_launch(fn, n, *args):
        if fn.__name__ not in RULES or fn is not RULES[fn.__name__]:
            return launch(fn, n, *args)
        copies = [copy.deepcopy(a) for a in args]
        host_tally = host_kernels.launch(fn, int(n), copies)
        tally = launch(fn, n, *args)
        for name, ours, theirs in zip(rule_parameters(fn), copies, args):
            if isinstance(theirs, np.ndarray):
                assert np.array_equal(ours, theirs), f"{fn.__name__}: {name} differs at step {sim.clock}"
        if tally_size(fn):
            assert np.array_equal(host_tally, tally), f"{fn.__name__}: tally differs at step {sim.clock}"
        compared[fn.__name__] += 1
        nonlocal engaged
        engaged += int(tally[ENGAGEMENTS])
        return tally

    sim.launch = compare_then_launch
    sim.run()
    assert compared["choose_partner"] == sim.end_step
    assert engaged > 20, f"only {engaged} synapses formed: the scenario does not exercise the rule"


def test_host_build_takes_the_same_choice_in_every_kind_of_neighbourhood(host_kernels):
    """Random neighbourhoods: effectors of every kind among tumour cells, debris, effectors with and without
    acquired antigen, at the walls; pools from none to large (the binding's 64-bit arithmetic)."""
    from gpusim.kernels.cells import NECROTIC, DEAD, N_KINDS
    from gpusim.kernels.synapse import choose_partner

    sim = Simulation(small_preset("li2022_car_nk_icar"), backend=None)
    s = sim.state
    rng = np.random.default_rng(11)
    total_engaged = 0
    for trial in range(6):
        n = s.n
        kind = rng.integers(0, N_KINDS, n).astype(np.uint8)
        state = (rng.random(n) < 0.1).astype(np.uint8) * NECROTIC | (rng.random(n) < 0.05).astype(np.uint8) * DEAD
        partner = np.where(rng.random(n) < 0.2, rng.integers(0, 26, n), -1).astype(np.int8)
        refractory = np.where(rng.random(n) < 0.2, rng.integers(1, 5, n), 0).astype(np.int16)
        synapse_steps = rng.integers(0, 9, n).astype(np.int16)
        pools = s["pools"][:, :n].copy()
        scale = 10 ** rng.integers(0, 9, pools.shape)
        pools[...] = (rng.random(pools.shape) * scale * (rng.random(pools.shape) < 0.7)).astype(np.int32)
        args = [kind, state, s["voxel"][:n].copy(), partner, refractory, synapse_steps, pools, s.occ.copy(),
                sim.params]
        copies = copy.deepcopy(args)
        host_tally = host_kernels.launch(choose_partner, n, copies, threads_per_block=32 + trial)
        tally = sim.launch(choose_partner, n, *args)
        for name, ours, theirs in zip(rule_parameters(choose_partner), copies, args):
            assert np.array_equal(ours, theirs), f"trial {trial}: {name} differs"
        assert np.array_equal(host_tally, tally)
        total_engaged += int(tally[ENGAGEMENTS])
    assert total_engaged > 100


def test_kernel_parameters_follow_the_rule():
    """The kernel takes the rule's arguments in the rule's order (the convention of kernels/cuda_c.py), as the
    engine passes them in a run."""
    sim = Simulation(small_preset("sample"), backend=None)
    seen = {}
    launch = sim.launch

    def record(fn, n, *args):
        if fn.__name__ in RULES:
            seen[fn.__name__] = {p: getattr(a, "ndim", 0) for p, a in zip(rule_parameters(fn), args)}
        return launch(fn, n, *args)

    sim.launch = record
    sim.step()
    assert set(seen) == set(RULES)
    for name, dimensions in seen.items():
        fn = RULES[name]
        assert cuda_c.kernel_parameters(cuda_c_source(fn), name) == cuda_c.expected_parameters(fn, dimensions)


def test_the_gpu_launcher_runs_the_cuda_c_form_when_asked(host_kernels, monkeypatch):
    """The CUDA launcher's path to a CUDA C kernel (arguments laid out, tally returned), with the host build
    standing in for the GPU's: the same result as the rule."""
    from types import SimpleNamespace

    from gpusim.kernels.launch import CUDALauncher
    from gpusim.kernels.synapse import choose_partner

    asked = []

    def kernel(fn):
        asked.append(fn.__name__)
        return host_kernels.raw_kernel(fn)

    monkeypatch.setattr(cuda_c, "kernel", kernel)
    gpu = CUDALauncher(SimpleNamespace(zeros=np.zeros), threads_per_block=64, cuda_c={"choose_partner"})
    sim = Simulation(small_preset("li2022_car_nk"), backend=None)  # effectors next to the tumour, all free
    s = sim.state
    args = [s["kind"], s["state"], s["voxel"], s["partner"], s["refractory_steps"], s["synapse_steps"], s["pools"],
            s.occ, sim.params]
    copies = copy.deepcopy(args)
    tally = sim.launch(choose_partner, s.n, *args)
    assert tally[ENGAGEMENTS] > 0
    assert np.array_equal(gpu(choose_partner, s.n, *copies), tally)
    assert all(np.array_equal(a, b) for a, b in zip(copies, args))
    assert asked == ["choose_partner"]


def test_gpusim_cuda_c_is_checked_and_refused_where_it_cannot_run(monkeypatch):
    from gpusim.backend import BackendError, select

    monkeypatch.setenv("GPUSIM_CUDA_C", "choose_partnr")
    with pytest.raises(BackendError, match="choose_partnr, which have no CUDA C form"):
        select("cpu")
    monkeypatch.setenv("GPUSIM_CUDA_C", "1")
    assert select("cpu").label == "cpu"  # a GPU setting: the CPU runs the rules
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    with pytest.raises(BackendError, match="CUDA C kernels run on a GPU only"):
        select("cuda")
