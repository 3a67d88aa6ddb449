"""Rules hand-written in CUDA C (kernels/*.cu) against the rules themselves, on a machine without a GPU.

Each ``.cu`` file is compiled for the GPU by NVRTC (machine code for sm_90, sm_80 and sm_75: no warnings, no
spills), and for the host with a C++ compiler and tests/cuda_host.h; the host build then runs on the state of
every launch of the rule in small runs of presets whose synapses differ (one CAR, dual targeting, fratricide,
an iCAR, CAR-macrophages) and on cells drawn at random, in blocks of one thread and in warps of 32 host
threads, and must leave every array and the tally exactly as the rule does.
"""

import copy
import ctypes
import shutil
import subprocess
from collections import ChainMap
from pathlib import Path

import numpy as np
import pytest

from gpusim.config import read_source, validate
from gpusim.engine import Simulation
from gpusim.kernels import cuda_c
from gpusim.kernels.cpu_launcher import Count
from gpusim.kernels.decorators import cuda_c_source, rule_parameters, tally_size
from gpusim.kernels.molecules import ANTIGEN_A, ANTIGEN_B
from gpusim.kernels.params import EXHAUSTION_LIMIT, POOL_ROW
from gpusim.kernels.rng import MOVE_PRIORITY
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
    assert {"choose_partner", "census"} <= set(RULES)  # the neighbour scan of the engage phase, the census


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("capability", [(9, 0), (8, 0), (7, 5)])
def test_compiles_for_the_gpu_without_spilling(name, capability):
    cubin, log = cuda_c.compile_program(RULES[name], capability)
    used = cuda_c.ptxas_resources(log, name)
    assert len(cubin) > 1000
    assert 0 < used["registers"] <= 255
    assert used["spill_bytes"] == 0 and used["local_bytes"] == 0, log
    # no local array on the stack, but resolve_claim's 26 occupants: its claims are read in two rounds of 13
    # (a loop the compiler keeps, so the array is indexed at run time) to stay at 45 registers, not 82
    assert used["stack_bytes"] == (104 if name == "resolve_claim" else 0), log
    assert "warning" not in log.lower(), log


def test_a_source_that_does_not_compile_is_refused_with_the_compiler_log(monkeypatch):
    broken = cuda_c.program_source(RULES["choose_partner"]).replace("return d;", "return sgnal;")
    monkeypatch.setattr(cuda_c, "program_source", lambda fn: broken)
    with pytest.raises(RuntimeError, match=r"synapse\.cu does not compile for sm_90:(.|\n)*sgnal"):
        cuda_c.compile_program(RULES["choose_partner"], (9, 0))


def test_gpusim_cuda_c_names_rules_with_a_cuda_c_form(monkeypatch):
    from gpusim.kernels import gpu_options

    def requested(setting):
        return gpu_options.read({"GPUSIM_CUDA_C": setting}).cuda_c

    assert requested("") == gpu_options.CUDA_C_BY_DEFAULT and requested("0") == frozenset()
    monkeypatch.setattr(gpu_options, "CUDA_C_BY_DEFAULT", frozenset({"census"}))  # once a GPU has shown it faster
    assert requested("") == {"census"} and requested("0") == frozenset()
    monkeypatch.delenv("GPUSIM_CUDA_C", raising=False)
    assert gpu_options.read().cuda_c == {"census"}
    assert requested("1") == requested("all") == frozenset(RULES)
    assert requested(" choose_partner ") == {"choose_partner"}
    forms = "census, choose_division_site, choose_partner, resolve_claim, synapse_receive"
    with pytest.raises(ValueError, match=f"die, which have no CUDA C form; those that can be named: {forms}"):
        requested("choose_partner,die")


