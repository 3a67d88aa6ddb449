"""Run a small scenario and print, as JSON, a digest of every array after every rule launch.

Used by the determinism tests in subprocesses, because NUMBA_NUM_THREADS and
NUMBA_ENABLE_CUDASIM must be set before numba is imported:

    python tests/trace_run.py BACKEND STEPS [EDGE] [DENSITY] [SIGNATURES]

DENSITY is the tumour's share of the lattice's voxels (default 1/6).  With
SIGNATURES, the numba types of every distinct launch are pickled there, for
tests/kernel_compile_run.py to compile for a real GPU.
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
        self.signatures = set()  # (rule module, rule name, counted launch, numba types of the arguments)

    def __call__(self, fn, n, *args, **options):
        import numba

        self.signatures.add((fn.__module__, fn.__name__, hasattr(n, "live"), tuple(numba.typeof(a) for a in args)))
        result = self.inner(fn, n, *args, **options)
        h = hashlib.sha256()
        if hasattr(n, "live"):  # a launch over a count only the device knows: its host bound and the count
            h.update(repr(n.bound).encode())
            h.update(np.ascontiguousarray(self.backend.to_host(n.live)).tobytes())
        else:
            h.update(repr(int(n)).encode())
        for a in args:
            if hasattr(a, "shape"):
                h.update(np.ascontiguousarray(self.backend.to_host(a)).tobytes())
            else:
                h.update(repr(int(a)).encode())
        if result is not None:
            h.update(np.ascontiguousarray(self.backend.to_host(result)).tobytes())
        self.records.append((f"{fn.__module__}.{fn.__name__}", h.hexdigest()[:16]))
        return result


def main():
    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation

    name, steps = sys.argv[1], int(sys.argv[2])
    edge = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    density = float(sys.argv[4]) if len(sys.argv) > 4 else 1 / 6
    dose = max(2, int(edge**3 * density / 10))
    fast = {"synapse_time": "4 min", "refractory_time": "2 min", "division_time": "5 min", "trogocytosis": "0.5 /min",
            "reverse_trogocytosis": "0.3 /min", "exhaustion_limit": "6 min", "exhaustion_recovery_time": "3 min"}
    raw = {
        "run": {"duration": f"{steps} min", "snapshot_every": f"{steps} min", "sort_every": "3 min", "seed": 11},
        "lattice": {"shape": [edge, edge, edge]},
        "tumour": {"initial_cells": int(edge**3 * density), "cycle_time": "20 min", "cycle_time_cv": 0.5, "apoptosis_rate": "2 /h",
                   "antigen_b": 5000, "antigen_loss": 0.3, "reexpression_time": "30 min",
                   "hypoxia": "31 mmHg", "anoxia": "27 mmHg", "necrosis_time": "2 min", "debris_clearance": "3 min"},
        "fields": {"coarsening": 2, "every": "1 min", "settle": 1,
                   "oxygen": {"supply_faces": ["z-", "x+"], "vessels": [[1, 1, 1]], "vessel_density": 0.02,
                              "uptake": {"tumour": "60 /min", "car_t": "5 /min"}},
                   "chemokine": {"secretion": {"tumour": "5 nM/min", "car_t": "1 nM/min"}, "uptake": {"car_nk": "1 /min"}}},
        "damage": {"lethal_hits": 2, "lethal_bites": 2, "hit_repair_time": "5 min"},
        "effectors": {
            "car_t": {"lifespan": "1 h", "speed": "10 um/min", "squeeze": 0.5, "receptor_b": 8000, "hit_chance": 0.5,
                      "chemotaxis": 1.0, "persistence": "1 min",
                      "acquired_antigen_half_life": "20 min", **fast},
            "car_nk": {"icar": 10000, "receptor_b": 5000, "receptor_b_role": "car", "costimulation": "41bb", **fast},
            "car_m": {"synapse_time": "3 min", "bite_fraction": 0.03, "phagocytosis": 0.4},
        },
        "dose": [{"time": "0 min", "count": dose, "placement": "rim"},
                 {"time": "1 min", "count": dose // 2, "kind": "car_nk", "placement": "rim"},
                 {"time": "2 min", "count": dose // 2, "placement": "uniform"},
                 {"time": "2 min", "count": dose // 3, "kind": "car_m", "placement": "rim"}],
        "depletion": [{"time": f"{max(1, steps - 2)} min", "kind": "car_nk"}],
    }
    cfg = validate(raw)
    backend = backends.select(name)
    label = backend.label  # before the tracer stands in for the launcher (which names the CUDA C kernels)
    tracer = Tracing(backend.launch, backend)
    backend.launch = tracer
    sim = Simulation(cfg, backend=backend, debug=True)
    sim.run()
    from gpusim.kernels.census import flow_cytometry

    s = sim.state
    cytometer = backend.to_host(backend.launch(flow_cytometry, s.n, s["kind"], s["state"], s["pools"], sim.params))
    volume = sim.kind_volume()
    fields = sim.field_volumes()
    final = sim.state.snapshot()
    digest = hashlib.sha256()
    for key in sorted(k for k in final if k != "next_id"):
        digest.update(np.ascontiguousarray(final[key]).tobytes())
    digest.update(volume.tobytes())
    digest.update(cytometer.tobytes())
    digest.update(fields.tobytes())
    digest.update(sim.fields.host_values().tobytes())
    if len(sys.argv) > 5:
        import pickle

        with open(sys.argv[5], "wb") as f:
            pickle.dump(sorted(tracer.signatures, key=repr), f)
    # with GPUSIM_CUDA_DIRECT=1: the kernel forms cuda.core launched, and those left to numba
    forms = getattr(tracer.inner, "_direct", {})
    direct = {"direct_forms": sum(1 for launched in forms.values() if launched),
              "left_to_numba": sorted({kernel.py_func.__module__ for (kernel, _), launched in forms.items()
                                       if not launched})}
    print(json.dumps({"backend": label, "trace": tracer.records, "final": digest.hexdigest(), **direct,
                      "cells": int(sim.state.n), "series": {k: v for k, v in sim.timeseries.rows.items()}}))


if __name__ == "__main__":
    main()
