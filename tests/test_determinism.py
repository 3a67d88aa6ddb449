"""Bitwise determinism: seeds, thread counts, and the CPU versus the GPU launch path."""

import json

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.kernels.decorators import Fused, launched_rules

from helpers import run_script, small_config


def all_rules():
    """What the engine launches: every rule of the kernels package, a fused launch (kernels.decorators.fuse) in place
    of the rules it runs."""
    launched = launched_rules().values()
    fused = {f"{r.__module__}.{r.__name__}" for fn in launched if isinstance(fn, Fused) for r in fn.rules}
    return {f"{fn.__module__}.{fn.__name__}" for fn in launched} - fused


def final_state(cfg, steps=None):
    sim = Simulation(cfg, debug=True)
    sim.run(steps)
    return sim.state.snapshot(), sim.timeseries.arrays(), sim.kind_volume()


def assert_same_run(snapshot, series, other_snapshot, other_series):
    """Every array of the first snapshot and time series equals the other's, bit for bit (NaN equal to NaN)."""
    for key in snapshot:
        assert np.array_equal(snapshot[key], other_snapshot[key]), key
    for key in series:
        assert np.array_equal(series[key], other_series[key], equal_nan=series[key].dtype.kind == "f"), key


def test_same_seed_gives_identical_state_and_series():
    cfg, _ = small_config()
    (a, sa, va), (b, sb, vb) = final_state(cfg), final_state(cfg)
    assert_same_run(a, sa, b, sb)
    assert np.array_equal(va, vb)


def test_other_seed_gives_another_run():
    cfg, _ = small_config()
    other, _ = small_config(run={"seed": 4})
    a, _, _ = final_state(cfg)
    b, _, _ = final_state(other)
    assert not np.array_equal(a["voxel"], b["voxel"]) or a["voxel"].size != b["voxel"].size


def test_a_table_without_the_species_no_cell_carries_gives_the_same_run(monkeypatch):
    """A run's table holds pool rows only for the species its cells can carry (kernels.pools): CAR-NK cells
    bring CAR and their iCAR ligand to a tumour with antigen A only, so antigen B, receptor B and the iCAR get
    no row, nor does the B set point.  The run is bit for bit the run of a table holding every row, in which
    those rows stay 0 throughout."""
    from gpusim import parameters
    from gpusim.kernels import params as P
    from gpusim.kernels.molecules import ANTIGEN_B, ICAR, N_SET_POINTS, N_SPECIES, RECEPTOR_B
    from gpusim.state import every_row

    cfg, _ = small_config(dose=[{"time": "10 min", "count": 80, "placement": "rim", "kind": "car_nk"}])

    def observed(sim):
        return [sim.state.snapshot(), sim.timeseries.arrays(), sim.flow_cytometry(), sim.field_volumes()]

    trimmed = Simulation(cfg, debug=True).run()
    assert trimmed.state["pools"].shape[0] == 3 and trimmed.state["set_points"].shape[0] == 1

    def hold_every_row(params, kinds):
        params[P.POOL_ROW : P.POOL_ROW + N_SPECIES] = np.arange(N_SPECIES)
        params[P.SET_POINT_ROW : P.SET_POINT_ROW + N_SET_POINTS] = np.arange(N_SET_POINTS)
        return every_row()

    monkeypatch.setattr(parameters, "hold_rows", hold_every_row)
    full = Simulation(cfg, debug=True).run()
    assert full.state["pools"].shape[0] == N_SPECIES
    a, b = observed(trimmed), observed(full)
    assert a[0].keys() == b[0].keys() and a[1].keys() == b[1].keys()
    assert_same_run(a[0], a[1], b[0], b[1])
    assert np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])
    assert a[1]["cells_car_nk"][-1] > 0 and a[1]["total_icar_ligand"][-1] > 0 and a[1]["taken_antigen_a"].sum() > 0
    live = full.state.view("pools")
    assert not live[[ANTIGEN_B, RECEPTOR_B, ICAR]].any() and full.state.view("set_points")[1].max() == 0


