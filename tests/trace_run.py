"""Run a small scenario and print, as JSON, a digest of every array after every rule launch.

Used by the determinism tests in subprocesses, because NUMBA_NUM_THREADS and
NUMBA_ENABLE_CUDASIM must be set before numba is imported:

    python tests/trace_run.py BACKEND STEPS [EDGE]
"""

import hashlib
import json
import sys

import numpy as np


class Tracing:
    """Wraps a launcher; records (rule, digest of every argument after the launch)."""

    def __init__(self, inner, backend):
        self.inner = inner
        self.backend = backend
        self.records = []

    def __call__(self, fn, n, *args):
        self.inner(fn, n, *args)
        h = hashlib.sha256()
        h.update(repr(int(n)).encode())
        for a in args:
            if hasattr(a, "shape"):
                h.update(np.ascontiguousarray(self.backend.to_host(a)).tobytes())
            else:
                h.update(repr(int(a)).encode())
        self.records.append((f"{fn.__module__}.{fn.__name__}", h.hexdigest()[:16]))


def main():
    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation

    name, steps = sys.argv[1], int(sys.argv[2])
    edge = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    raw = {
        "run": {"duration": f"{steps} min", "snapshot_every": f"{steps} min", "sort_every": "3 min", "seed": 11},
        "lattice": {"shape": [edge, edge, edge]},
        "tumour": {"initial_cells": edge**3 // 6, "cycle_time": "20 min", "cycle_time_cv": 0.5, "apoptosis_rate": "2 /h"},
        "effectors": {"car_t": {"lifespan": "1 h", "speed": "10 um/min", "squeeze": 0.5}},
        "dose": [{"time": "0 min", "count": 30, "placement": "rim"}, {"time": "2 min", "count": 20, "placement": "uniform"}],
    }
    cfg = validate(raw)
    backend = backends.select(name)
    tracer = Tracing(backend.launch, backend)
    backend.launch = tracer
    sim = Simulation(cfg, backend=backend, debug=True)
    sim.run()
    volume = sim.kind_volume()
    final = sim.state.snapshot()
    digest = hashlib.sha256()
    for key in sorted(k for k in final if k != "next_id"):
        digest.update(np.ascontiguousarray(final[key]).tobytes())
    digest.update(volume.tobytes())
    print(json.dumps({"backend": backend.label, "trace": tracer.records, "final": digest.hexdigest(),
                      "cells": int(sim.state.n), "series": {k: v for k, v in sim.timeseries.rows.items()}}))


if __name__ == "__main__":
    main()
