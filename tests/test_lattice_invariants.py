"""The lattice invariants hold at every step, and the first rules do what biology says."""

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.kernels.cells import CAR_T, TUMOUR
from gpusim.kernels.codegen import compile_device
from gpusim.kernels.lattice import direction_offset, neighbour, opposite

from helpers import small_config


def paired(start, end, column="voxel"):
    """``column`` at start and at end for the cells present in both, ordered by id."""
    common = np.intersect1d(start["agent_id"], end["agent_id"])

    def pick(snap):
        keep = np.isin(snap["agent_id"], common)
        return snap[column][keep][np.argsort(snap["agent_id"][keep])]

    return pick(start), pick(end)


def test_directions_are_the_26_neighbours_and_opposites_point_back():
    offsets = [direction_offset(d) for d in range(26)]
    assert len(set(offsets)) == 26 and (0, 0, 0) not in offsets
    for d in range(26):
        assert tuple(-c for c in offsets[d]) == direction_offset(opposite(d))
    # in the order of loops over dz, dy, dx from -1 to 1, the voxel itself skipped (the claim rules count so)
    loops = [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) != (0, 0, 0)]
    assert offsets == loops


def lattice_params(shape, coarsening=1):
    from gpusim.kernels.params import N_PARAMS
    from gpusim.parameters import set_extents

    params = np.zeros(N_PARAMS, dtype=np.int64)
    set_extents(params, shape, coarsening)
    return params


def test_neighbour_stops_at_closed_walls():
    fn = compile_device(neighbour, "cpu")
    corner = 0
    outside = [d for d in range(26) if fn(corner, d, lattice_params((4, 4, 4))) < 0]
    assert len(outside) == 26 - 7  # a corner voxel has 7 neighbours


