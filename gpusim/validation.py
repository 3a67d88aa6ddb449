"""The validation suite: each published observation as a row, the model's value beside it, pass or fail.

``gpusim validate [--quick] [--seeds 1,2,3] [--figure PNG]`` runs every row's co-culture (:mod:`gpusim.assays`)
with its control arms on each seed and prints the table; a row passes when its criterion holds on every seed.
Where a paper gives a number with its spread, the row carries it and the tolerance it justifies; where it states
a direction (antigen falls within hours, a low-affinity binder takes much less), the row says so and holds the
model to the size of effect the issue of record asks for, in the same words.

Scenes: co-cultures of 2,000 target cells (1,000 with ``quick``) scattered in a well at 5% occupancy, CD19-like
antigen (2e4 per cell, CV 0.5), CD28 CAR-T cells with an FMC63-like binder unless the row says otherwise.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

from gpusim import assays

TARGETS, QUICK_TARGETS = 2000, 1000


@dataclass(frozen=True)
class Row:
    key: str
    source: str  # paper and where in it
    observed: str  # what the paper reports
    measured: str  # its number and spread, or the direction it states
    quantity: str  # what the model's value is
    criterion: str  # when the row passes, in words
    low: float  # the model's value must lie in [low, high] on every seed
    high: float
    simulate: object  # (seed, targets) -> the model's value


def targets_of(quick):
    return QUICK_TARGETS if quick else TARGETS


@functools.lru_cache(maxsize=None)
def hamieh(seed, targets, e_to_t=0.25):
    """Hamieh 2019's co-culture: NALM6-like targets and CD28 CAR-T (E:T 1:4 unless said), with untreated and
    trogocytosis-off arms, read at 1, 4 and 24 h.  At E:T 1:2 the trogocytosis-off arm clears the well within a
    day, so the day's readouts come from E:T 1:4."""
    return assays.run_arms(assays.coculture(targets, e_to_t, 24, seed=seed), [1, 4, 24])


def antigen_vs_no_trogocytosis(hours, e_to_t):
    def value(seed, targets):
        arms = hamieh(seed, targets, e_to_t)
        return arms["treated"].at(hours).antigen_per_set_point / arms["no_trogocytosis"].at(hours).antigen_per_set_point
    return value


def drop_kept_without_trogocytosis(seed, targets):
    arms = hamieh(seed, targets, 0.5)
    return assays.antigen_drop(arms, 4, "no_trogocytosis") / assays.antigen_drop(arms, 4)


def antigen_positive_car_t(seed, targets):
    return hamieh(seed, targets)["treated"].at(1).antigen_positive_effectors


def fratricide_without_trogocytosis(seed, targets):
    """Fratricide deaths with trogocytosis off over those with it on (0: none without it)."""
    arms = hamieh(seed, targets)
    return arms["no_trogocytosis"].at(24).fratricide / max(arms["treated"].at(24).fratricide, 1)


@functools.lru_cache(maxsize=None)
def removal(seed, targets):
    """The CAR-T removal arm: the Hamieh co-culture with the CAR-T depleted at 6 h, then 72 h alone."""
    raw = assays.coculture(targets, 0.25, 78, seed=seed, occupancy=0.02)
    raw["depletion"] = [{"time": "6 h", "kind": "car_t"}]
    return assays.run_arms(raw, [7, 78], arms=("treated", "untreated"))


def deficit_left_after_removal(seed, targets):
    arms = removal(seed, targets)
    return assays.antigen_drop(arms, 78) / assays.antigen_drop(arms, 7)


@functools.lru_cache(maxsize=None)
def costimulation(seed, targets, domain):
    """CAR-T of one costimulation domain against antigen-low targets (2,500 per cell) at E:T 1:1 for 8 h."""
    raw = assays.coculture(targets, 1.0, 8, seed=seed, tumour={"antigen_a": 2500},
                           effectors={"car_t": {"costimulation": domain}})
    return assays.run_arms(raw, [8], arms=("treated", "untreated"))


def cd28_over_41bb_lysis(seed, targets):
    return ratio(assays.specific_lysis(costimulation(seed, targets, "cd28"), 8),
                 assays.specific_lysis(costimulation(seed, targets, "41bb"), 8))