def test_a_blocks_counters_in_32_bit_halves_sum_as_int64(tmp_path):
    """kernels/tally.cuh's block counters (two 32-bit words a counter, native atomics on the GPU), built for the
    host: amounts that carry out of the low word, pass through negative values and exceed 2**32 in one add sum
    to numpy's int64 sum; so does a count of lanes."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.fail("the CUDA C tests need a C++ compiler (.ci/run installs g++)")
    source = tmp_path / "counters.cpp"
    source.write_text("\n".join([
        '#include "cuda_host.h"',
        '#include "tally.cuh"',
        'extern "C" long long sum_in_halves(const long long* amounts, int n) {',
        "    unsigned words[4] = {0, 0, 0, 0};",
        "    const BlockCounters counters{words, 2};",
        "    for (int i = 0; i < n; ++i) add_to(counters, 1, amounts[i]);",
        "    return words[0] == 0 && words[2] == 0 ? whole_counter(counters, 1) : -1;  // counter 0 untouched",
        "}",
    ]) + "\n")
    library = tmp_path / "counters.so"
    built = subprocess.run([compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-pthread", "-Wall", "-Werror",
                            "-Wno-unused-function", f"-I{TESTS}", f"-I{cuda_c.FOLDER}", "-o", str(library),
                            str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    sum_in_halves = ctypes.CDLL(str(library)).sum_in_halves
    sum_in_halves.restype = ctypes.c_longlong
    import sys

    sys.path.insert(0, str(TESTS))
    from tally_run import amounts

    for values in (amounts(1000), np.full(300, 2**32 - 1, dtype=np.int64), -amounts(77), np.ones(5, np.int64)):
        values = np.ascontiguousarray(values, dtype=np.int64)
        total = sum_in_halves(values.ctypes.data_as(ctypes.POINTER(ctypes.c_longlong)), len(values))
        assert total == int(values.sum())


class HostKernels:
    """The .cu files built for the host (g++ and tests/cuda_host.h), one library per rule; ``defines``: the
    preprocessor's, such as the ``__CUDA_ARCH__`` of a GPU whose code path to take."""

    def __init__(self, folder, defines=()):
        compiler = shutil.which("g++") or shutil.which("c++")
        if compiler is None:
            pytest.fail("the CUDA C tests need a C++ compiler (.ci/run installs g++)")
        self.entries = {}
        for name, fn in sorted(RULES.items()):
            declarations = cuda_c.kernel_declarations(cuda_c_source(fn), name)
            names = cuda_c.kernel_parameters(cuda_c_source(fn), name)
            source = folder / f"{name}.cpp"
            source.write_text("\n".join([
                '#include "cuda_host.h"',
                cuda_c.program_source(fn),
                f'extern "C" void host_{name}({", ".join(declarations)}, unsigned blocks, unsigned threads) {{',
                f"    gpusim_host_launch(::{name}, blocks, threads, {', '.join(names)});",
                "}",
            ]) + "\n")
            library = folder / f"{name}.so"
            built = subprocess.run(
                [compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-pthread", "-Wall", "-Werror",
                 "-Wno-unused-function", "-Wno-unknown-pragmas",  # #pragma unroll is for the GPU
                 *(f"-D{define}" for define in defines),
                 f"-I{TESTS}", "-o", str(library), str(source)],
                capture_output=True, text=True,
            )
            assert built.returncode == 0, built.stderr
            pointers = ["*" in declaration for declaration in declarations]
            self.entries[name] = (getattr(ctypes.CDLL(str(library)), f"host_{name}"), pointers)

    def launch(self, fn, n, args, threads_per_block=1, blocks=3):
        """Run rule ``fn``'s host-built kernel on host arrays ``args`` (the rule's) over ``n`` indices (an int or
        a Count) in ``blocks`` blocks (striding over the rest) of ``threads_per_block``; returns the tally of a
        tallying rule."""
        totals = (np.zeros(tally_size(fn), dtype=np.int64),) if tally_size(fn) else ()
        bound, live = (n.bound, n.live) if isinstance(n, Count) else (int(n), None)
        arguments = (*cuda_c.kernel_arguments(fn, bound, live, args), *totals)
        self.raw_kernel(fn)((blocks,), (threads_per_block,), arguments)
        return totals[0] if totals else None

    def raw_kernel(self, fn):
        """Rule ``fn``'s host-built kernel, called as a cupy RawKernel is: ``kernel(grid, block, arguments)``."""
        entry, pointers = self.entries[fn.__name__]

        def call(grid, block, arguments):
            values = [
                ctypes.c_void_p(a.ctypes.data if isinstance(a, np.ndarray) else int(a)) if pointer
                else ctypes.c_longlong(int(a))
                for a, pointer in zip(arguments, pointers, strict=True)
            ]
            entry(*values, ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]))

        return call


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    return HostKernels(tmp_path_factory.mktemp("cuda_c"))


