"""Observables recorded at every step, and the flow-cytometer histograms of every snapshot.

One row per clock tick (the initial state and the state after each step).
The names below are the one source for the store, ``gpusim info`` and the
figures.  Counts and sums come from exact integer tallies
(:mod:`gpusim.kernels.census`, :mod:`gpusim.kernels.tally`); means and
medians are derived from them (medians at the flow cytometer's resolution, a
quarter of a doubling).
"""

import numpy as np

from gpusim.kernels import census as C
from gpusim.kernels import tally as T
from gpusim.kernels.cells import CAUSE_NAMES, EFFECTOR_KINDS, KIND_NAMES, N_CAUSES, N_KINDS, QUIESCENT, TUMOUR
from gpusim.kernels.molecules import ANTIGEN_A, HIST_BINS, SPECIES_NAMES, log_bin_edges

EFFECTOR_NAMES = [KIND_NAMES[k] for k in EFFECTOR_KINDS]

SERIES = (
    ["step", "time_min"]
    + [f"cells_{k}" for k in KIND_NAMES]
    + ["tumour_quiescent", "tumour_hypoxic", "tumour_necrotic"]
    + [f"{what}_{k}" for what in ("engaged", "exhausted", "trog_positive", "activated") for k in EFFECTOR_NAMES]
    + [f"births_{k}" for k in KIND_NAMES]
    + [f"deaths_{k}" for k in KIND_NAMES]
    + [f"deaths_{c}" for c in CAUSE_NAMES]
    + [f"dosed_{k}" for k in KIND_NAMES]
    + ["moves", "engagements", "hits", "bites", "tonic_stimulations", "debris_cleared"]
    + [f"taken_{s}" for s in SPECIES_NAMES]
    + [f"given_{s}" for s in SPECIES_NAMES]
    + [f"{what}_{s}" for what in ("total", "synthesised", "degraded", "lost", "infused") for s in SPECIES_NAMES]
    + [f"{what}_antigen_a_{k}" for what in ("mean", "median") for k in KIND_NAMES]
    + [f"mean_stimulation_{k}" for k in EFFECTOR_NAMES]
)
FLOAT_SERIES = {name for name in SERIES if name.startswith(("mean_", "median_")) or name == "time_min"}

_EDGES = log_bin_edges()
_BIN_MIDDLES = np.where(_EDGES[:-1] < 4, _EDGES[:-1], np.sqrt(_EDGES[:-1] * (_EDGES[1:] - 1.0)))


def histogram_median(counts):
    """The median of a flow-cytometer histogram, as the middle of the bin holding it (NaN if empty)."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    b = int(np.searchsorted(np.cumsum(counts), (total + 1) / 2.0))
    return float(_BIN_MIDDLES[min(b, HIST_BINS - 1)])


class Timeseries:
    """Rows of observables, kept on the host."""

    def __init__(self):
        self.rows = {name: [] for name in SERIES}

    def __len__(self):
        return len(self.rows["step"])

    def record(self, clock, dt_min, counts, ledger, dosed, infused):
        """One row: ``counts`` a census tally (live cells), ``ledger`` the step's tally (host int64 vectors),
        ``dosed`` the cells infused per kind and ``infused`` the molecules per species that arrived on them."""
        row = self.rows
        add = lambda name, value: row[name].append(value)  # noqa: E731
        add("step", clock)
        add("time_min", clock * dt_min)
        per_kind = counts[: N_KINDS * C.CENSUS_ROW].reshape(N_KINDS, C.CENSUS_ROW)
        hist = counts[C.ANTIGEN_HISTOGRAM :].reshape(N_KINDS, HIST_BINS)
        deaths = ledger[T.DEATHS : T.DEATHS + N_CAUSES * N_KINDS].reshape(N_CAUSES, N_KINDS)
        births = ledger[T.BIRTHS : T.BIRTHS + N_KINDS]
        for k, name in enumerate(KIND_NAMES):
            alive = int(per_kind[k, C.LIVE] + per_kind[k, C.LIVE + QUIESCENT])
            add(f"cells_{name}", alive)
            add(f"births_{name}", int(births[k]))
            add(f"deaths_{name}", int(deaths[:, k].sum()))
            add(f"dosed_{name}", int(dosed[k]))
            mean = per_kind[k, C.POOL_SUM + ANTIGEN_A] / alive if alive else float("nan")
            add(f"mean_antigen_a_{name}", float(mean))
            add(f"median_antigen_a_{name}", histogram_median(hist[k]))
            if k != TUMOUR:
                add(f"engaged_{name}", int(per_kind[k, C.ENGAGED]))
                add(f"exhausted_{name}", int(per_kind[k, C.EXHAUSTED]))
                add(f"trog_positive_{name}", int(per_kind[k, C.TROG_POSITIVE]))
                add(f"activated_{name}", int(per_kind[k, C.ACTIVATED_COUNT]))
                add(f"mean_stimulation_{name}", float(per_kind[k, C.STIMULATION_SUM] / alive) if alive else float("nan"))
        add("tumour_quiescent", int(per_kind[TUMOUR, C.LIVE + QUIESCENT]))
        add("tumour_hypoxic", int(per_kind[TUMOUR, C.HYPOXIC_COUNT]))
        add("tumour_necrotic", int(per_kind[TUMOUR, C.NECROTIC_COUNT]))
        for c, cause in enumerate(CAUSE_NAMES):
            add(f"deaths_{cause}", int(deaths[c].sum()))
        add("moves", int(ledger[T.MOVES]))
        add("engagements", int(ledger[T.ENGAGEMENTS]))
        add("hits", int(ledger[T.HITS]))
        add("bites", int(ledger[T.BITES]))
        add("tonic_stimulations", int(ledger[T.TONIC]))
        add("debris_cleared", int(ledger[T.CLEARED]))
        for s, species in enumerate(SPECIES_NAMES):
            add(f"taken_{species}", int(ledger[T.TAKEN + s]))
            add(f"given_{species}", int(ledger[T.GIVEN + s]))
            add(f"total_{species}", int(per_kind[:, C.POOL_SUM + s].sum()))
            add(f"synthesised_{species}", int(ledger[T.SYNTHESISED + s]))
            add(f"degraded_{species}", int(ledger[T.DEGRADED + s]))
            add(f"lost_{species}", int(ledger[T.LOST + s]))
            add(f"infused_{species}", int(infused[s]))

    def last(self):
        return {name: values[-1] for name, values in self.rows.items()}

    def arrays(self, start=0):
        """Rows from ``start`` on, as numpy arrays."""
        return {
            name: np.asarray(values[start:], dtype=np.float64 if name in FLOAT_SERIES else np.int64)
            for name, values in self.rows.items()
        }
