"""Splitting a run across MPI ranks: the slabs, the halo a step needs, and who is who under mpiexec."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpusim.engine import STEP_REACH
from gpusim.parallel import DecompositionError, imbalance, launched_ranks, local_rank, plan_slabs

from helpers import run_gpusim, run_script

MPIEXEC = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's (pip install 'gpusim[mpi]')


def test_the_layers_are_shared_evenly_and_each_rank_holds_a_halo_as_deep_as_a_step_reaches():
    slabs = plan_slabs(64, 4)
    assert [(s.start, s.stop) for s in slabs] == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert STEP_REACH == 14
    assert [(s.below, s.above) for s in slabs] == [(0, 14), (14, 14), (14, 14), (14, 0)]
    assert slabs[1].held == (2, 46) and slabs[0].held == (0, 30)
    assert plan_slabs(10, 1) == plan_slabs(10, 1, halo=0)  # one rank: the whole lattice, no halo
    assert [s.layers for s in plan_slabs(43, 3)] == [14, 14, 15]


@pytest.mark.parametrize("depth, ranks, most", [(41, 3, 2), (27, 2, 1), (100, 8, 7)])
def test_a_lattice_too_shallow_for_the_ranks_is_refused_naming_how_many_it_allows(depth, ranks, most):
    with pytest.raises(DecompositionError, match=rf"{ranks} ranks need at least {ranks * 14} layers along z .* "
                                                 rf"lattice.shape gives {depth}: run on at most {most} rank"):
        plan_slabs(depth, ranks)


def test_slabs_balanced_by_cells_put_the_boundaries_where_the_tumour_is():
    """A tumour in the middle of the lattice: even slabs leave the outer ranks nearly idle; slabs moved to
    where the cells are share them far better, and none is thinner than the halo."""
    depth = 200
    layer_cells = [max(0, 2500 - (z - 100) ** 2) for z in range(depth)]  # cells per layer of a ball of radius 50
    even, balanced = plan_slabs(depth, 4), plan_slabs(depth, 4, layer_cells=layer_cells)
    assert all(s.layers >= STEP_REACH for s in balanced)
    assert balanced[0].start == 0 and balanced[-1].stop == depth
    assert imbalance(layer_cells, even) > 1.9 and imbalance(layer_cells, balanced) < 1.05
    assert imbalance([0] * depth, even) == 1.0


def test_the_launchers_variables_say_how_many_ranks_and_which_gpu():
    assert launched_ranks({}) == 1 and local_rank({}) == 0
    assert launched_ranks({"PMI_SIZE": "4", "MPI_LOCALRANKID": "3"}) == 4
    assert local_rank({"OMPI_COMM_WORLD_LOCAL_RANK": "2"}) == 2
    assert launched_ranks({"OMPI_COMM_WORLD_SIZE": "8"}) == 8 and launched_ranks({"SLURM_STEP_NUM_TASKS": "2"}) == 2
    with pytest.raises(ValueError, match="PMI_SIZE='two'"):
        launched_ranks({"PMI_SIZE": "two"})


def test_under_mpiexec_every_rank_reads_the_world_mpi_has(tmp_path):
    """mpiexec from the mpich wheel, 3 ranks oversubscribed on this machine's cores: what gpusim reads from
    the environment, without MPI, is what MPI itself says."""
    assert MPIEXEC.exists(), "pip install 'gpusim[mpi]' brings mpiexec (the test extra includes it)"
    script = ("from mpi4py import MPI\n"
              "from gpusim.parallel import launched_ranks, local_rank\n"
              "world = MPI.COMM_WORLD\n"
              "seen = (world.Get_rank(), world.Get_size(), launched_ranks(), local_rank())\n"
              "open(f'rank-{world.Get_rank()}.txt', 'w').write(' '.join(map(str, seen)))\n")
    result = subprocess.run([str(MPIEXEC), "-n", "3", sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = sorted(tuple(map(int, path.read_text().split())) for path in tmp_path.glob("rank-*.txt"))
    assert rows == [(0, 3, 3, 0), (1, 3, 3, 1), (2, 3, 3, 2)]


def test_a_plain_run_never_loads_mpi(tmp_path):
    check = ("import sys; from gpusim import cli; "
             f"code = cli.main(['run', 'tiny', '-o', {str(tmp_path / 'x.ome.zarr')!r}, '--quiet']); "
             "print(code, 'mpi4py' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0", "False"]


@pytest.mark.parametrize("ranks", [2, 3])
def test_cells_go_to_the_slab_they_sit_in_and_to_the_halos_that_reach_them(ranks):
    """A real table routed to the ranks of a split lattice: each cell is stepped by exactly one rank (the one
    whose slab holds it) and copied, marked GHOST, to the ranks whose halo reaches it; put back together, the
    ranks' own cells are the table again, column for column."""
    import numpy as np

    from gpusim.engine import Simulation
    from gpusim.kernels.cells import GHOST
    from gpusim.parallel import global_columns, local_columns, route
    from gpusim.state import COLUMNS

    from helpers import small_config

    shape = (44, 10, 10)
    cfg, _ = small_config(lattice={"shape": list(shape)}, tumour={"initial_cells": 1500},
                          dose=[{"time": "0 min", "count": 200, "placement": "uniform"}])
    sim = Simulation(cfg)
    sim.run(5)
    table = sim.state.snapshot()
    columns = {name: table[name] for name in COLUMNS}
    z = columns["voxel"] // (shape[1] * shape[2])
    slabs = plan_slabs(shape[0], ranks)
    routed = route(columns["voxel"], shape, slabs)
    owned_somewhere = np.concatenate([owned for owned, _ in routed])
    assert np.array_equal(np.sort(owned_somewhere), np.arange(z.shape[0]))  # each cell stepped once
    parts = []
    for slab, (owned, halo) in zip(slabs, routed):
        assert np.all((z[owned] >= slab.start) & (z[owned] < slab.stop))
        first, stop = slab.held
        in_halo = ((z >= first) & (z < slab.start)) | ((z >= slab.stop) & (z < stop))
        assert np.array_equal(halo, np.flatnonzero(in_halo)) and (halo.size > 0) == (ranks > 1)
        part = local_columns(columns, owned, halo, slab, shape)
        local_z = part["voxel"] // (shape[1] * shape[2])
        assert local_z.min() >= 0 and local_z.max() < stop - first
        assert np.array_equal((part["state"] & GHOST) != 0, np.arange(owned.size + halo.size) >= owned.size)
        parts.append(part)
    joined = global_columns(parts, slabs, shape)
    for name in COLUMNS:
        assert np.array_equal(joined[name], columns[name]), name


@pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")  # the hash wraps, as on a GPU
def test_a_ranks_layers_know_where_they_are_in_the_tissue():
    """A rank holding layers 18 to 40 of a 44-layer lattice counts its voxels from its first layer, yet what
    depends on where a voxel is in the tissue comes out as in the whole lattice: its voxel in the fields'
    grid, its placement key (distance from a centre, and the random draw keyed by the tissue voxel), and a
    tumour cell's share of the centre of mass."""
    import numpy as np

    from gpusim.kernels import params as P
    from gpusim.kernels.diffusion import grid_voxel
    from gpusim.kernels.lattice import tissue_coords, voxel_coords
    from gpusim.kernels.occupancy import placement_key
    from gpusim.parameters import set_extents

    shape, held, coarsening = (44, 10, 12), (18, 40), 2
    whole, part = np.zeros(P.N_PARAMS, np.int64), np.zeros(P.N_PARAMS, np.int64)
    set_extents(whole, shape, coarsening)
    set_extents(part, shape, coarsening, held=held)
    assert part[P.NZ] == 22 and part[P.FIRST_LAYER] == 18 and part[P.GRID_NZ] == whole[P.GRID_NZ] == 22
    offset = held[0] * shape[1] * shape[2]
    for local in np.random.default_rng(3).integers(0, 22 * 10 * 12, 200):
        tissue = int(local) + offset
        assert tissue_coords(int(local), part) == voxel_coords(tissue, whole)
        assert grid_voxel(int(local), part) == grid_voxel(tissue, whole)
        for by_distance in (0, 1):
            ranking = dict(centre_z=22, centre_y=5, centre_x=6, radius_sq=49, by_distance=by_distance)
            assert placement_key(int(local), 7, 3, params=part, **ranking) == \
                placement_key(tissue, 7, 3, params=whole, **ranking)
    with pytest.raises(ValueError, match="layers 30 to 50 are not within the lattice's 44"):
        set_extents(part, shape, held=(30, 50))