@pytest.fixture(scope="module")
def host_kernels_before_sm80(tmp_path_factory):
    """The host build taking the code path of GPUs before compute capability 8.0 (sm_75: a T4, an RTX 20x0),
    which sum a warp's amounts by shuffles (kernels/tally.cuh)."""
    return HostKernels(tmp_path_factory.mktemp("cuda_c_sm75"), defines=("__CUDA_ARCH__=750",))


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


# (threads a block, blocks) of the host build's launches, in turn: blocks of one thread (fast), fewer blocks
# than cells (each strides) or more, and blocks of one warp (32 host threads meeting at every warp function:
# its lanes' matches and sums as on a GPU; about 0.3 s a census of 600 cells, so one launch in ten in a run)
LAYOUTS = ((1, 3), (1, 1), (1, 5000), (32, 2))
WARP = (32, 2)


def run_layout(launches):
    return WARP if launches % 10 == 0 else LAYOUTS[launches % 3]


@pytest.mark.parametrize("preset", PRESETS)
def test_host_build_equals_the_rule_at_every_launch_of_a_run(preset, host_kernels):
    """A run's every launch of a rule with a CUDA C form is also made by the host build, on copies of the
    arguments; both must leave every array and the tally identical."""
    sim = Simulation(small_preset(preset), backend=None)
    compared = {name: 0 for name in RULES}
    tallied = {name: 0 for name in RULES}
    counted = {name: 0 for name in RULES}  # launches over a count only the device knows (kernels.cpu_launcher.Count)
    launch = sim.launch

    def compare_then_launch(fn, n, *args, **options):
        if fn.__name__ not in RULES or fn is not RULES[fn.__name__]:
            return launch(fn, n, *args, **options)
        copies = [copy.deepcopy(a) for a in args]
        threads, blocks = run_layout(compared[fn.__name__])
        host_tally = host_kernels.launch(fn, n, copies, threads_per_block=threads, blocks=blocks)
        tally = launch(fn, n, *args, **options)
        for name, ours, theirs in zip(rule_parameters(fn), copies, args):
            if isinstance(theirs, np.ndarray):
                assert np.array_equal(ours, theirs), f"{fn.__name__}: {name} differs at step {sim.clock}"
        assert np.array_equal(host_tally, tally), f"{fn.__name__}: tally differs at step {sim.clock}"
        compared[fn.__name__] += 1
        counted[fn.__name__] += isinstance(n, Count)
        if tally is not None:
            tallied[fn.__name__] += int(tally[ENGAGEMENTS] if fn.__name__ == "choose_partner" else tally.sum())
        return tally

    sim.launch = compare_then_launch
    sim.run()
    assert compared["choose_partner"] == compared["synapse_receive"] == compared["choose_division_site"] == sim.end_step
    assert compared["resolve_claim"] == 2 * sim.end_step  # the move phase's, then the divide phase's
    assert compared["census"] >= sim.end_step and counted["census"] > 0
    assert tallied["choose_partner"] > 20, "few synapses formed: the scenario does not exercise the rule"


