"""One rank of tests/test_parallel.py's split-run test (under mpiexec): a scenario with every phenomenon active
stepped on the ranks' slabs, in debug mode (the lattice invariants of every rank and of the whole run checked
after every step), against the same scenario in one process.

Rank 0 runs the single process too and writes ``result.json``: what differs (time series, the cells of every
rank put together in voxel order, the fields) at the end, and how many cells each rank held.  Every rank writes
``rank-N.txt`` (``ok`` or its error).  ``python split_run.py FOLDER STEPS [TUMOUR_CELLS]``; the backend is
GPUSIM_BACKEND's (the CUDA simulator's with NUMBA_ENABLE_CUDASIM=1).
"""

import json
import math
import sys

import numpy as np

SHAPE = (56, 10, 10)  # 4 slabs of 14 layers at most: each as deep as one step reaches


def scenario(steps, tumour_cells=1400):
    """A tumour across every slab, effectors infused at the rim and at random (a second kind later), fields,
    necrosis, divisions of both kinds, a depletion: cells cross slab boundaries in every way a step moves them."""
    from gpusim.config import validate

    return validate({
        "run": {"duration": f"{steps} min", "snapshot_every": f"{steps} min", "sort_every": "7 min", "seed": 9},
        "lattice": {"shape": list(SHAPE)},
        "tumour": {"initial_cells": tumour_cells, "cycle_time": "30 min", "apoptosis_rate": "0.5 /h", "necrosis_time": "8 min",
                   "anoxia": "3 mmHg", "hypoxia": "6 mmHg", "debris_clearance": "5 min"},
        "effectors": {"car_t": {"trogocytosis": "0.3 /min", "synapse_time": "4 min", "hit_chance": 0.5,
                                "chemotaxis": 0.8, "division_time": "3 min", "proliferation_threshold": 400}},
        "fields": {"every": "2 min", "settle": 2, "oxygen": {"supply_faces": ["z-", "z+"]}, "chemokine": {}},
        "dose": [{"time": "0 min", "count": 250, "placement": "rim"},
                 {"time": "3 min", "count": 120, "placement": "uniform"},
                 {"time": "5 min", "count": 60, "kind": "car_nk", "placement": "rim"}],
        "depletion": [{"time": f"{steps - 3} min", "kind": "car_nk"}],
    })


def compare(split_rows, whole_rows, split_table, whole_table, split_fields, whole_fields):
    problems = []
    for name, values in whole_rows.items():
        a, b = np.asarray(split_rows[name], dtype=float), np.asarray(values, dtype=float)
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            step = next((k for k, (x, y) in enumerate(zip(a, b)) if not (x == y or math.isnan(x) and math.isnan(y))),
                        None)
            problems.append(f"time series {name} (first at row {step})")
    for name, values in whole_table.items():
        if not np.array_equal(split_table[name], values):
            problems.append(f"cells' {name}")
    if not np.array_equal(split_fields, whole_fields):
        problems.append("fields")
    return problems


def main():
    from mpi4py import MPI

    from gpusim.engine import Simulation
    from gpusim.parallel import SlabDomain, global_columns, plan_slabs

    folder, steps = sys.argv[1], int(sys.argv[2])
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    cfg = scenario(steps, *map(int, sys.argv[3:4]))
    slabs = plan_slabs(SHAPE[0], comm.Get_size(), align=cfg.fields.coarsening)
    sim = Simulation(cfg, debug=True, domain=SlabDomain(comm, SHAPE, slabs))
    sim.run()
    table = sim.state.host_columns()
    parts = comm.gather(table, root=0)
    held = comm.gather([int(sim.state.n), int(sim.state.occ.shape[0])], root=0)
    if rank == 0:
        whole = Simulation(cfg)
        whole.run()
        want = whole.state.host_columns()
        order = np.argsort(want["voxel"], kind="stable")
        want = {name: values[..., order] for name, values in want.items()}
        got = global_columns(parts, slabs, SHAPE)
        problems = compare(sim.timeseries.rows, whole.timeseries.rows, got, want, sim.fields.host_values(),
                           whole.fields.host_values())
        rows = whole.timeseries.rows
        with open(f"{folder}/result.json", "w") as f:
            json.dump({"problems": problems, "held": [cells for cells, _ in held], "voxels": [v for _, v in held],
                       "cells": int(want["voxel"].size), "slabs": [slab.held for slab in slabs],
                       "births_tumour": int(sum(rows["births_tumour"])), "births_car_t": int(sum(rows["births_car_t"])),
                       "deaths_necrosis": int(sum(rows["deaths_necrosis"])),
                       "deaths_depletion": int(sum(rows["deaths_depletion"])),
                       "engagements": int(sum(rows["engagements"])), "moves": int(sum(rows["moves"])),
                       "backend": sim.backend.label}, f)
    with open(f"{folder}/rank-{rank}.txt", "w") as f:
        f.write("ok")


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        from mpi4py import MPI

        traceback.print_exc()
        with open(f"{sys.argv[1]}/rank-{MPI.COMM_WORLD.Get_rank()}.txt", "w") as f:
            f.write(traceback.format_exc())
        MPI.COMM_WORLD.Abort(1)  # the other ranks would wait for this one for ever
