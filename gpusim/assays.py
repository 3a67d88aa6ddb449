"""Assays as the papers ran them: co-cultures in a well, control arms run alongside, flow-cytometry readouts.

The published numbers gpusim is checked against come from co-cultures: target cells and CAR cells scattered in
a well at a given effector-to-target ratio (E:T), read out by flow cytometry after hours.  A co-culture here is
a lattice with the targets placed ``well_mixed`` (scattered uniformly) and the effectors infused uniformly at
the start (:func:`coculture`).  Every scenario runs with control arms (:data:`ARMS`): the same config and seed
without effectors (untreated), or with a mechanism switched off; a readout is reported against its control, as
the papers report it, so that what the tumour does by itself (growth, division halving its pools) cancels out.

Readouts (:class:`Readout`, at chosen times):

* antigen per surviving target, and per its own antigen set point (which a cell inherits: the ratio of the two
  separates antigen taken from a cell from antigen-low cells surviving);
* the share of effectors wearing acquired antigen at the trogocytosis detection level (antigen-positive CAR-T);
* targets alive, specific lysis against the untreated arm (``1 - treated / untreated``), kills by cause;
* CAR per effector, effectors alive.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from gpusim.kernels.cells import KIND_NAMES, TUMOUR
from gpusim.kernels.molecules import ANTIGEN_A, ANTIGEN_B, CAR, SET_A

EFFECTORS = ("car_t", "car_nk", "car_m")


def untreated(raw):
    """The arm without effectors: no doses (and so no depletions)."""
    raw["dose"] = []
    raw["depletion"] = []
    return raw


def no_trogocytosis(raw):
    """The arm in which no membrane changes hands: trogocytosis and reverse trogocytosis off for every kind."""
    for kind in EFFECTORS:
        section = raw.setdefault("effectors", {}).setdefault(kind, {})
        section["trogocytosis"] = "0 /min"
        section["reverse_trogocytosis"] = "0 /min"
        section["bite_fraction"] = 0.0
    return raw


def treated(raw):
    return raw


# control arms: name -> a change to the raw config (a copy of it)
ARMS = {"treated": treated, "untreated": untreated, "no_trogocytosis": no_trogocytosis}


def coculture(targets, e_to_t, hours, seed=1, kind="car_t", occupancy=0.05, tumour=None, effectors=None,
              synapse=None, extra=None):
    """The raw config of a co-culture: ``targets`` tumour cells and ``e_to_t`` times as many effectors of ``kind``
    scattered uniformly over a cubic lattice filled to ``occupancy`` (of its voxels), run for ``hours``.
    ``tumour``, ``effectors`` (by kind), ``synapse``: overrides of those sections; ``extra``: of any other."""
    count = int(round(targets * e_to_t))
    edge = int(np.ceil(((targets + count) / occupancy) ** (1.0 / 3.0)))
    edge += edge % 2
    raw = {
        "description": f"co-culture, {targets} targets, E:T {e_to_t:g}",
        "run": {"duration": f"{hours} h", "snapshot_every": f"{hours} h", "sort_every": "1 h", "seed": seed},
        "lattice": {"shape": [edge, edge, edge]},
        "tumour": {"initial_cells": targets, "placement": "well_mixed", **(tumour or {})},
        "effectors": {k: dict(v) for k, v in (effectors or {}).items()},
        "synapse": dict(synapse or {}),
        "dose": [{"time": "0 min", "count": count, "kind": kind, "placement": "uniform"}] if count else [],
    }
    for key, value in (extra or {}).items():
        raw[key] = copy.deepcopy(value) if not isinstance(value, dict) else {**raw.get(key, {}), **value}
    return raw


@dataclass
class Readout:
    """What a flow cytometer and a cell counter read from one arm at one time."""

    hours: float
    targets: int  # live tumour cells
    antigen_per_target: float  # mean antigen A per live tumour cell (molecules)
    antigen_per_set_point: float  # mean of antigen A / the cell's own set point over live tumour cells
    effectors: int  # live effectors
    antigen_positive_effectors: float  # share of effectors at the detection level of acquired antigen
    acquired_per_effector: float  # mean acquired antigen (A and B) per effector
    car_per_effector: float
    lysed: int  # tumour cells killed by lysis, engulfment or bites so far
    fratricide: int  # effectors killed by effectors so far


@dataclass
class ArmRun:
    """One arm's readouts and its whole time series."""

    name: str
    readouts: list = field(default_factory=list)
    series: dict = field(default_factory=dict)

    def at(self, hours):
        return next(r for r in self.readouts if abs(r.hours - hours) < 1e-9)


