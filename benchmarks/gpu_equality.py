"""GPU versus CPU, bit for bit: the same scenario on both backends, compared step by step.

    python benchmarks/gpu_equality.py [--edge 64] [--steps 100] [--json OUT.json]

The scenario has every phase busy (a tumour ball with oxygen and chemokine,
CAR-T and CAR-NK cells, division, killing, trogocytosis, necrosis).  After
every step the census row of each backend must be equal; at the end the
complete state (every agent column, the occupancy grid, the field values)
must be equal.  Prints one JSON line: steps compared, the first step that
differs (or null), the final digests and the wall time of each backend.
Exit status 0 when equal, 1 when not.  Under NUMBA_ENABLE_CUDASIM=1 the
"GPU" is numba's CUDA simulator (use a small --edge).
"""

import argparse
import hashlib
import json
import sys
import time

import numpy as np


def scenario(edge, steps):
    tumour = int(edge**3 * 0.15)
    return {
        "run": {"duration": f"{steps} min", "snapshot_every": f"{steps} min", "sort_every": "20 min", "seed": 5},
        "lattice": {"shape": [edge, edge, edge]},
        "tumour": {"initial_cells": tumour, "cycle_time": "6 h", "apoptosis_rate": "0.5 /h", "necrosis_time": "10 min",
                   "anoxia": "20 mmHg", "hypoxia": "30 mmHg", "debris_clearance": "15 min"},
        "effectors": {"car_t": {"trogocytosis": 0.3, "synapse_time": "6 min", "hit_chance": 0.4, "chemotaxis": 0.8}},
        "fields": {"every": "2 min", "settle": 3, "oxygen": {"supply_faces": ["z-", "z+"]}, "chemokine": {}},
        "dose": [{"time": "0 min", "count": max(2, tumour // 5), "placement": "rim"},
                 {"time": f"{min(5, steps)} min", "count": max(2, tumour // 20), "kind": "car_nk", "placement": "rim"}],
    }


def digest(sim):
    h = hashlib.sha256()
    final = sim.state.snapshot()
    for key in sorted(k for k in final if k != "next_id"):
        h.update(np.ascontiguousarray(final[key]).tobytes())
    h.update(np.ascontiguousarray(sim.backend.to_host(sim.state.occ)).tobytes())
    if sim.fields:
        h.update(np.ascontiguousarray(sim.fields.host_values()).tobytes())
    return h.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)

    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation

    cfg = validate(scenario(args.edge, args.steps))
    sims, seconds = {}, {}
    for name in ("cpu", "cuda"):
        start = time.perf_counter()
        sims[name] = Simulation(cfg, backend=backends.select(name))
        seconds[name] = time.perf_counter() - start
    first_difference = None
    for step in range(args.steps):
        for name, sim in sims.items():
            start = time.perf_counter()
            sim.step()
            sim.backend.synchronize()
            seconds[name] += time.perf_counter() - start
        rows = [{k: v[-1] for k, v in sim.timeseries.rows.items()} for sim in sims.values()]
        if first_difference is None and json.dumps(rows[0], sort_keys=True) != json.dumps(rows[1], sort_keys=True):
            first_difference = step + 1
    digests = {name: digest(sim) for name, sim in sims.items()}
    result = {
        "edge": args.edge, "steps": args.steps, "cells": int(sims["cpu"].state.n),
        "gpu": sims["cuda"].backend.label, "first_differing_step": first_difference,
        "digests": digests, "equal": first_difference is None and digests["cpu"] == digests["cuda"],
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
    }
    line = json.dumps(result)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    return 0 if result["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