def random_cells(sim, rng, heavy=False):
    """The columns of ``sim``'s cells drawn at random, every flag and kind in every neighbourhood: kinds, flags
    (dead, debris, quiescent, hypoxic, activated, held, engulfed), partners, clocks, budgets, stimulation (a
    third at their exhaustion limits), pools from none to 10^9 molecules (the binding's 64-bit arithmetic)
    and the synapse phase's scratch.  ``heavy``:
    every cell of one kind, with pools and stimulation near 2^31, so that a warp's sums pass 32 bits."""
    from gpusim.kernels.cells import ACTIVATED, DEAD, ENGULFED, GHOST, HELD, HYPOXIC, N_KINDS, NECROTIC, QUIESCENT

    s = sim.state
    n = s.n
    flags = np.zeros(n, dtype=np.uint8)
    for flag, share in ((DEAD, 0.05), (NECROTIC, 0.1), (QUIESCENT, 0.2), (HYPOXIC, 0.2), (ACTIVATED, 0.3),
                        (HELD, 0.3), (ENGULFED, 0.1), (GHOST, 0.2)):
        flags |= (rng.random(n) < share).astype(np.uint8) * flag
    pools = s["pools"][:, :n].copy()
    scale = 10 ** rng.integers(0, 10, pools.shape)
    pools[...] = (rng.random(pools.shape) * scale * (rng.random(pools.shape) < 0.7)).astype(np.int32)
    kind = rng.integers(0, N_KINDS, n).astype(np.uint8)
    stimulation = (rng.random(n) * 10 ** rng.integers(0, 10, n)).astype(np.int32)
    at_limit = rng.random(n) < 0.3  # a third just at, below or above their kind's exhaustion limit
    limits = sim.params[EXHAUSTION_LIMIT + kind.astype(np.int64)] + rng.integers(-1, 2, n)
    stimulation[at_limit] = np.clip(limits[at_limit], 0, None)
    if heavy:
        kind[:] = rng.integers(0, N_KINDS)
        pools[...] = rng.integers(2**30, 2**31, pools.shape)
        stimulation = rng.integers(2**30, 2**31, n).astype(np.int32)
    # the trogocytosis detection level: one cell's antigen A + B exactly, so that the level itself is met
    rows = [sim.params[POOL_ROW + species] for species in (ANTIGEN_A, ANTIGEN_B)]
    acquired = sum(pools[row].astype(np.int64) for row in rows if row >= 0)
    return {
        "kind": kind, "state": flags, "voxel": s["voxel"][:n].copy(),
        "partner": np.where(rng.random(n) < 0.2, rng.integers(0, 26, n), -1).astype(np.int8),
        "refractory_steps": np.where(rng.random(n) < 0.2, rng.integers(1, 5, n), 0).astype(np.int16),
        "synapse_steps": rng.integers(0, 9, n).astype(np.int16),
        "cycle_timer": np.where(rng.random(n) < 0.5, 0, rng.integers(1, 99, n)).astype(np.int32),
        "divisions_left": rng.integers(-1, 3, n).astype(np.int8),
        "stimulation": stimulation,
        "pools": pools, "occ": s.occ.copy(), "params": sim.params, "detection": acquired[rng.integers(n)],
        # the synapse phase's scratch, as effectors leave it for synapse_receive: contacts as directions, what
        # each took and gave (signed, up to 10^9), strikes of every kind, and damage and bites near 2^15
        "touched": (rng.random(n) < 0.5).astype(np.uint8),
        "contact": np.where(rng.random(n) < 0.6, rng.integers(0, 26, n), -1).astype(np.int8),
        "taken_a": (rng.random(n) * scale[0]).astype(np.int32), "taken_b": (rng.random(n) * scale[-1]).astype(np.int32),
        "car_given": ((rng.random(n) - 0.3) * scale[0]).astype(np.int32),
        "strike": rng.integers(0, 8, n).astype(np.uint8),
        "damage": rng.integers(0, 2**15, n).astype(np.int16), "bites": rng.integers(0, 2**15, n).astype(np.int16),
        # claims as the move and divide phases make them: on a neighbour of the cell's own voxel, so that on
        # a crowded lattice several cells claim one voxel (resolve_claim)
        "seed": sim.seed, "step": int(rng.integers(0, 1000)), "purpose": MOVE_PRIORITY,
        "agent_id": s["agent_id"][:n].copy(), "claim": claims_of(s["voxel"][:n], sim.params, rng),
        "won": np.zeros(n, dtype=np.uint8),
    }