@functools.lru_cache(maxsize=None)
def car_nk(seed, targets, icar):
    """CAR-NK cells (carrying the NK self-marker) with or without an iCAR against it, E:T 1:1, 24 h."""
    raw = assays.coculture(targets, 1.0, 24, seed=seed, kind="car_nk", effectors={"car_nk": {"icar": icar}})
    return assays.run_arms(raw, [24], arms=("treated", "untreated"))


def ratio(a, b, floor=1e-9):
    """a / b, with b no smaller than ``floor`` (a count of none reads as one: ``floor=1``)."""
    return a / max(b, floor)


def icar_fratricide_share(seed, targets):
    return ratio(car_nk(seed, targets, 20000)["treated"].at(24).fratricide,
                 car_nk(seed, targets, 0)["treated"].at(24).fratricide, 1)


def icar_nk_survival(seed, targets):
    return ratio(car_nk(seed, targets, 20000)["treated"].at(24).effectors,
                 car_nk(seed, targets, 0)["treated"].at(24).effectors, 1)


def icar_lysis(seed, targets):
    return ratio(assays.specific_lysis(car_nk(seed, targets, 20000), 24), assays.specific_lysis(car_nk(seed, targets, 0), 24))


BINDERS = {  # FMC63 and CAT scFv: KD by SPR (Ghorashian 2019); off-rates at one on-rate, ~2.3e5 /M/s [est]
    "fmc63": {"car_kd": "0.3 nM", "car_off_rate": "0.0041 /min"},
    "cat": {"car_kd": "14 nM", "car_off_rate": "0.19 /min"},
}


@functools.lru_cache(maxsize=None)
def binder(seed, targets, name):
    raw = assays.coculture(targets, 0.5, 24, seed=seed, effectors={"car_t": BINDERS[name]})
    return assays.run_arms(raw, [8, 24], arms=("treated", "untreated"))


AFFINITY = {  # what each affinity row compares: (numerator, denominator, floor) from the FMC63 and CAT wells
    "taken": lambda high, low: (high["treated"].series["taken_antigen_a"].sum(),
                                low["treated"].series["taken_antigen_a"].sum(), 1),
    "fratricide": lambda high, low: (high["treated"].at(8).fratricide, low["treated"].at(8).fratricide, 1),
    "lysis": lambda high, low: (assays.specific_lysis(low, 24), assays.specific_lysis(high, 24), 1e-9),
    "survival": lambda high, low: (low["treated"].at(24).effectors, high["treated"].at(24).effectors, 1),
    "drop": lambda high, low: (assays.antigen_drop(low, 8), assays.antigen_drop(high, 8), 1e-9),
}


def affinity_ratio(what):
    def value(seed, targets):
        return ratio(*AFFINITY[what](binder(seed, targets, "fmc63"), binder(seed, targets, "cat")))
    return value


@functools.lru_cache(maxsize=None)
def saturating(seed, targets):
    """Few effectors among many targets (E:T 1:20, 30% occupancy): each effector always finds one."""
    return assays.run_arms(assays.coculture(targets * 2, 0.05, 4, seed=seed, occupancy=0.3), [4],
                           arms=("treated",))


def kill_rate_at_saturation(seed, targets):
    """Kills per effector per hour over the first 4 h, targets never short."""
    return assays.kills_per_effector(saturating(seed, targets)["treated"], 4) / 4.0


def kills_per_effector_per_day(seed, targets):
    """Kills per CAR-T over the first day of the Hamieh co-culture (E:T 1:4)."""
    return assays.kills_per_effector(hamieh(seed, targets)["treated"], 24)


def lysis_rises_with_e_to_t(seed, targets):
    """The smallest ratio of 4-h specific lysis between neighbouring E:T of 1:8, 1:4, 1:2, 1:1 and 2:1."""
    lyses = []
    for effectors_per_target in (0.125, 0.25, 0.5, 1.0, 2.0):
        arms = assays.run_arms(assays.coculture(targets, effectors_per_target, 4, seed=seed), [4],
                               arms=("treated", "untreated"))
        lyses.append(assays.specific_lysis(arms, 4))
    return min(ratio(b, a) for a, b in zip(lyses, lyses[1:]))