@pytest.mark.parametrize("share", [0.0, float("inf")])
def test_when_dead_slots_are_compacted_changes_nothing(monkeypatch, share):
    """Dead cells keep their slots until a compaction (every rule passes over them); compacting in every step
    with deaths (share 0: the die phase compacting every step), once they are 1/32 of the slots (the default),
    or only when a sort, a read or a table that would grow needs it (share inf) gives the same run bit for
    bit, with the lattice invariants checked after every step.  The table is nearly full (850 tumour cells
    and an infusion in 1024 slots): dead slots are reclaimed before it would grow, so it never does."""
    from gpusim import engine
    from gpusim.state import State

    cfg, _ = small_config(dose=[{"time": "10 min", "count": 150, "placement": "rim", "kind": "car_nk"}],
                          run={"sort_every": "120 min"}, tumour={"initial_cells": 850})
    compactions = []
    compact = State.compact
    monkeypatch.setattr(State, "compact", lambda state: compactions.append(state.n) or compact(state))

    def observed():
        compactions.clear()
        sim = Simulation(cfg, debug=True).run()
        assert sim.state.capacity == 1024
        return [sim.state.snapshot(), sim.timeseries.arrays(), sim.flow_cytometry()], len(compactions)

    default, default_compactions = observed()
    monkeypatch.setattr(engine, "COMPACT_DEAD_SHARE", share)
    other, other_compactions = observed()
    deaths = sum(int(default[1][f"deaths_{kind}"].sum() > 0) for kind in ("tumour", "car_nk"))
    assert deaths == 2 and other_compactions != default_compactions
    if share == 0.0:
        assert default_compactions < other_compactions / 4  # the default compacts far less often
    assert_same_run(default[0], default[1], other[0], other[1])
    assert np.array_equal(default[2], other[2])


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


@pytest.fixture(scope="module")
def cpu_trace():
    """The simulator traces' scene on the CPU."""
    return _trace("cpu", {"NUMBA_ENABLE_CUDASIM": "0"}, steps=7, density=1 / 14)


def test_cpu_and_cuda_simulator_agree_for_every_rule(simulator_trace, cpu_trace):
    """Every rule's launch, compared after each call on a 12^3 lattice: CPU (numba threads) vs CUDA kernels."""
    cpu = cpu_trace
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


def test_cuda_kernels_striding_over_the_cells_agree_with_the_cpu(cpu_trace):
    """GPUSIM_CUDA_GRID=all: every numba kernel in two blocks (the simulator's stand-in for what a GPU holds at
    once), each thread taking indices a grid apart, so that most threads run several cells in one launch and a
    tallying block adds them all to its counters: every launch equal to the CPU's."""
    gpu = _trace("cuda", {"NUMBA_ENABLE_CUDASIM": "1", "GPUSIM_CUDA_GRID": "all"}, steps=7, density=1 / 14)
    assert gpu["backend"] == "cuda (CUDA simulator) (grid-stride: every rule)"
    assert len(cpu_trace["trace"]) == len(gpu["trace"])
    for (rule_c, digest_c), (rule_g, digest_g) in zip(cpu_trace["trace"], gpu["trace"]):
        assert (rule_c, digest_c) == (rule_g, digest_g), f"{rule_c} differs between the CPU and the strided launch"
    assert cpu_trace["final"] == gpu["final"] and cpu_trace["series"] == gpu["series"]