def claims_of(voxels, params, rng, share=0.6):
    """A claim for ``share`` of the cells, each the direction of a neighbour of its own voxel drawn at random (-1
    where that is past a wall: no phase claims there), the others -1."""
    from gpusim.kernels.lattice import neighbour

    claims = np.full(len(voxels), -1, dtype=np.int8)
    for i, v in enumerate(voxels):
        direction = int(rng.integers(0, 26))
        if rng.random() < share and neighbour(int(v), direction, params) >= 0:
            claims[i] = direction
    return claims


def compare_on_random_cells(host, sim, given, layout, trial):
    """Every rule with a CUDA C form run on the cells ``given`` (random_cells; each rule on copies of them as
    drawn) by the host build ``host`` in ``layout`` (threads a block, blocks) and by the rule: every array and
    the tally identical.  Returns the engagements the neighbour scan made, and the rules' arrays after them
    (by rule name, then parameter name)."""
    threads, blocks = layout
    engaged = 0
    results = {}
    for fn in RULES.values():
        args = copy.deepcopy([given[p] for p in rule_parameters(fn)])
        results[fn.__name__] = dict(zip(rule_parameters(fn), args))
        copies = copy.deepcopy(args)
        host_tally = host.launch(fn, sim.state.n, copies, threads_per_block=threads, blocks=blocks)
        ghosts = (given["state"], 0) if tally_size(fn) else None  # a CUDA C kernel leaves GHOSTs out by itself
        tally = sim.launch(fn, sim.state.n, *args, ghosts=ghosts)
        for name, ours, theirs in zip(rule_parameters(fn), copies, args):
            assert np.array_equal(ours, theirs), f"{trial}: {fn.__name__}'s {name} differs"
        assert np.array_equal(host_tally, tally), f"{trial}: {fn.__name__}'s tally differs"
        if fn.__name__ == "choose_partner":
            engaged += int(tally[ENGAGEMENTS])
    return engaged, results


def test_host_build_equals_the_rule_on_random_cells(host_kernels):
    """Cells drawn at random (random_cells), in every block layout: every array and the tally identical."""
    sim = Simulation(small_preset("li2022_car_nk_icar"), backend=None)
    rng = np.random.default_rng(11)
    engaged = 0
    for trial in range(2 * len(LAYOUTS) + 2):
        heavy = trial >= 2 * len(LAYOUTS)
        layout = WARP if heavy else LAYOUTS[trial % len(LAYOUTS)]
        given = random_cells(sim, rng, heavy)
        engagements, results = compare_on_random_cells(host_kernels, sim, given, layout, f"trial {trial}")
        engaged += engagements
        won = results["resolve_claim"]["won"][given["claim"] >= 0]
        assert won.any() and not won.all(), "no rivalry among the claims"
    assert engaged > 100


def test_before_compute_capability_8_the_warp_sums_by_shuffles_equal_the_rule(host_kernels_before_sm80):
    """The sm_75 path of the warp sums, in warps of 32 lanes: each group of lanes adding to one counter sums
    by shuffles among its own lanes while the other groups do the same (random cells, then sums past 32 bits)."""
    sim = Simulation(small_preset("li2022_car_nk_icar"), backend=None)
    rng = np.random.default_rng(12)
    for heavy in (False, True):
        given = random_cells(sim, rng, heavy)
        compare_on_random_cells(host_kernels_before_sm80, sim, given, WARP, f"sm_75, heavy={heavy}")


