"""Observables recorded at every step: counts by kind and state, births, deaths, moves, doses.

One row per clock tick (the initial state and the state after each step);
each observable is a named integer series.  The column list below is the one
source of the names used by the store, ``gpusim info`` and the plots.
"""

import numpy as np

from gpusim.kernels.cells import DEAD, KIND_NAMES, N_KINDS, QUIESCENT, TUMOUR

SERIES = (
    ["step", "time_min"]
    + [f"cells_{k}" for k in KIND_NAMES]
    + ["tumour_quiescent"]
    + [f"births_{k}" for k in KIND_NAMES]
    + [f"deaths_{k}" for k in KIND_NAMES]
    + [f"dosed_{k}" for k in KIND_NAMES]
    + ["moves"]
)

_STATE_CODES = 4  # (state & (DEAD | QUIESCENT)) takes values 0..3


def census(state):
    """Counts per (kind, DEAD/QUIESCENT flags) of the live table, as a host array [kind, code]."""
    # uint8 throughout (at most 4 * 3 + 3): no wide temporaries on the hot path
    code = state.view("kind") * np.uint8(_STATE_CODES) + (state.view("state") & (DEAD | QUIESCENT))
    counts = state.xp.bincount(code, minlength=N_KINDS * _STATE_CODES)
    return state.backend.to_host(counts).reshape(N_KINDS, _STATE_CODES)


class Timeseries:
    """Rows of observables, kept on the host."""

    def __init__(self):
        self.rows = {name: [] for name in SERIES}

    def __len__(self):
        return len(self.rows["step"])

    def record(self, clock, dt_min, table, births, deaths, dosed, moves):
        """One row; ``table`` is a :func:`census` taken after deaths were removed."""
        row = self.rows
        row["step"].append(clock)
        row["time_min"].append(clock * dt_min)
        alive = table.sum(axis=1)
        for k, name in enumerate(KIND_NAMES):
            row[f"cells_{name}"].append(int(alive[k]))
            row[f"births_{name}"].append(int(births[k]))
            row[f"deaths_{name}"].append(int(deaths[k]))
            row[f"dosed_{name}"].append(int(dosed[k]))
        row["tumour_quiescent"].append(int(table[TUMOUR, QUIESCENT]))
        row["moves"].append(int(moves))

    def last(self):
        return {name: values[-1] for name, values in self.rows.items()}

    def arrays(self, start=0):
        """Rows from ``start`` on, as numpy arrays."""
        return {
            name: np.asarray(values[start:], dtype=np.float64 if name == "time_min" else np.int64)
            for name, values in self.rows.items()
        }
