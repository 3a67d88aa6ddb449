"""Run a small scenario on the CUDA launch path with a guarded array module; print, as JSON, how often each
step read the device and which host reads it attempted that a GPU would have to wait for.

The array module stands in for cupy: it hands out arrays that refuse to
become host numbers (``int()``, ``bool()``, ``.item()``) and refuses the
functions whose result size depends on the data (``flatnonzero``,
``unique``, ...), which on a GPU wait for the device.  Its ``asnumpy`` is the
one sanctioned read, and it is counted.

    NUMBA_ENABLE_CUDASIM=1 python tests/device_reads_run.py STEPS
"""

import json
import sys
import types
import warnings

import numpy as np

WAITING_FUNCTIONS = ("flatnonzero", "nonzero", "argwhere", "unique", "count_nonzero", "bincount", "extract",
                     "compress")


class Guard:
    up = False
    refused = []
    reads = 0


class DeviceArray(np.ndarray):
    """A NumPy array that will not turn into a host value while the guard is up."""

    def _refuse(self, what):
        if Guard.up:
            Guard.refused.append(what)

    def __int__(self):
        self._refuse("int(array)")
        return int(np.asarray(self))

    def __float__(self):
        self._refuse("float(array)")
        return float(np.asarray(self))

    def __bool__(self):
        self._refuse("bool(array)")
        return bool(np.asarray(self))

    def __index__(self):
        self._refuse("array as an index")
        return np.asarray(self).__index__()

    def item(self, *args):
        self._refuse("array.item()")
        return np.asarray(self).item(*args)

    def tolist(self):
        self._refuse("array.tolist()")
        return np.asarray(self).tolist()


def _on_device(value):
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
        return value.view(DeviceArray)
    return value


def _wrap(name, fn):
    def call(*args, **kwargs):
        if name in WAITING_FUNCTIONS and Guard.up:
            Guard.refused.append(f"xp.{name}")
        return _on_device(fn(*args, **kwargs))

    return call


def guarded_numpy():
    xp = types.SimpleNamespace()
    for name in dir(np):
        value = getattr(np, name)
        setattr(xp, name, _wrap(name, value) if callable(value) and not isinstance(value, type) else value)

    def asnumpy(array):
        Guard.reads += 1
        return np.array(np.asarray(array))

    xp.asnumpy = asnumpy
    return xp


def main():
    from gpusim.backend import Backend
    from gpusim.config import validate
    from gpusim.engine import Simulation
    from gpusim.kernels.gpu_launcher import CUDALauncher

    steps = int(sys.argv[1])
    warnings.filterwarnings("ignore", "overflow encountered in scalar", RuntimeWarning)  # the hash wraps on purpose
    raw = {
        "run": {"duration": f"{steps} min", "snapshot_every": f"{steps} min", "sort_every": "2 min", "seed": 5},
        "lattice": {"shape": [8, 8, 8]},
        "tumour": {"initial_cells": 90, "cycle_time": "6 min", "cycle_time_cv": 0.5, "apoptosis_rate": "3 /h"},
        "fields": {"coarsening": 4, "every": "1 min",
                   "oxygen": {"supply_faces": ["z-"], "uptake": {"tumour": "20 /min"}},
                   "chemokine": {"secretion": {"tumour": "5 nM/min"}}},
        "effectors": {"car_t": {"synapse_time": "2 min", "division_time": "2 min", "hit_chance": 0.6,
                                "chemotaxis": 1.0}},
        "damage": {"lethal_hits": 1},
        "dose": [{"time": "0 min", "count": 30, "placement": "rim"},
                 {"time": "2 min", "count": 10, "placement": "uniform"}],
        "depletion": [{"time": f"{steps - 1} min", "kind": "car_t"}],
    }
    cfg = validate(raw)
    xp = guarded_numpy()
    backend = Backend("cuda", xp, CUDALauncher(xp, threads_per_block=32), simulated=True)
    sim = Simulation(cfg, backend=backend)
    dose_steps = {cfg.steps_of(d.time) for d in cfg.dose}
    per_step = []
    for _ in range(steps):
        Guard.reads, Guard.refused = 0, []
        dosing = sim.clock + 1 in dose_steps  # a step ends with the infusions of its end clock
        Guard.up = not dosing
        sim.step()
        Guard.up = False
        per_step.append({"step": sim.clock, "dose": dosing, "reads": Guard.reads, "refused": sorted(set(Guard.refused))})
    rows = sim.timeseries.arrays()
    print(json.dumps({"steps": per_step, "births": int(rows["births_tumour"].sum() + rows["births_car_t"].sum()),
                      "deaths": int(sum(rows[f"deaths_{k}"].sum() for k in ("tumour", "car_t"))),
                      "moves": int(rows["moves"].sum()), "cells": sim.state.n}))


if __name__ == "__main__":
    main()