def read(sim):
    """A :class:`Readout` of a simulation as it stands (reads the agent table: compacts it)."""
    cells = sim.state.snapshot()
    kind, pools, set_points = cells["kind"], cells["pools"], cells["set_points"]
    from gpusim.kernels.cells import NECROTIC

    alive = (cells["state"] & NECROTIC) == 0
    tumour = alive & (kind == TUMOUR)
    effector = alive & (kind != TUMOUR)
    antigen = pools[ANTIGEN_A].astype(np.float64)
    acquired = pools[ANTIGEN_A].astype(np.int64) + pools[ANTIGEN_B]
    own_set_point = set_points[SET_A].astype(np.float64)
    per_set_point = np.divide(antigen, own_set_point, out=np.zeros_like(antigen), where=own_set_point > 0)
    series = sim.timeseries.arrays()
    lysed = int(sum(series[f"deaths_{cause}"].sum() for cause in ("lysis", "phagocytosis", "trogoptosis")))
    return Readout(
        hours=sim.time_min / 60.0,
        targets=int(tumour.sum()),
        antigen_per_target=float(antigen[tumour].mean()) if tumour.any() else float("nan"),
        antigen_per_set_point=float(per_set_point[tumour & (own_set_point > 0)].mean()) if tumour.any() else float("nan"),
        effectors=int(effector.sum()),
        antigen_positive_effectors=float((acquired[effector] >= sim.detection).mean()) if effector.any() else 0.0,
        acquired_per_effector=float(acquired[effector].mean()) if effector.any() else 0.0,
        car_per_effector=float(pools[CAR][effector].mean()) if effector.any() else 0.0,
        lysed=lysed,
        fratricide=int(series["deaths_fratricide"].sum()),
    )


def arm_config(raw, name):
    """The raw config of arm ``name`` of a run's raw config: changed as the arm asks, with no arms of its own."""
    changed = ARMS[name](copy.deepcopy(raw))
    changed.pop("arms", None)
    return changed


def run_arm(raw, name, hours, backend=None):
    """Run arm ``name`` of the raw config ``raw`` (a copy is changed), reading out at each of ``hours``."""
    from gpusim.config import validate
    from gpusim.engine import Simulation

    cfg = validate(arm_config(raw, name))
    sim = Simulation(cfg, backend=backend)
    arm = ArmRun(name)
    for h in sorted(hours):
        target = int(round(h * 60.0 / cfg.run.dt))
        if target > sim.clock:
            sim.run(target - sim.clock)
        arm.readouts.append(read(sim))
    if not sim.done:
        sim.run()
    arm.series = sim.timeseries.arrays()
    return arm


def run_arms(raw, hours, arms=("treated", "untreated", "no_trogocytosis"), backend=None):
    """Every arm of ``raw`` (same seed), read out at ``hours``: name -> :class:`ArmRun`."""
    return {name: run_arm(raw, name, hours, backend=backend) for name in arms}


def specific_lysis(arms, hours, arm="treated"):
    """Specific lysis of arm ``arm`` at ``hours``: ``1 - targets / targets of the untreated arm``."""
    return 1 - arms[arm].at(hours).targets / arms["untreated"].at(hours).targets


def antigen_drop(arms, hours, arm="treated"):
    """The fall in antigen per target of arm ``arm`` against the untreated arm at ``hours`` (0: none)."""
    return 1 - arms[arm].at(hours).antigen_per_target / arms["untreated"].at(hours).antigen_per_target


def kills_per_effector(arm, hours):
    """Targets an arm's effectors killed by ``hours``, per effector alive on average over the run so far."""
    steps = int(round(hours * 60 / (arm.series["time_min"][1] - arm.series["time_min"][0])))
    effectors = sum(arm.series[f"cells_{kind}"][1 : steps + 1] for kind in EFFECTORS).mean()
    return arm.at(hours).lysed / effectors


def kinds_in(raw):
    """The effector kinds a raw config doses."""
    return sorted({dose.get("kind", "car_t") for dose in raw.get("dose", [])} & set(KIND_NAMES))


def implied_kill_rate(cfg, kind="car_t"):
    """Kills per hour of one effector of ``kind`` that always has a fresh target at full signal and is not yet
    exhausted: the handling time its rules imply, ``P(kill in a contact) / (contact + refractory time)``.

    A contact lasts ``synapse_time`` steps, each with a lytic hit at the kind's chance at saturating signal
    (kernels.synapse); the target repairs a hit at ``damage.hit_repair_time`` and dies at ``lethal_hits``, which
    ends the contact early; the effector then rests ``refractory_time`` before it engages again.  Computed
    exactly over the target's damage, step by step, in the order a step runs (hit, repair, death).
    """
    from gpusim import parameters
    from gpusim.kernels import params as P
    from gpusim.kernels.cells import KIND_NAMES

    built = parameters.build(cfg)
    k = KIND_NAMES.index(kind)
    hit = float(built["tables"][P.HIT_TABLE, k, -1]) / 2**32
    repair = float(built["params"][P.DAMAGE_REPAIR + TUMOUR]) / 2**32
    lethal = int(built["params"][P.LETHAL_DAMAGE + TUMOUR])
    contact = int(built["params"][P.SYNAPSE_STEPS + k])
    refractory = int(built["params"][P.REFRACTORY_STEPS + k])
    alive = np.zeros(lethal + 1)
    alive[0] = 1.0
    killed = steps = 0.0
    for _ in range(contact):
        steps += alive.sum()
        hit_now = np.zeros_like(alive)
        hit_now[1:] += alive[:-1] * hit
        hit_now[:-1] += alive[:-1] * (1 - hit)
        repaired = hit_now.copy()
        repaired[1:] -= hit_now[1:] * repair
        repaired[:-1] += hit_now[1:] * repair
        killed += repaired[lethal:].sum()
        alive = repaired.copy()
        alive[lethal:] = 0.0
    minutes = (steps + refractory) * cfg.run.dt
    return killed / minutes * 60.0
