"""One rank of tests/test_parallel.py's exchange test (run under mpiexec): a real table split into slabs, its
cells moved as a step could move them, the ranks' exchange (gpusim.parallel.SlabDomain.after_step, in the
rank's table), and what each rank then holds against the split of the moved table.  Writes ``rank-N.txt`` in the working folder: ``ok`` or what differs."""

import sys

import numpy as np


def main():
    from mpi4py import MPI

    from gpusim.engine import Simulation
    from gpusim.kernels.cells import GHOST
    from gpusim.parallel import SlabDomain, local_columns, plan_slabs, route
    from gpusim.state import COLUMNS

    sys.path.insert(0, sys.argv[1])  # tests/, for helpers
    from helpers import small_config

    comm = MPI.COMM_WORLD
    shape = (48, 10, 10)
    cfg, _ = small_config(lattice={"shape": list(shape)}, tumour={"initial_cells": 2000},
                          dose=[{"time": "0 min", "count": 300, "placement": "uniform"}])
    sim = Simulation(cfg)  # every rank builds the same table (the test's input, not how a split run starts)
    sim.run(3)
    table = sim.state.snapshot()
    before = {name: table[name] for name in COLUMNS}
    slabs = plan_slabs(shape[0], comm.Get_size())
    plane = shape[1] * shape[2]
    # a step's worth of movement: every third cell up to 14 layers up or down (kept inside the lattice)
    rng = np.random.default_rng(11)
    shift = np.where(np.arange(before["voxel"].size) % 3 == 0, rng.integers(-14, 15, before["voxel"].size), 0)
    z = np.clip(before["voxel"] // plane + shift, 0, shape[0] - 1)
    after = dict(before, voxel=z * plane + before["voxel"] % plane)
    rank = comm.Get_rank()
    owned, halo = route(before["voxel"], shape, slabs)[rank]
    mine = local_columns(before, owned, halo, slabs[rank], shape)  # the rank's table as the step began
    mine["voxel"] = np.concatenate([after["voxel"][owned], before["voxel"][halo]]) - slabs[rank].held[0] * plane
    held = Simulation(cfg, domain=SlabDomain(comm, shape, slabs), _populate=False)  # the rank's table, as a step ends
    n = mine["voxel"].size
    held.state.reserve(n)
    held.state.load_columns(mine, n)
    held.state.n = n
    held.state.publish()
    held.domain.after_step(held)
    got = held.state.host_columns()
    owned, halo = route(after["voxel"], shape, slabs)[rank]
    want = local_columns(after, owned, halo, slabs[rank], shape)
    problems = []
    for which, pick in (("own", lambda c: (c["state"] & GHOST) == 0), ("halo", lambda c: (c["state"] & GHOST) != 0)):
        a, b = pick(got), pick(want)
        order_a, order_b = np.argsort(got["agent_id"][a]), np.argsort(want["agent_id"][b])
        for name in COLUMNS:
            if not np.array_equal(got[name][..., a][..., order_a], want[name][..., b][..., order_b]):
                problems.append(f"{which} {name}")
    with open(f"rank-{rank}.txt", "w") as f:
        f.write("ok" if not problems else ", ".join(problems))


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        from mpi4py import MPI

        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)  # the other ranks would wait for this one for ever