ROWS = [
    Row("antigen_loss_4h", "Hamieh 2019 Nature 568:112, Fig. 1; Im 2022 Cancer Immunol Res",
        "targets lose CD19 to CAR-T by trogocytosis within hours of co-culture",
        "direction (no number transcribed)", "antigen per set point of surviving targets, treated / trogocytosis off, "
        "+4 h, E:T 1:2", "at most 0.85", 0.0, 0.85, antigen_vs_no_trogocytosis(4, 0.5)),
    Row("antigen_loss_24h", "Hamieh 2019 Nature 568:112, Fig. 1", "the loss persists while CAR-T are present",
        "direction (no number transcribed)", "the same at +24 h, E:T 1:4", "at most 0.85", 0.0, 0.85,
        antigen_vs_no_trogocytosis(24, 0.25)),
    Row("loss_is_trogocytic", "Hamieh 2019 Nature 568:112, Fig. 1",
        "the antigen loss is trogocytic: it needs the transfer, not only killing", "direction",
        "share of the treated-vs-untreated drop in antigen per target left with trogocytosis off, +4 h, E:T 1:2",
        "at most 0.5", -1.0, 0.5, drop_kept_without_trogocytosis),
    Row("car_t_antigen_positive", "Hamieh 2019 Nature 568:112, Fig. 1",
        "CAR-T acquire target CD19 within an hour", "direction (no number transcribed)",
        "share of CAR-T at the detection level of acquired antigen, +1 h", "at least 0.5", 0.5, 1.0,
        antigen_positive_car_t),
    Row("fratricide_needs_trogocytosis", "Hamieh 2019 Nature 568:112, Fig. 2",
        "CAR-T wearing acquired antigen are killed by CAR-T (fratricide)", "direction",
        "fratricide deaths with trogocytosis off / on, 24 h", "0 (none without acquired antigen)", 0.0, 0.0,
        fratricide_without_trogocytosis),
    Row("reversal", "Hamieh 2019 Nature 568:112, Fig. 3",
        "trogocytic antigen loss reverses once the CAR-T are gone", "direction",
        "antigen deficit against untreated 72 h after CAR-T removal / 1 h after", "at most 0.3", -1.0, 0.3,
        deficit_left_after_removal),
    Row("cd28_beats_41bb", "Majzner 2020 Cancer Discov 10:702; Hamieh 2019",
        "on antigen-low targets a CD28 CAR kills more than a 4-1BB CAR", "direction",
        "8-h specific lysis of targets with 2,500 antigen, CD28 / 4-1BB, E:T 1:1", "at least 1.2", 1.2, math.inf,
        cd28_over_41bb_lysis),
    Row("icar_spares_car_nk", "Li 2022 Nat Med 28:2133", "an iCAR against the NK self-marker prevents fratricide",
        "direction", "CAR-NK fratricide with the iCAR / without, 24 h", "at most 0.1", 0.0, 0.1, icar_fratricide_share),
    Row("icar_keeps_nk_alive", "Li 2022 Nat Med 28:2133", "more CAR-NK survive with the iCAR", "direction",
        "CAR-NK alive at 24 h, with / without iCAR", "at least 1.05 (beyond the ~2% seed spread)", 1.05, math.inf,
        icar_nk_survival),
    Row("icar_keeps_killing", "Li 2022 Nat Med 28:2133", "the iCAR does not weaken tumour killing", "direction",
        "24-h specific lysis with / without iCAR", "at least 0.95", 0.95, math.inf, icar_lysis),
    Row("affinity_trogocytosis", "Olson 2022 Leukemia; Ghorashian 2019 Nat Med",
        "a low-affinity (fast-off) CD19 CAR takes much less CD19 by trogocytosis", "direction",
        "antigen taken, FMC63 / CAT binder, E:T 1:2, 24 h", "at least 3", 3.0, math.inf, affinity_ratio("taken")),
    Row("affinity_fratricide", "Olson 2022 Leukemia", "and causes much less fratricide", "direction",
        "fratricide, FMC63 / CAT, first 8 h", "at least 3", 3.0, math.inf, affinity_ratio("fratricide")),
    Row("affinity_killing", "Olson 2022 Leukemia; Ghorashian 2019 Nat Med", "with similar killing", "direction",
        "24-h specific lysis, CAT / FMC63", "at least 0.8", 0.8, math.inf, affinity_ratio("lysis")),
    Row("affinity_persistence", "Olson 2022 Leukemia; Ghorashian 2019 Nat Med", "and more CAR-T persisting",
        "direction", "CAR-T alive at 24 h, CAT / FMC63", "above 1", 1.0 + 1e-9, math.inf, affinity_ratio("survival")),
    Row("affinity_antigen_drop", "Olson 2022 Leukemia", "the targets' antigen drop is much smaller", "direction",
        "8-h drop in antigen per target against untreated, CAT / FMC63", "at most 0.5", -1.0, 0.5,
        affinity_ratio("drop")),
    Row("kill_rate_max", "Singh 2020 mAbs (in vitro fit)",
        "kill rate per CAR-T cell saturates at 0.353 /h", "0.353 /h (a fit; its spread not given: ±25%)",
        "kills per CAR-T per hour, E:T 1:20, first 4 h", "0.26 to 0.44 /h", 0.26, 0.44, kill_rate_at_saturation),
    Row("kills_per_day", "Weigelin 2021 Nat Commun 12:5217",
        "a CTL kills 1 to 20 targets a day (bulk assays and modelling)", "1 to 20 per day",
        "kills per CAR-T over the first day, E:T 1:4", "1 to 20", 1.0, 20.0, kills_per_effector_per_day),
    Row("lysis_vs_e_to_t", "standard 4-h cytotoxicity assays", "specific lysis rises with E:T", "direction",
        "smallest ratio of 4-h lysis between neighbouring E:T of 1:8 .. 2:1", "above 1", 1.0 + 1e-9, math.inf,
        lysis_rises_with_e_to_t),
]


