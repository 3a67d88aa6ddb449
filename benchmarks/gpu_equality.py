"""GPU versus CPU, bit for bit: the same scenario on both backends, compared step by step.

    python benchmarks/gpu_equality.py [--edge 64] [--steps 100] [--json OUT.json] [--against EARLIER.json]

The scenario has every phase busy (a tumour ball with oxygen and chemokine,
CAR-T and CAR-NK cells, division, killing, trogocytosis, necrosis).  After
every step the census row of each backend must be equal; at the end the
complete state (every agent column, the occupancy grid, the field values)
must be equal.  Prints one JSON line: steps compared, the first step that
differs (or null), the final digests and the wall time of each backend.
Exit status 0 when equal, 1 when not.  Under NUMBA_ENABLE_CUDASIM=1 the
"GPU" is numba's CUDA simulator (use a small --edge).

With ``--against``, only the GPU runs, compared with the CPU of an earlier
result of this script (its JSON, same edge and steps): how benchmarks/gpu_check.sh
checks variants of gpusim without compiling every rule for the CPU again.
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
        "effectors": {"car_t": {"trogocytosis": "0.3 /min", "synapse_time": "6 min", "hit_chance": 0.4, "chemotaxis": 0.8}},
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


def row_digest(sim):
    """Digest of the last row of the time series (census and ledger of the step just taken)."""
    row = {k: v[-1] for k, v in sim.timeseries.rows.items()}
    return hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:16]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", help="also write the result to this file")
    parser.add_argument("--against", help="an earlier result (JSON) whose CPU digests the GPU is compared with")
    args = parser.parse_args(argv)
    reference = None
    if args.against:
        with open(args.against) as f:
            reference = json.load(f)
        if (reference.get("edge"), reference.get("steps")) != (args.edge, args.steps) or "step_digests" not in reference:
            parser.error(f"{args.against} is not a result of --edge {args.edge} --steps {args.steps} with step digests")

    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation

    cfg = validate(scenario(args.edge, args.steps))
    sims, seconds, step_digests = {}, {}, {}
    for name in ("cuda",) if reference else ("cpu", "cuda"):
        start = time.perf_counter()
        sims[name] = Simulation(cfg, backend=backends.select(name))
        seconds[name] = time.perf_counter() - start
        step_digests[name] = []
    for step in range(args.steps):
        for name, sim in sims.items():
            start = time.perf_counter()
            sim.step()
            sim.backend.synchronize()
            seconds[name] += time.perf_counter() - start
            step_digests[name].append(row_digest(sim))
    digests = {name: digest(sim) for name, sim in sims.items()}
    if reference:
        step_digests["cpu"] = reference["step_digests"]["cpu"]
        digests["cpu"] = reference["digests"]["cpu"]
    differing = [step + 1 for step, (a, b) in enumerate(zip(step_digests["cpu"], step_digests["cuda"])) if a != b]
    first_difference = differing[0] if differing else None
    result = {
        "edge": args.edge, "steps": args.steps, "cells": int(sims["cuda"].state.n),
        "gpu": sims["cuda"].backend.label, "first_differing_step": first_difference,
        "digests": digests, "equal": first_difference is None and digests["cpu"] == digests["cuda"],
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "cpu_from": args.against or "this run", "step_digests": step_digests,
    }
    line = json.dumps(result)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    return 0 if result["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