@pytest.mark.parametrize("ranks", [2, 3])
def test_after_a_step_the_ranks_exchange_exactly_the_cells_each_needs(tmp_path, ranks):
    """Under mpiexec: every rank starts from its slab and halo of a real table, its own cells move up to a
    step's reach (some into a neighbour's slab), and after the exchange each rank holds exactly the cells the
    moved table routes to it, every column equal, its halo marked GHOST."""
    assert MPIEXEC.exists(), "pip install 'gpusim[mpi]' brings mpiexec (the test extra includes it)"
    tests = Path(__file__).parent
    result = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(tests / "exchange_run.py"),
                             str(tests)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "NUMBA_NUM_THREADS": "1"})  # ranks oversubscribe the cores
    assert result.returncode == 0, result.stderr[-3000:]
    answers = {path.name: path.read_text() for path in tmp_path.glob("rank-*.txt")}
    assert answers == {f"rank-{r}.txt": "ok" for r in range(ranks)}


@pytest.mark.parametrize("simulated", [False, True], ids=["cpu", "cuda-simulator"])
def test_ghost_cells_add_nothing_to_a_steps_tallies(simulated):
    """A rank steps copies of its neighbours' cells (GHOST) beside its own; only its own may be counted.  From
    one checkpoint, three steps with no cell marked, with half of the cells marked and with the other half:
    every census and ledger of the whole is the sum of the halves', and neither half alone gives the whole
    (tests/ghost_tally_run.py; the step had births, deaths and engagements, so each kind of tally is seen)."""
    env = {"NUMBA_ENABLE_CUDASIM": "1", "GPUSIM_BACKEND": "cuda"} if simulated else {"GPUSIM_BACKEND": "cpu"}
    result = run_script("ghost_tally_run.py", Path(__file__).parent, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["sums_equal"] and report["halves_differ"], report
    assert report["births"] > 0 and report["deaths"] > 0 and report["engagements"] > 0, report


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_a_run_split_across_ranks_equals_one_process_bit_for_bit(tmp_path, ranks):
    """tests/split_run.py under ``mpiexec -n ranks`` (oversubscribed: one numba thread a rank): a tumour across
    every slab, infusions at the rim and at random, fields, necrosis, divisions of tumour cells and CAR-T cells,
    migration, a depletion.  In debug mode every rank checks its lattice invariants and the whole run's (ids
    unique over the ranks, none reused) after every step; at the end the time series, the ranks' cells put
    together and the fields equal the single process's, and each rank held only its slab and halo."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    result = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(Path(__file__).parent / "split_run.py"),
                             str(tmp_path), "20"], env=env, capture_output=True, text=True, timeout=900)
    errors = [(tmp_path / f"rank-{r}.txt").read_text() for r in range(ranks) if (tmp_path / f"rank-{r}.txt").exists()]
    assert result.returncode == 0 and errors == ["ok"] * ranks, (errors, result.stderr[-3000:])
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["problems"] == []
    for phenomenon in ("births_tumour", "births_car_t", "deaths_necrosis", "deaths_depletion", "engagements", "moves"):
        assert report[phenomenon] > 0, phenomenon
    plane = 10 * 10
    assert report["voxels"] == [(stop - first) * plane for first, stop in report["slabs"]]
    if ranks > 1:
        assert max(report["held"]) < report["cells"]  # no rank holds every cell


def test_a_split_run_on_the_cuda_backend_equals_one_process_in_the_cuda_simulator(tmp_path):
    """The GPU launch path of a split run (numba's CUDA kernels, the GHOST flag gating their tallies, the
    exchange of the backend's table) under numba's CUDA simulator, 2 ranks, a few steps of tests/split_run.py
    with fewer cells: the same time series, cells and fields as one process on that backend."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "NUMBA_ENABLE_CUDASIM": "1", "GPUSIM_BACKEND": "cuda"}
    result = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(Path(__file__).parent / "split_run.py"),
                             str(tmp_path), "6", "300"], env=env, capture_output=True, text=True, timeout=1200)
    errors = [(tmp_path / f"rank-{r}.txt").read_text() for r in range(2) if (tmp_path / f"rank-{r}.txt").exists()]
    assert result.returncode == 0 and errors == ["ok", "ok"], (errors, result.stderr[-3000:])
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["problems"] == [] and report["backend"] == "cuda (CUDA simulator)"
    assert report["births_tumour"] > 0 and report["engagements"] > 0 and report["moves"] > 0