DIVISORS = [1, 2, 3, 7, 9, 26, 630, 630 * 630, 1358 * 1358, 1625 * 1625, 2**16 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32]


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "numba"])
def test_quotient_divides_every_index_below_two_to_the_32_exactly(compiled):
    """A voxel's coordinates come from two divisions done as multiplications (kernels.lattice.quotient): exact
    for every index a lattice has, at the edges of each quotient and at random, compiled or run as Python (as
    numba's CUDA simulator does)."""
    from gpusim.kernels.lattice import division_magic, quotient

    fn = compile_device(quotient, "cpu") if compiled else quotient
    rng = np.random.default_rng(7)
    for divisor in DIVISORS:
        high, low = division_magic(divisor)
        multiples = divisor * rng.integers(0, 2**32 // divisor + 1, 50)
        numbers = np.concatenate([[0, 1, divisor - 1, divisor, divisor + 1, 2**32 - 1, 2**31],
                                  multiples - 1, multiples, multiples + 1, rng.integers(0, 2**32, 200)])
        for n in numbers[(numbers >= 0) & (numbers < 2**32)]:
            assert fn(np.int64(n), np.int64(high), np.int64(low)) == int(n) // divisor, (int(n), divisor)
    with pytest.raises(ValueError, match="divisor"):
        division_magic(0)
    with pytest.raises(ValueError, match="divisor"):
        division_magic(2**32 + 1)


@pytest.mark.parametrize("shape", [(3, 3, 3), (5, 7, 11), (64, 64, 64), (1358, 1358, 1358), (1625, 1625, 1625),
                                   (1024, 2048, 2048)])
def test_voxel_coords_are_the_lattices_own_up_to_the_largest_lattice(shape):
    """(z, y, x) from a voxel's index by the divisors in params equal numpy's, on lattices up to 2**32 voxels
    (1024 x 2048 x 2048); a larger one is refused."""
    from gpusim.kernels.lattice import voxel_coords

    fn = compile_device(voxel_coords, "cpu")
    params = lattice_params(shape)
    voxels = np.prod(shape)
    rng = np.random.default_rng(3)
    for v in np.concatenate([[0, 1, shape[2] - 1, shape[2], voxels - 1], rng.integers(0, voxels, 300)]):
        assert tuple(fn(np.int64(v), params)) == np.unravel_index(v, shape)
    with pytest.raises(ValueError, match="more than 4,294,967,296"):
        lattice_params((1024, 2048, 2049))


def test_invariants_hold_every_step_through_divisions_deaths_moves_sorts_and_doses(small):
    cfg, _ = small
    sim = Simulation(cfg, debug=True)  # debug checks after every step and raises on a broken invariant
    sim.run()
    series = sim.timeseries.arrays()
    assert series["births_tumour"].sum() > 20
    assert series["deaths_tumour"].sum() > 20
    assert series["deaths_car_t"].sum() > 0
    assert series["moves"].sum() > 100
    assert series["dosed_car_t"].sum() == 80


def test_invariant_check_catches_a_broken_grid(small):
    cfg, _ = small
    sim = Simulation(cfg)
    sim.state.occ[sim.state["voxel"][0]] = -1
    with pytest.raises(AssertionError, match="occupancy"):
        sim.state.check_invariants()


def test_ids_are_never_reused(small):
    cfg, _ = small
    sim = Simulation(cfg, debug=True)
    seen = set(sim.state.snapshot()["agent_id"].tolist())
    for _ in range(60):
        before = sim.state.next_id
        sim.step()
        ids = set(sim.state.snapshot()["agent_id"].tolist())
        new = ids - seen
        assert all(i >= before for i in new)
        seen |= ids


def test_population_bookkeeping_adds_up(small):
    cfg, _ = small
    sim = Simulation(cfg)
    sim.run()
    s = sim.timeseries.arrays()
    for kind in ("tumour", "car_t"):
        cells = s[f"cells_{kind}"]
        change = s[f"births_{kind}"][1:] - s[f"deaths_{kind}"][1:] + s[f"dosed_{kind}"][1:]
        assert np.array_equal(np.diff(cells), change)


def test_tumour_grows_and_crowded_cells_wait(small):
    cfg, _ = small_config(tumour={"apoptosis_rate": "0 /h", "cycle_time": "2 h"}, dose=[])
    sim = Simulation(cfg)
    start = sim.timeseries.last()["cells_tumour"]
    sim.run()
    last = sim.timeseries.last()
    assert last["cells_tumour"] > start * 1.2
    assert last["tumour_quiescent"] > 0  # the core has no room to divide


def test_daughters_sit_next_to_their_parents():
    cfg, _ = small_config(tumour={"apoptosis_rate": "0 /h", "cycle_time": "1 h", "initial_cells": 50}, dose=[])
    sim = Simulation(cfg)
    before = sim.state.snapshot()
    sim.run(90)
    after = sim.state.snapshot()
    assert after["agent_id"].size > before["agent_id"].size
    # every tumour cell keeps a tumour neighbour: growth is by adjacent daughters, not scattering
    shape = cfg.lattice.shape
    occ = after["occ"].reshape(shape)
    zz, yy, xx = np.unravel_index(after["voxel"], shape)
    for z, y, x in zip(zz, yy, xx):
        block = occ[max(z - 1, 0) : z + 2, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        assert np.count_nonzero(block >= 0) >= 2


def test_effectors_wander_and_tumour_cells_stay_put_without_effectors():
    cfg, _ = small_config(
        tumour={"apoptosis_rate": "0 /h", "cycle_time": "100 d"},
        effectors={"car_t": {"lifespan": "100 d"}},
        dose=[{"time": "0 min", "count": 40, "placement": "uniform"}],
    )
    sim = Simulation(cfg, debug=True)
    start = sim.state.snapshot()
    sim.run(60)
    end = sim.state.snapshot()
    a, b = paired(start, end)
    moved = a != b
    kind, _ = paired(start, end, "kind")
    assert moved[kind == CAR_T].mean() > 0.8
    # tumour cells only move when an effector squeezes past them
    assert moved[kind == TUMOUR].mean() < 0.2


def test_speed_sets_the_distance_walked():
    def displacement(speed):
        cfg, _ = small_config(
            lattice={"shape": [32, 32, 32]},
            tumour={"initial_cells": 0},
            effectors={"car_t": {"speed": speed, "persistence": "30 min", "lifespan": "100 d"}},
            dose=[{"time": "0 min", "count": 200, "placement": "uniform"}],
        )
        sim = Simulation(cfg)
        start = sim.state.snapshot()
        sim.run(40)
        end = sim.state.snapshot()
        a, b = paired(start, end)
        a, b = np.array(np.unravel_index(a, (32, 32, 32))), np.array(np.unravel_index(b, (32, 32, 32)))
        return np.sqrt(((a - b) ** 2).sum(axis=0)).mean()

    assert displacement("8 um/min") > 2 * displacement("2 um/min")


def test_rim_dose_lands_closer_to_the_tumour_than_uniform():
    def mean_distance(placement):
        cfg, _ = small_config(
            lattice={"shape": [32, 32, 32]},
            tumour={"initial_cells": 2000},
            dose=[{"time": "0 min", "count": 200, "placement": placement}],
        )
        sim = Simulation(cfg)
        snap = sim.state.snapshot()
        z, y, x = np.unravel_index(snap["voxel"][snap["kind"] == CAR_T], (32, 32, 32))
        return np.sqrt((z - 16.0) ** 2 + (y - 16.0) ** 2 + (x - 16.0) ** 2).mean()

    rim = mean_distance("rim")
    radius = (3 * 2000 / (4 * np.pi)) ** (1 / 3)
    assert abs(rim - radius) < 2.5
    assert mean_distance("uniform") > rim + 2


def test_the_agent_table_takes_what_the_memory_preflight_counts(small):
    """After compactions and sorts the table holds its columns, its scratch and work arrays and a spare row for
    the one dtype that has no scratch array: capacity x bytes_per_agent(), the figure the preflight uses.  A
    CAR-T run against a single-antigen tumour holds 2 of the 6 species and 1 of the 2 set points."""
    from gpusim.state import bytes_per_agent

    cfg, _ = small
    sim = Simulation(cfg)
    sim.run(45)  # a sort every 20 steps, a compaction in every step with deaths, a dose at 10
    s = sim.state
    arrays = {id(a): a for a in [*s.columns.values(), *s.scratch.values(), *s.work.values(), *s.spares]}
    assert sum(sim.timeseries.arrays()["deaths_tumour"]) > 0 and s.spares
    assert sum(a.nbytes for a in arrays.values()) == s.capacity * bytes_per_agent(s.held)
    assert s["pools"].shape[0] == 2 and s["set_points"].shape[0] == 1
    assert bytes_per_agent(s.held) <= 82 and bytes_per_agent() <= 102


def test_a_billion_agents_need_at_most_100_bytes_each():
    """The target for one H200: the benchmark scenario at 1e9 agents (CAR-T around a single-antigen tumour, 2.5
    voxels per agent) in at most 100 bytes an agent, lattice and the first table's headroom included, by the
    preflight's count (which an H200's memory pool matched within 1% at 1e8 and 1e9 agents)."""
    from gpusim import bench
    from gpusim.config import validate
    from gpusim.engine import memory_needed

    assert memory_needed(validate(bench.scenario(10**9, 10))) <= 100 * 10**9


def test_a_table_refuses_columns_with_molecules_of_a_species_it_does_not_hold():
    """Loading a checkpoint into a table without a row for a species must not drop molecules silently."""
    from gpusim import backend as backends
    from gpusim.state import State

    held = {"pools": np.array([0, -1, 1, -1, -1, -1]), "set_points": np.array([0, -1])}
    state = State(backends.select("cpu"), (8, 8, 8), capacity=16, held=held)
    state.append(3)
    columns = state.host_columns()
    assert columns["pools"].shape == (6, 3)
    columns["pools"][2] = [5, 6, 7]  # CAR, the table's second row
    state.load_columns(columns, 3)
    assert np.array_equal(state.view("pools")[1], [5, 6, 7])
    columns["pools"][1, 0] = 1  # antigen B, which it holds no row for
    with pytest.raises(ValueError, match="pools: a row this run's table does not hold is not 0"):
        state.load_columns(columns, 3)


def test_room_for_the_next_steps_daughters_is_a_small_bound_that_always_holds():
    """The table is sized before each step for the cells that could divide in it (due tumour cells with an
    empty or effector neighbour, activated effectors with their clock run out): a bound the engine checks
    every step (a daughter beyond it stops the run), and a tight one, so a growing tumour does not need a
    table twice its size."""
    cfg, _ = small_config(lattice={"shape": [24, 24, 24]},
                          tumour={"initial_cells": 4000, "cycle_time": "3 h", "apoptosis_rate": "0.2 /h"},
                          effectors={"car_t": {"lifespan": "5 h", "division_time": "1 min", "synapse_time": "2 min"}})
    sim = Simulation(cfg)
    bounds, births = [], []
    while not sim.done:
        bound, cells = sim._daughters_next, sim.state.n
        sim.step()
        row = sim.timeseries.last()
        births.append(row["births_tumour"] + row["births_car_t"])
        bounds.append(bound / cells)
    assert all(b > 0 for b in births) and sum(births) > 1000  # daughters in every step
    assert max(bounds) < 0.05


def test_more_daughters_than_the_table_has_room_for_stop_the_run():
    """Were the bound on a step's daughters ever wrong, the run stops with an internal error; no daughter is
    written past the table."""
    cfg, _ = small_config(tumour={"initial_cells": 500, "cycle_time": "30 min", "apoptosis_rate": "0 /h"})
    sim = Simulation(cfg)
    with pytest.raises(RuntimeError, match="daughters where at most 0 were possible"):
        for _ in range(60):
            sim._daughters_next = 0  # as if the bound had missed every candidate
            sim.state._allocate(sim.state.n)  # and the table had no slot to spare
            sim.step()


@pytest.mark.parametrize("chunk", [1 << 24, 777])
def test_placement_takes_the_free_voxels_with_the_smallest_keys(small, monkeypatch, chunk):
    """New cells go to the free voxels whose placement keys are smallest (ties in voxel order), as sorting every
    free voxel by its key would choose; the selection, which holds nothing per voxel, is checked against that
    sort, for the ball, the rim and uniform placement, with the lattice walked in one chunk or many, and with
    more cells wanted than there are free voxels."""
    from gpusim import dosing
    from gpusim import state as state_module
    from gpusim.kernels.occupancy import placement_key

    monkeypatch.setattr(state_module, "VOXEL_CHUNK", chunk)
    cfg, _ = small
    sim = Simulation(cfg)
    sim.run(12)  # a tumour ball and a rim dose already placed
    key = compile_device(placement_key, "cpu")
    occ = sim.state.occ
    free = np.flatnonzero(occ < 0)
    for placement in (dosing.Placement.BALL, dosing.Placement.RIM, dosing.Placement.UNIFORM):
        ranking, _ = dosing._key_arguments(sim, placement)
        keys = np.array([key(v, sim.seed, sim.clock, *ranking.values(), sim.params) for v in free], dtype=np.uint64)
        by_key = free[np.argsort(keys, kind="stable")]
        for count in (0, 1, 37, 1000, free.size, free.size + 5):
            out = np.full(count, -1, dtype=np.int64)
            placed = dosing.choose_voxels(sim, count, placement, out)
            assert placed == min(count, free.size)
            assert np.array_equal(out[:placed], np.sort(by_key[:count])), (placement, count)


def test_the_table_grows_only_as_far_as_memory_allows(monkeypatch):
    """The table grows by half when it must, but never past what the backend's memory holds (the old table's
    rows of one dtype are copied at a time); when even the cells it must hold would not fit, it says so."""
    from gpusim import backend as backends
    from gpusim.state import State, bytes_per_agent

    state = State(backends.select("cpu"), (8, 8, 8), capacity=100)
    state.reserve(120)
    assert state.capacity == 151  # plenty of memory: by half
    largest = max(a.nbytes for a in state.storage.values())
    room_for = 170  # slots the backend's free memory, the old table less its largest column, would hold
    free = -(-(room_for * bytes_per_agent()) // 0.95) - state.table_bytes() + largest
    monkeypatch.setattr(state.backend, "memory_available", lambda: free)
    state.reserve(160)
    assert state.capacity == 170  # not 227
    monkeypatch.setattr(state.backend, "memory_available", lambda: 0)
    with pytest.raises(RuntimeError, match="cannot grow to 400 cells"):
        state.reserve(400)
    assert state.capacity == 170


def test_the_memory_preflight_bounds_what_a_run_allocates():
    """On the CPU backend every array is host memory that tracemalloc sees: from set-up (placing the tumour and a
    rim infusion) through steps with births, deaths, compaction and a sort, the run never holds more than the
    preflight counts, and the preflight is not so pessimistic that it would refuse runs that fit."""
    from gpusim import bench
    from gpusim.config import validate
    from gpusim.engine import memory_needed

    cfg = validate(bench.scenario(100_000, 5))
    bench.compile_rules()
    sim, _, peak, _ = bench.traced_memory(cfg, 4)
    row = sim.timeseries.last()
    assert row["births_tumour"] > 0 and row["deaths_tumour"] > 0 and row["cells_car_t"] > 9000
    assert peak <= memory_needed(cfg) <= 1.5 * peak


@pytest.mark.parametrize("held", [None, {"pools": [-1, 0, -1, -1, 1, -1], "set_points": [-1, -1]}])
def test_reordering_the_table_keeps_every_value_with_its_cell(held):
    """Compaction and sorting move every column's rows through the free rows of their dtype's block
    (RowBlock), up and down by turns and in blocks that may not fill the free rows; after any run of reorders
    each slot holds every value of the cell it was given, and no scratch array or spare row aliases a column."""
    from gpusim import backend as backends
    from gpusim.state import COLUMNS, State

    rng = np.random.default_rng(5)
    state = State(backends.select("cpu"), (8, 8, 8), capacity=64, held=held)
    state.append(50)
    for name in COLUMNS:  # distinct values in every row, within each dtype's range
        column = state.view(name)
        column[...] = rng.integers(0, 100, size=column.shape)
    state.view("voxel")[...] = rng.permutation(512)[:50]
    expected = state.host_columns()
    for _ in range(5):
        order = rng.permutation(50).astype(np.int32)
        state.work["listing"][:50] = order
        state._gather(state.work["listing"], 50)
        expected = {name: values[..., order] for name, values in expected.items()}
        for name, values in state.host_columns().items():
            assert np.array_equal(values, expected[name]), name
    columns = [state[name] for name in COLUMNS]
    for other in [*state.scratch.values(), *state.spares]:
        assert not any(np.shares_memory(other, column) for column in columns)
    assert state["set_points"].shape[0] == (2 if held is None else 1)  # a table is never handed an empty array


@pytest.mark.parametrize("chunk", [1 << 24, 1 << 14])
def test_what_walks_the_lattice_holds_no_more_than_the_preflight_counts(monkeypatch, chunk):
    """Placing cells, sorting the table by voxel and painting a snapshot each walk the lattice a chunk at a
    time; what each holds beyond the run's arrays stays within what the preflight counts for it
    (tracemalloc sees every array on the CPU backend), with the whole lattice in one chunk or many."""
    import tracemalloc

    from gpusim import dosing
    from gpusim import state as state_module

    monkeypatch.setattr(state_module, "VOXEL_CHUNK", chunk)
    monkeypatch.setattr(dosing, "COUNTED_AT_ONCE", 1 << 12)  # so counting's bound is well below a chunk's arrays
    cfg, _ = small_config(lattice={"shape": [96, 96, 96]}, tumour={"initial_cells": 20_000})
    sim = Simulation(cfg)
    sim.run(3)
    voxels = 96**3  # so that a chunk's arrays outweigh the fixed histograms
    wanted = 800_000  # most of the free voxels: a chunk's list is as long as it gets
    out = np.empty(wanted, dtype=np.int64)

    def held_beyond_the_run(work):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            result = work()
            return tracemalloc.get_traced_memory()[1] - before, result
        finally:
            tracemalloc.stop()

    dosing.choose_voxels(sim, wanted, dosing.Placement.RIM, out)  # the launchers loaded before measuring
    sim.state.sort_by_voxel()
    sim.kind_volume()
    for placement in (dosing.Placement.RIM, dosing.Placement.UNIFORM):
        held, placed = held_beyond_the_run(lambda: dosing.choose_voxels(sim, wanted, placement, out))
        assert placed == wanted and held <= dosing.placement_bytes(voxels)
    python_objects = 64 * 1024  # tracemalloc also sees the interpreter's own small objects
    held, _ = held_beyond_the_run(sim.state.sort_by_voxel)
    assert held <= state_module.sort_bytes(voxels) + python_objects
    sim.state.check_invariants()
    held, volume = held_beyond_the_run(sim.kind_volume)
    assert held <= volume.nbytes + min(voxels, chunk) * 4 + python_objects  # the host volume, a chunk on the device


def test_growing_the_table_holds_the_old_and_new_tables_only_a_block_at_a_time():
    """Growth copies one dtype's block of rows at a time and lets the old block go before the next: at most
    the new table and the old one's largest block beyond the old table, which is what affordable_slots()
    assumes (tracemalloc sees every array on the CPU backend)."""
    import tracemalloc

    from gpusim import backend as backends
    from gpusim.state import State, bytes_per_agent

    tracemalloc.start()
    try:
        state = State(backends.select("cpu"), (8, 8, 8), capacity=200_000)
        state.append(100)
        old_table = state.table_bytes()
        largest = max(a.nbytes for a in state.storage.values())
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        state.reserve(250_000)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert state.capacity == 300_001
    assert peak <= state.capacity * bytes_per_agent() - old_table + largest


def test_debug_mode_names_a_phase_that_uses_two_scratch_arrays_of_one_row(small):
    """The shared scratch rows (gpusim.state.SHARED_SCRATCH): a whole debug run uses each row for one array a
    phase; a phase that took the synapse's taken_a and the births' rank at once would have one overwrite the
    other, and debug mode says so, naming the phase and both arrays."""
    from gpusim.state import SHARED_SCRATCH, ScratchRowConflict

    cfg, _ = small
    sim = Simulation(cfg, debug=True)
    sim.run(6)  # every phase, births and compaction included, keeps to one array a row
    s = sim.state
    for shared, host in SHARED_SCRATCH.items():
        s.enter_phase("synapse")
        s[host], s[host]  # the same array twice is one user
        with pytest.raises(ScratchRowConflict, match=f"phase synapse: scratch arrays {host} and {shared} share"):
            s[shared]
        s.enter_phase("divide")
        s[shared]  # the next phase may take the row for the other
    unwatched = Simulation(cfg)
    unwatched.state.enter_phase("synapse")
    unwatched.state["taken_a"], unwatched.state["rank"]  # outside debug mode nothing is recorded


def test_a_step_launches_what_its_reach_counts(small):
    """gpusim.engine.STEP_LAUNCHES lists the rules a step runs over its cells that reach beyond a cell's voxel;
    their reaches add up to the layers a process holding a slab of the lattice must see around it.  A step
    with every phase busy (a synapse, moves, births, deaths, the fields, a dose, a depletion, the sort,
    compaction) launches exactly those, in that order, and nothing else that reaches farther than its own
    voxel (the fields' grid aside)."""
    from gpusim.engine import STEP_LAUNCHES, STEP_REACH
    from gpusim.kernels.decorators import GRID, launched_rules, reach

    cfg, _ = small_config(fields={"oxygen": {}, "chemokine": {}, "every": "1 min", "settle": 1},
                          run={"sort_every": "1 min"},
                          dose=[{"time": "0 min", "count": 80, "placement": "rim"},
                                {"time": "5 min", "count": 20, "placement": "uniform"}],
                          depletion=[{"time": "5 min", "kind": "car_t"}])
    sim = Simulation(cfg)
    sim.run(4)
    launched = []
    plain = sim.launch

    def recording(fn, extent, *args, **options):
        launched.append(fn)
        return plain(fn, extent, *args, **options)

    sim.launch = recording
    sim.step()  # step 5: the dose and the depletion as well
    assert {"deplete", "equip_cell", "sense_oxygen"} <= {fn.__name__ for fn in launched} and sim.clock == 5
    reaching = [fn for fn in launched if reach(fn) not in (0, GRID)]
    assert reaching == [fn for fn in STEP_LAUNCHES if reach(fn) not in (0, GRID)]
    assert STEP_REACH == sum(reach(fn) for fn in reaching) == 14
    # every rule that reaches beyond its voxel is one the list counts (compaction and the sort launch through
    # the table itself, and reach no farther)
    assert {fn for fn in launched_rules().values() if reach(fn) not in (0, GRID)} == set(reaching)


def test_a_rule_must_say_how_far_it_reaches():
    from gpusim.kernels.decorators import rule

    def look_around(i, occ):
        pass

    with pytest.raises(TypeError, match="look_around must declare its reach"):
        rule(look_around)
    with pytest.raises(TypeError, match="must declare its reach"):
        rule(reach=-1)(look_around)