def test_the_gpus_32_bit_counter_halves_sum_as_int64_does():
    """On the GPU a block's counters are 32-bit halves (native shared-memory atomics; a 64-bit one is a
    compare-and-swap loop): amounts that carry out of the low half, borrow through negative values and pass
    2**32 in one add sum to what the CPU's int64 counters and numpy give (tests/tally_run.py, in the CUDA
    simulator; tests/test_gpu.py runs it on a GPU)."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tally_run import amounts, expected_sums

    expected = expected_sums(amounts(1000))
    for backend, env in (("cuda", {"NUMBA_ENABLE_CUDASIM": "1"}), ("cpu", {})):
        result = run_script("tally_run.py", backend, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout.strip().splitlines()[-1])["sums"] == expected, backend


def test_every_cuda_kernel_compiles_for_an_h200(simulator_trace):
    """The simulator runs kernels as Python and would accept code numba-cuda's compiler refuses: every kernel the
    simulated run launched, with the same argument types, is compiled to PTX for compute capability 9.0 by NVVM
    and linked into the H200's machine code by nvJitLink (no GPU needed), in both forms (a thread a cell, and
    striding over the cells: GPUSIM_CUDA_GRID); none spills registers to local memory, and the parameters
    direct launches lay out (GPUSIM_CUDA_DIRECT) are those the PTX declares."""
    _, signatures = simulator_trace
    result = run_script("kernel_compile_run.py", signatures, "9.0", "strided", env={"NUMBA_ENABLE_CUDASIM": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"][0]["error"]
    for form in ("", " (strided)"):
        assert {entry["kernel"].split(" ")[0] for entry in report["compiled"]
                if entry["kernel"].endswith("(strided)") == bool(form)} == all_rules(), form
    assert all(entry["ptx_bytes"] > 1000 and entry["cubin_bytes"] > 1000 for entry in report["compiled"])
    assert all(0 < entry["registers"] <= 255 for entry in report["compiled"])
    assert [entry["kernel"] for entry in report["compiled"]
            if entry["spill_bytes"] or entry["local_bytes"] or entry["stack_bytes"]] == []
    # a tallying kernel adds with native 32-bit shared atomics, never a 64-bit compare-and-swap loop
    assert [entry["kernel"] for entry in report["compiled"] if entry["shared_atomics_64"]] == []
    # a voxel's coordinates come by multiplying (kernels.lattice.quotient): 64-bit integer division, a routine of
    # dozens of instructions on the GPU, is left only to the field grid's kernels (every few steps, a coarse grid)
    # and to the synapse's signal, whose costimulation saturates by a division (kernels.signal); a strided form
    # also divides once a thread, the trip count of its loop over the cells; and start_cycle, which runs once, on
    # the initial tumour (the steady state of division and re-expression is a quotient)
    dividing = {entry["kernel"].split(" ")[0].rsplit(".", 1)[1] for entry in report["compiled"]
                if entry["divisions_64"] and not entry["kernel"].endswith("(strided)")}
    assert dividing == {"reaction_terms", "diffusion_residual", "line_solve", "choose_partner", "synapse_exchange",
                        "start_cycle"}
    # GPUSIM_CUDA_DIRECT lays out each kernel's parameters itself: as many, of the sizes its PTX declares
    assert [entry["kernel"] for entry in report["compiled"]
            if entry["laid_out_bytes"] != entry["parameter_bytes"]] == []


def test_a_fused_launch_equals_its_rules_launched_one_after_another():
    """kernels.decorators.fuse: express and recover in one launch change every array and tally as the two launches do,
    mid-run (pools off their set points, effectors exhausted and damaged); and a fusion that cannot hold is
    refused."""
    from collections import ChainMap

    import numpy as np
    import pytest

    from gpusim.kernels.census import census
    from gpusim.kernels.expression import express, express_and_recover, recover
    from gpusim.kernels.decorators import fuse, launch_arguments
    from gpusim.kernels.synapse import synapse_receive

    cfg, _ = small_config()
    sim = Simulation(cfg)
    sim.run(40)
    s = sim.state
    given = ChainMap({"seed": sim.seed, "step": 41, "params": sim.params, "tables": sim.tables}, s)
    arguments = launch_arguments(express_and_recover, given)
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]

    def launched(fn):
        for a, b in zip(arguments, before):
            if isinstance(a, np.ndarray):
                a[...] = b
        if fn is express_and_recover:
            tally = sim.launch(fn, s.n, *arguments)
        else:
            tally = sum(sim.launch(rule, s.n, *launch_arguments(rule, given)) for rule in (express, recover))
        return tally, [a.copy() for a in arguments if isinstance(a, np.ndarray)]

    one_after_another, fused = launched(None), launched(express_and_recover)
    assert one_after_another[0].sum() > 0  # molecules made and degraded: the step did something
    assert np.array_equal(one_after_another[0], fused[0])
    assert all(np.array_equal(a, b) for a, b in zip(one_after_another[1], fused[1]))
    with pytest.raises(TypeError, match="share one layout"):
        fuse(express, census)
    with pytest.raises(TypeError, match="not fuse"):
        fuse(express_and_recover, synapse_receive)
    with pytest.raises(TypeError, match="'tables'"):
        launch_arguments(express_and_recover, {p: 0 for p in express_and_recover.parameters if p != "tables"})


def test_copy_parent_takes_every_dtype_of_the_agent_table():
    """A daughter copies her parent's columns in one launch of one [row, slot] table per dtype: a column of a dtype
    kernels.cell_cycle.TABLE_DTYPES does not name would not be copied."""
    import numpy as np

    from gpusim.kernels.cell_cycle import TABLE_DTYPES
    from gpusim.state import COLUMNS

    assert {np.dtype(dtype).str for dtype, _ in COLUMNS.values()} == set(TABLE_DTYPES)


def test_the_order_of_the_agent_table_changes_nothing(small):
    """Where a cell sits in the table is bookkeeping, not biology: a run whose table is shuffled at a checkpoint
    goes on exactly as the run that was not (every cell's columns, matched by id; every time series; the
    lattice; oxygen and chemokine).  Divisions, deaths, claims, synapses and field updates all happen in
    those steps.  Randomness is
    keyed by agent id, tallies are integer sums, the fields gather their sources voxel by voxel, and
    daughters take their ids in the order of their parents' voxels, so a table split across processes (or
    sorted otherwise) gives the same run."""
    from gpusim.state import COLUMNS

    cfg, _ = small_config(tumour={"initial_cells": 900, "cycle_time": "2 h", "apoptosis_rate": "0.3 /h"},
                          dose=[{"time": "0 min", "count": 150, "placement": "rim"}],
                          fields={"oxygen": {}, "chemokine": {}, "settle": 5})
    sim = Simulation(cfg)
    sim.run(8)
    taken = sim.checkpoint()
    rows = sim.timeseries.arrays()
    n = int(taken["n"])

    def continued(order):
        columns = dict(taken["columns"])
        for name in COLUMNS:
            columns[name] = np.ascontiguousarray(columns[name][..., order])
        other = Simulation.restore(cfg, {**taken, "columns": columns}, rows, debug=True)
        other.run()
        end = other.state.snapshot()
        by_id = np.argsort(end["agent_id"])
        return ({name: end[name][..., by_id] for name in COLUMNS}, other.timeseries.arrays(),
                (other.kind_volume(), other.fields.host_values()))

    kept, kept_series, (kept_volume, kept_fields) = continued(np.arange(n))
    shuffled, shuffled_series, (shuffled_volume, shuffled_fields) = continued(np.random.default_rng(7).permutation(n))
    assert kept_series["births_tumour"].sum() > 20 and kept_series["deaths_tumour"].sum() > 5  # a busy stretch
    for name in COLUMNS:
        assert np.array_equal(kept[name], shuffled[name]), name
    for name in kept_series:
        assert np.array_equal(kept_series[name], shuffled_series[name], equal_nan=True), name
    assert np.array_equal(kept_volume, shuffled_volume)
    assert np.array_equal(kept_fields, shuffled_fields) and kept_fields.size > 0