SPLIT = ["tiny", "--set", "run.duration=40 min", "--set", "run.snapshot_every=10 min", "--set",
         "run.checkpoint_every=10 min", "--set", "lattice.shape=[42, 12, 12]", "--set", "tumour.initial_cells=900",
         "--set", "dose.0.time=5 min", "--set", "dose.0.count=150", "--set", "tumour.cycle_time=1 h", "--quiet"]


def gpusim_on(ranks, *args, **popen):
    """``gpusim ARGS`` under ``mpiexec -n ranks`` (one numba thread a rank: 2 cores oversubscribed)."""
    command = [str(MPIEXEC), "-n", str(ranks), sys.executable, "-m", "gpusim", *map(str, args)]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(command, env=env, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def store_arrays(path):
    """Every array of a store by its path in the store (labels at every level, fields, agent tables,
    histograms, time series, the checkpoint)."""
    import zarr

    def walk(group, prefix):
        found = {prefix + name: array[...] for name, array in group.arrays()}
        for name, sub in group.groups():
            found.update(walk(sub, prefix + name + "/"))
        return found

    return walk(zarr.open_group(str(path), mode="r"), "")


def assert_same_store(one, other):
    a, b = store_arrays(one), store_arrays(other)
    assert sorted(a) == sorted(b) and len(a) > 100
    for name, values in a.items():
        assert np.array_equal(values, b[name], equal_nan=values.dtype.kind == "f"), name


def test_gpusim_run_under_mpiexec_writes_the_store_one_process_writes(tmp_path):
    """``mpiexec -n 3 gpusim run``: every array of the store (label images at every level, fields, agent
    tables, histograms, time series, the final checkpoint) equals a plain ``gpusim run``'s; the store says it
    ran on 3 ranks."""
    from gpusim.store import open_store

    one, three = tmp_path / "one.ome.zarr", tmp_path / "three.ome.zarr"
    assert run_gpusim("run", *SPLIT, "-o", one).returncode == 0
    result = gpusim_on(3, "run", *SPLIT, "-o", three)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_store(one, three)
    meta = open_store(three).meta
    assert meta["backend"].endswith("3 MPI ranks")
    assert sorted(map(int, meta["imbalance"])) == meta["snapshot_steps"]  # at every snapshot
    assert all(1.0 <= value <= 3.0 for value in meta["imbalance"].values())  # a tumour in the middle: up to K
    assert "imbalance" not in open_store(one).meta


def test_a_split_run_with_control_arms_runs_them_split_to_the_stores_one_process_writes(tmp_path):
    """hamieh2019_coculture (two control arms) for 30 min on 2 ranks: the run and both arms (STORE/arms/...)
    equal a plain run's, array for array."""
    short = ["hamieh2019_coculture", "--set", "run.duration=30 min", "--set", "run.snapshot_every=10 min", "--quiet"]
    one, two = tmp_path / "one.ome.zarr", tmp_path / "two.ome.zarr"
    assert run_gpusim("run", *short, "-o", one).returncode == 0
    result = gpusim_on(2, "run", *short, "-o", two)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {path.name for path in (two / "arms").iterdir() if path.is_dir()} == {"untreated", "no_trogocytosis"}
    assert_same_store(one, two)  # the arms' arrays among the store's


def test_a_split_run_killed_resumes_on_one_and_on_three_ranks_to_the_same_store(tmp_path):
    """A 2-rank run killed with SIGKILL after a checkpoint resumes on 1 rank and, killed again the same way, on
    3 ranks: both end where the uninterrupted run does, store for store."""
    import signal
    import shutil
    import time

    from test_resume import checkpoint_clock

    straight = tmp_path / "straight.ome.zarr"
    assert run_gpusim("run", *SPLIT, "-o", straight).returncode == 0
    killed = tmp_path / "killed.ome.zarr"
    process = gpusim_on(2, "run", *SPLIT, "-o", killed, "--set", "run.checkpoint_every=5 min",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while checkpoint_clock(killed) < 10 and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # mpiexec and every rank
    process.wait()
    stopped_at = checkpoint_clock(killed)
    assert 10 <= stopped_at < 40, "the run was not killed midway"
    again = tmp_path / "again.ome.zarr"
    shutil.copytree(killed, again)
    on_one = run_gpusim("resume", killed, "--quiet")
    assert on_one.returncode == 0, on_one.stderr
    on_three = gpusim_on(3, "resume", again, "--quiet")
    assert on_three.returncode == 0, on_three.stderr[-3000:]
    for resumed in (killed, again):
        assert_same_store_data(straight, resumed)


def assert_same_store_data(one, other):
    """As assert_same_store, but for the checkpoints a killed run leaves at other clocks."""
    a, b = store_arrays(one), store_arrays(other)
    final = {name for name in a if not name.startswith("checkpoints/")}
    assert final <= set(b)
    for name in final:
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name
    checkpoints = {name for name in a if name.startswith("checkpoints/")}
    for name in checkpoints:
        assert np.array_equal(a[name], b[name]), name


def test_a_split_run_refuses_more_ranks_than_its_lattice_has_room_for(tmp_path):
    """4 ranks need 56 layers along z (each slab as deep as a step reaches): one line, exit 2, nothing
    written, from every rank."""
    out = tmp_path / "x.ome.zarr"
    result = gpusim_on(4, "run", *SPLIT, "-o", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["gpusim: error: 4 ranks need at least 56 layers along z (each rank's slab as deep as the 14 "
                     "layers one step reaches, in blocks of 2); lattice.shape gives 42: run on at most 3 ranks"]
    assert not out.exists() and os.listdir(tmp_path) == []


def test_a_resume_on_more_ranks_than_the_lattice_has_room_for_is_refused_and_leaves_the_store(tmp_path):
    """A run stopped at 20 min resumed on 4 ranks (its lattice has room for 3): one line, exit 2, the store as
    it was (no writer's lock left behind: it then resumes on 2 ranks)."""
    from test_resume import checkpoint_clock

    store = tmp_path / "x.ome.zarr"
    assert run_gpusim("run", *SPLIT, "-o", store, "--stop-at", "20 min").returncode == 0
    before = sorted((path.relative_to(store), path.stat().st_mtime_ns) for path in store.rglob("*"))
    result = gpusim_on(4, "resume", store)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("lattice.shape gives 42: run on at most 3 ranks")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted((path.relative_to(store), path.stat().st_mtime_ns) for path in store.rglob("*")) == before
    resumed = gpusim_on(2, "resume", store, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert checkpoint_clock(store) == 40


def test_a_run_started_by_an_mpi_launcher_without_mpi4py_is_refused(tmp_path):
    """The launcher's variables say several processes, but mpi4py cannot be imported (a stand-in package
    that fails to import): one line, exit 2, nothing written."""
    fake = tmp_path / "fake"
    (fake / "mpi4py").mkdir(parents=True)
    (fake / "mpi4py" / "__init__.py").write_text("raise ImportError('no MPI library here')\n")
    out = tmp_path / "x.ome.zarr"
    result = run_gpusim("run", *SPLIT, "-o", out, env={"PMI_SIZE": "2", "PMI_RANK": "0",
                                                       "PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpusim: error: the MPI launcher started 2 processes, but mpi4py cannot be imported (no MPI library here); "
        "install it with pip install 'gpusim[mpi]'"]
    assert not out.exists()


def test_bench_ranks_measures_strong_and_weak_scaling(tmp_path):
    """``gpusim bench --ranks 1,2`` launches mpiexec itself: a row per rank count, strong and weak, with the bytes
    exchanged, the exchange's share of the step and the imbalance; a table, JSON and a plot.  (Figures are
    not judged here: benchmarks/RESULTS.md holds them.)"""
    plot, figures = tmp_path / "scaling.png", tmp_path / "scaling.json"
    result = run_gpusim("bench", "--ranks", "1,2", "--agents", "2e4", "--steps", "2", "--plot", plot, "--json", figures)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| strong | 2 x 1 |" in result.stdout and "| weak | 2 x 1 |" in result.stdout
    rows = json.loads(figures.read_text())["rows"]
    assert [(r["mode"], r["ranks"]) for r in rows] == [("strong", 1), ("strong", 2), ("weak", 2)]
    split = rows[1]
    assert split["bytes_sent_per_step"] > 0 and split["exchange_ms"] > 0 and split["imbalance"] >= 1.0
    assert len(split["cells_held"]) == 2 and sum(split["cells_stepped"]) <= sum(split["cells_held"])
    assert rows[0]["bytes_sent_per_step"] == 0 and plot.stat().st_size > 10_000
    assert run_gpusim("bench", "--ranks", "0,2").returncode == 2


def test_a_split_run_moves_its_slab_boundaries_to_where_the_cells_are(tmp_path):
    """A tumour in the middle of a 56-layer lattice on 3 even slabs: the middle rank steps every cell
    (imbalance 3).  At the first checkpoint the boundaries move to where the cells divide evenly (each slab still
    14 layers at least) and the imbalance halves; the store is still the one a single process writes."""
    from gpusim.store import open_store

    deeper = [*SPLIT, "--set", "lattice.shape=[56, 12, 12]"]
    one, three = tmp_path / "one.ome.zarr", tmp_path / "three.ome.zarr"
    assert run_gpusim("run", *deeper, "-o", one).returncode == 0
    result = gpusim_on(3, "run", *deeper, "-o", three)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_store(one, three)
    imbalance = open_store(three).meta["imbalance"]
    assert imbalance["0"] > 2.9  # as the slabs were planned: even
    assert all(value < 1.6 for clock, value in imbalance.items() if clock != "0")


class _Answers:
    """A stand-in communicator for rank ``rank`` of ``ranks`` whose allgather returns ``gathered`` (what every
    rank would have said)."""

    def __init__(self, rank, ranks, gathered):
        self.rank, self.ranks, self.gathered = rank, ranks, gathered

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.ranks

    def allgather(self, value):
        assert value == self.gathered[self.rank]
        return list(self.gathered)


def test_voxels_tied_at_the_threshold_are_taken_in_slab_order():
    """Placement wants 6 more voxels whose key equals the threshold; the 3 ranks hold 4, 5 and 3 of them: rank 0
    takes its 4, rank 1 the first 2 of its 5, rank 2 none — what one process walking the lattice in voxel order
    takes.  Without the ranks below counted, each would take min(its own, 6): 4 + 5 + 3 = 12."""
    from gpusim.parallel import SlabDomain

    slabs, tied = plan_slabs(42, 3), [4, 5, 3]
    taken = [SlabDomain(_Answers(r, 3, tied), (42, 8, 8), slabs).ties_to_take(6, lambda r=r: tied[r]) for r in range(3)]
    assert taken == [4, 2, 0] and sum(taken) == 6