def test_kernel_parameters_follow_the_rule():
    """The kernel takes the rule's arguments in the rule's order (the convention of kernels/cuda_c.py), as the
    engine passes them in a run."""
    sim = Simulation(small_preset("sample"), backend=None)
    seen = {}
    launch = sim.launch

    def record(fn, n, *args, **options):
        if fn.__name__ in RULES:
            seen[fn.__name__] = {p: getattr(a, "ndim", 0) for p, a in zip(rule_parameters(fn), args)}
        return launch(fn, n, *args, **options)

    sim.launch = record
    sim.step()
    assert set(seen) == set(RULES)
    for name, dimensions in seen.items():
        fn = RULES[name]
        assert cuda_c.kernel_parameters(cuda_c_source(fn), name) == cuda_c.expected_parameters(fn, dimensions)


def test_the_gpu_launcher_runs_the_cuda_c_form_when_asked(host_kernels, monkeypatch):
    """The CUDA launcher's path to a CUDA C kernel (arguments laid out, the count on the device, the grid no
    larger than the GPU holds, the tally returned), with the host build standing in for the GPU's kernels:
    the same results as the rules, for every rule with a CUDA C form (numbers, vectors and tables among their
    arguments)."""
    from types import SimpleNamespace

    from gpusim.kernels.gpu_launcher import CUDALauncher
    from gpusim.kernels.gpu_options import GPUOptions

    launched = []

    def kernel(fn):
        host = host_kernels.raw_kernel(fn)

        def call(grid, block, arguments):
            launched.append((fn.__name__, grid, block))
            host(grid, block, arguments)

        return call

    monkeypatch.setattr(cuda_c, "kernel", kernel)
    properties = {"multiProcessorCount": 2, "maxThreadsPerMultiProcessor": 96, "regsPerMultiprocessor": 65536,
                  "maxBlocksPerMultiProcessor": 32, "sharedMemPerMultiprocessor": 228 * 1024}  # 6 blocks of a warp
    device = SimpleNamespace(Device=lambda: SimpleNamespace(id=0),
                             runtime=SimpleNamespace(getDeviceProperties=lambda device_id: properties))
    gpu = CUDALauncher(SimpleNamespace(zeros=np.zeros, cuda=device), threads_per_block=1,
                       options=GPUOptions(cuda_c=frozenset(RULES)))
    sim = Simulation(small_preset("li2022_car_nk"), backend=None)  # effectors next to the tumour, all free
    s = sim.state
    given = ChainMap({"seed": sim.seed, "step": 0, "params": sim.params, "occ": s.occ, "detection": 100}, s)
    live = np.array([s.n - 7])  # a count only the device knows, below the bound
    for fn, n in ((RULES["choose_partner"], s.n), (RULES["census"], Count(s.n, live))):
        args = [given[p] for p in rule_parameters(fn)]
        copies = copy.deepcopy(args)
        tally = sim.launch(fn, n, *args)
        assert tally.sum() > 0
        assert np.array_equal(gpu(fn, n, *copies), tally)
        assert all(np.array_equal(a, b) for a, b in zip(copies, args))
    assert launched == [("choose_partner", (6,), (1,)), ("census", (6,), (1,))]
    drawn = random_cells(sim, np.random.default_rng(5))  # every rule's arguments, scalars among them
    for name, fn in sorted(RULES.items()):
        args = [copy.deepcopy(drawn[p]) for p in rule_parameters(fn)]
        copies = copy.deepcopy(args)
        tally = sim.launch(fn, Count(s.n, live), *args, ghosts=(drawn["state"], 0))  # CUDA C leaves GHOSTs out
        assert np.array_equal(gpu(fn, Count(s.n, live), *copies), tally), name
        assert all(np.array_equal(a, b) for a, b in zip(copies, args)), name
    assert [name for name, _grid, _block in launched[2:]] == sorted(RULES)