@dataclass
class Result:
    row: Row
    values: list  # the model's value on each seed

    @property
    def passed(self):
        return all(self.row.low <= v <= self.row.high for v in self.values)

    @property
    def mean(self):
        return float(np.mean(self.values))

    @property
    def spread(self):
        return float(np.std(self.values))


def run(seeds=(1, 2, 3), quick=False, rows=None, echo=None):
    """Every row (or those whose keys are in ``rows``) on every seed: a list of :class:`Result`."""
    targets = targets_of(quick)
    results = []
    for row in ROWS:
        if rows is not None and row.key not in rows:
            continue
        values = [float(row.simulate(seed, targets)) for seed in seeds]
        results.append(Result(row, values))
        if echo is not None:
            echo(f"{'pass' if results[-1].passed else 'FAIL'}  {row.key}: {results[-1].mean:.3g}")
    return results


def markdown(results, seeds):
    """The table: a row per observation, as it goes into the documentation."""
    lines = [f"| observation | source | measured | model (seeds {', '.join(map(str, seeds))}) | passes when | |",
             "|---|---|---|---|---|---|"]
    for r in results:
        model = f"{r.mean:.3g} ± {r.spread:.2g} ({r.row.quantity})"
        lines.append(f"| {r.row.observed} | {r.row.source} | {r.row.measured} | {model} | {r.row.criterion} | "
                     f"{'pass' if r.passed else '**fail**'} |")
    return "\n".join(lines)


def figure(results, path):
    """The model against its criteria: a line per row, the band it must fall in, each seed's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(results) + 1.2))
    for y, r in enumerate(reversed(results)):
        values = np.asarray(r.values)
        finite_high = r.row.high if math.isfinite(r.row.high) else max(values.max() * 1.5, r.row.low * 2, 1.0)
        ax.barh(y, finite_high - r.row.low, left=r.row.low, color="#d9f0d3" if r.passed else "#fddbc7", height=0.6)
        ax.plot(values, [y] * len(values), "o", color="#1b7837" if r.passed else "#b2182b", ms=4)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([r.row.key for r in reversed(results)], fontsize=8)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("model value (band: the criterion the observation sets)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