def test_the_rules_of_one_cu_file_share_one_module_compiled_once(monkeypatch):
    """On a GPU cupy compiles a ``.cu`` file once for all the rules it holds (a stand-in cupy counts)."""
    import sys
    from types import SimpleNamespace

    compiled = []

    class RawModule:
        def __init__(self, code, options):
            compiled.append((code, options))

        def get_function(self, name):
            return (self, name)

    monkeypatch.setitem(sys.modules, "cupy", SimpleNamespace(RawModule=RawModule))
    monkeypatch.setattr(cuda_c, "_kernels", {})
    monkeypatch.setattr(cuda_c, "_modules", {})
    scan, receive = cuda_c.kernel(RULES["choose_partner"]), cuda_c.kernel(RULES["synapse_receive"])
    assert cuda_c.kernel(RULES["choose_partner"]) is scan
    assert scan[0] is receive[0] and (scan[1], receive[1]) == ("choose_partner", "synapse_receive")
    census = cuda_c.kernel(RULES["census"])
    assert census[0] is not scan[0] and len(compiled) == 2
    assert compiled[0] == (cuda_c.program_source(RULES["choose_partner"]), cuda_c.NVRTC_OPTIONS)


H200 = {"multiProcessorCount": 132, "maxThreadsPerMultiProcessor": 2048, "regsPerMultiprocessor": 65536,
        "maxBlocksPerMultiProcessor": 32, "sharedMemPerMultiprocessor": 233472}  # cupy's getDeviceProperties


@pytest.mark.parametrize("registers, shared_bytes, held", [(40, 3008, 6), (64, 0, 4), (68, 0, 3), (24, 0, 8)])
def test_a_cuda_c_launch_starts_the_blocks_an_h200_holds_of_the_kernel(registers, shared_bytes, held):
    """As many blocks as the multiprocessors hold of this kernel at once, by its registers (the census's 40:
    six blocks of 256 threads; 68: three) and threads; never more than the cells need."""
    from gputools.compiled import SM90, occupancy

    resident = cuda_c.resident_blocks(256, H200, registers, shared_bytes)
    assert cuda_c.blocks_for(10**8, 256, resident) == 132 * held
    assert occupancy(registers, shared_bytes, 256, SM90)[0] == held * 8 / 64  # the resource table's own count
    assert cuda_c.blocks_for(1000, 256, resident) == 4


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


@pytest.mark.parametrize("capability, refused", [("60", True), ("61", True), ("70", False), ("75", False), ("90", False)])
def test_gpusim_cuda_c_is_refused_on_a_gpu_older_than_its_kernels(monkeypatch, capability, refused):
    """A GPU before compute capability 7.0 (a P100) has no lane matching: refused before the run, with the
    way out; numba's kernels stay open to it."""
    import sys
    from types import SimpleNamespace

    from gpusim import backend

    monkeypatch.setattr(backend, "cuda_problem", lambda: None)
    monkeypatch.setattr(backend, "configure_numba_cuda", lambda: None)
    fake = SimpleNamespace(cuda=SimpleNamespace(Device=lambda: SimpleNamespace(compute_capability=capability)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setenv("GPUSIM_CUDA_C", "all")
    if refused:
        with pytest.raises(backend.BackendError, match=rf"capability 7.0 or later .* this one has "
                                                      rf"{capability[0]}.{capability[1]}: unset GPUSIM_CUDA_C"):
            backend.select("cuda")
    else:
        forms = "census, choose_division_site, choose_partner, resolve_claim, synapse_receive"
        assert backend.select("cuda").label == f"cuda (CUDA C: {forms})"
    monkeypatch.delenv("GPUSIM_CUDA_C")
    assert backend.select("cuda").label == "cuda"
