"""From the validated config to what the rules read: integer parameters and lookup tables.

Every probability per step is turned into a 32-bit threshold here, on the
host, once; every duration into whole steps; every affinity into a 2D
dissociation constant in molecules per contact area; every sigmoidal response
into a table over signal buckets.  Rules then decide events by integer
arithmetic, and every backend decides alike.

Conventions marked [est] are estimates no paper measured (docs/validation.md gives each its reasoning), exposed
in the config to be calibrated.
"""

import math

import numpy as np

from gpusim.kernels import params as P
from gpusim.kernels.cell_cycle import cycle_table_steps, growth_age_table_q16, inheritance_factors_q16, lognormal_quantiles
from gpusim.kernels.cells import CAR_M, EFFECTOR_KINDS, KIND_NAMES, N_KINDS, TUMOUR
from gpusim.kernels.lattice import MAX_VOXELS, division_magic
from gpusim.kernels.molecules import (
    ANTIGEN_A,
    ANTIGEN_B,
    CAR,
    ICAR,
    ICAR_LIGAND,
    N_SET_POINTS,
    N_SPECIES,
    RECEPTOR_B,
    SET_A,
    SET_B,
    SET_POINT_SPECIES,
)
from gpusim.kernels.rng import probability_threshold as q32
from gpusim.kernels.signal import N_BUCKETS, bucket_signals

AVOGADRO = 6.02214076e23
# costimulation domains shift the signal thresholds and trogocytosis [est]:
# CD28 signals from less antigen than 4-1BB (Majzner 2020); the configured
# thresholds are those of a CD28 CAR (the CD19-CD28z threshold, Majzner ASH 2018).
COSTIMULATION = {"cd28": {"threshold": 1.0, "trogocytosis": 1.0}, "41bb": {"threshold": 2.0, "trogocytosis": 0.7}}
ACTIVATION_MAX = 0.1  # chance per step of activation at saturating signal [est]


def duration_steps(minutes, dt_min):
    """A duration as whole steps of ``dt_min`` (at least one): what a timer counts."""
    return max(1, int(round(minutes / dt_min)))


# the agent-table column that holds the steps of each duration: a timer set to them, or a counter that counts up
# to them ("{kind}": every effector kind); config validation refuses a duration whose steps the column cannot hold
STEP_COLUMNS = {
    "tumour.cycle_time": "cycle_timer",  # the longest cycle of the log-normal table
    "tumour.necrosis_time": "anoxic_steps",
    "tumour.debris_clearance": "cycle_timer",
    "effectors.{kind}.synapse_time": "synapse_steps",
    "effectors.{kind}.refractory_time": "refractory_steps",
    "effectors.{kind}.division_time": "cycle_timer",
    "effectors.{kind}.exhaustion_limit": "stimulation",
}


def _duration_minutes(cfg, key):
    """The longest duration (minutes) that config key ``key`` (a STEP_COLUMNS key, resolved) sets a timer to, and
    what it is."""
    if key == "tumour.cycle_time":
        longest = float(lognormal_quantiles(cfg.tumour.cycle_time, cfg.tumour.cycle_time_cv).max())
        return longest, f"the longest cycle drawn ({longest:g} min)"
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node, f"{node:g} min"


def step_count_problems(cfg):
    """A line for every duration whose steps (:func:`duration_steps`) do not fit the column that holds them."""
    from gpusim.state import COLUMNS

    problems = []
    for pattern, column in STEP_COLUMNS.items():
        limit = int(np.iinfo(COLUMNS[column][0]).max)
        kinds = [KIND_NAMES[k] for k in EFFECTOR_KINDS] if "{kind}" in pattern else [None]
        for kind in kinds:
            key = pattern.format(kind=kind)
            minutes, what = _duration_minutes(cfg, key)
            steps = minutes / cfg.run.dt
            if steps > limit:
                problems.append(f"{key}: {what} is {steps:.4g} steps of run.dt; the {column} column "
                                f"({np.dtype(COLUMNS[column][0]).name}) holds at most {limit:,}")
    return problems


# the largest 2D dissociation constant (molecules per contact area) binding computes with: the sum of receptors,
# ligands (each a pool of fewer than 2**31) and K is squared in int64 (kernels.molecules.bound_complexes)
MAX_K_2D = 2**29


def binding_problems(cfg):
    """A line if an affinity's 2D dissociation constant (:func:`k_2d`) is one binding cannot compute with (the first
    such affinity, and how many more there are: they share the synapse's area and confinement length)."""
    too_large = []
    for k in EFFECTOR_KINDS:
        eff = getattr(cfg.effectors, KIND_NAMES[k])
        for key in ("car_kd", "receptor_b_kd", "icar_kd"):
            k2d = k_2d_molecules(getattr(eff, key), cfg.synapse)
            if k2d > MAX_K_2D:
                too_large.append((f"effectors.{KIND_NAMES[k]}.{key}", getattr(eff, key), k2d))
    if not too_large:
        return []
    key, kd, k2d = too_large[0]
    more = f" (and {len(too_large) - 1} more affinities)" if len(too_large) > 1 else ""
    return [f"{key}: {kd:g} nM over synapse.contact_area {cfg.synapse.contact_area:g} um2 and "
            f"synapse.confinement_length {cfg.synapse.confinement_length * 1000:g} nm is {k2d:.3g} molecules per "
            f"contact; binding computes with at most {MAX_K_2D:,}{more}"]


def chance_per_step(rate_per_min, dt_min):
    """Probability of at least one event of a Poisson process in one step."""
    return -math.expm1(-rate_per_min * dt_min)


def relaxation_per_step(time_constant_min, dt_min):
    """Fraction of the way to a set point covered in one step of first-order relaxation."""
    return -math.expm1(-dt_min / time_constant_min)


def holding_share(off_rate_per_min, extraction_min):
    """The share of bound complexes that still hold when the membrane under them has been pulled in: a complex
    dissociates at ``off_rate`` (first order), so ``exp(-koff * extraction time)``.  What separates a fast-off
    binder from a slow one in trogocytosis, since at typical densities both bind nearly every molecule in the
    synapse (Olson 2022; Ghorashian 2019: the low-affinity CAT binder dissociates much faster than FMC63)."""
    return math.exp(-off_rate_per_min * extraction_min)


def effector_step_chances(effector, dt_min, voxel_um):
    """(chance to attempt a step, chance to turn per attempt) of a persistent random walk.

    Speed sets the attempts: ``speed * dt / voxel`` per step.  Persistence is
    the mean time between turns, so a cell turns at a fraction
    ``dt / (attempt * persistence)`` of its attempts.
    """
    attempt = min(1.0, effector.speed * dt_min / voxel_um)
    turn = 1.0 if attempt == 0 else min(1.0, dt_min / (attempt * effector.persistence))
    return attempt, turn


def k_2d(kd_nm, synapse):
    """A 3D dissociation constant (nM) as a 2D one in molecules per contact area.

    K2D = KD * N_A * confinement length (Dustin's confinement approximation),
    times the contact area.
    """
    return max(1, int(round(k_2d_molecules(kd_nm, synapse))))


def k_2d_molecules(kd_nm, synapse):
    """:func:`k_2d` before rounding (a float, any size)."""
    per_m3 = kd_nm * 1e-9 * AVOGADRO * 1e3
    per_um2 = per_m3 * synapse.confinement_length * 1e-6 * 1e-12
    return per_um2 * synapse.contact_area


def sigmoid(signal, threshold, hill):
    """Hill response: 0 at no signal, 1/2 at the threshold, toward 1 above."""
    s = np.asarray(signal, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(s > 0, 1.0 / (1.0 + (threshold / np.maximum(s, 1e-300)) ** hill), 0.0)


def signal_tables(cfg):
    """tables[row, kind, bucket]: hit, stimulation and activation chances (times 2**32) per signal bucket."""
    signals = bucket_signals()
    tables = np.zeros((P.N_TABLES, N_KINDS, N_BUCKETS), dtype=np.int64)
    for kind in EFFECTOR_KINDS:
        eff = getattr(cfg.effectors, KIND_NAMES[kind])
        shift = COSTIMULATION[eff.costimulation]["threshold"]
        lysis = sigmoid(signals, eff.lysis_threshold * shift, eff.hill)
        proliferation = sigmoid(signals, eff.proliferation_threshold * shift, eff.hill)
        tables[P.HIT_TABLE, kind] = [q32(p) for p in eff.hit_chance * lysis]
        tables[P.STIMULATION_TABLE, kind] = [q32(p) for p in lysis]
        tables[P.ACTIVATION_TABLE, kind] = [q32(p) for p in ACTIVATION_MAX * proliferation]
    return tables


def _set(params, block, kind, species, value):
    params[block + kind * N_SPECIES + species] = value


def hold_rows(params, kinds):
    """Give a row of the run's pools table to each species that a kind in the run (``kinds``: the tumour and the
    kinds dosed; no other kind ever appears) has a non-zero set point of (only those are ever made:
    kernels.pools), and a row of the set-point table to each tumour antigen with one; write the rows into
    ``params`` (POOL_ROW, SET_POINT_ROW; -1 for none) and return them, as gpusim.state.State takes them."""
    def rows(held):  # the held ones numbered in order, the others -1
        return np.where(held, np.cumsum(held) - 1, -1)

    pool_rows = rows([any(params[P.SET_POINT + k * N_SPECIES + s] != 0 for k in kinds) for s in range(N_SPECIES)])
    set_point_rows = rows([params[P.SET_POINT + TUMOUR * N_SPECIES + s] != 0 for s in SET_POINT_SPECIES])
    params[P.POOL_ROW : P.POOL_ROW + N_SPECIES] = pool_rows
    params[P.SET_POINT_ROW : P.SET_POINT_ROW + N_SET_POINTS] = set_point_rows
    return {"pools": pool_rows, "set_points": set_point_rows}


def set_extents(params, shape, coarsening=1, held=None):
    """Write the lattice's extent ``shape`` (z, y, x voxels), its field grid's (``coarsening`` times coarser) and
    the divisors that find a voxel's coordinates (:func:`gpusim.kernels.lattice.division_magic`) into ``params``.

    ``held`` (first, stop) are the layers along z a rank of a split run holds (gpusim.parallel.Slab.held): its
    lattice is then those layers, the first of them at z ``first`` of the whole (``FIRST_LAYER``), while the
    fields' grid stays the whole lattice's.
    """
    nz, ny, nx = (int(edge) for edge in shape)
    if nz * ny * nx > MAX_VOXELS:
        raise ValueError(f"a lattice of {nz} x {ny} x {nx} voxels has more than {MAX_VOXELS:,} (2**32)")
    first, stop = (0, nz) if held is None else (int(held[0]), int(held[1]))
    if not 0 <= first < stop <= nz:
        raise ValueError(f"layers {first} to {stop} are not within the lattice's {nz}")
    params[P.NZ], params[P.NY], params[P.NX] = stop - first, ny, nx
    params[P.FIRST_LAYER] = first
    params[P.PLANE_DIVISOR : P.PLANE_DIVISOR + 2] = division_magic(ny * nx)
    params[P.ROW_DIVISOR : P.ROW_DIVISOR + 2] = division_magic(nx)
    params[P.COARSENING] = coarsening
    params[P.COARSENING_DIVISOR : P.COARSENING_DIVISOR + 2] = division_magic(coarsening)
    params[P.GRID_NZ], params[P.GRID_NY], params[P.GRID_NX] = nz // coarsening, ny // coarsening, nx // coarsening


def build(cfg, held=None):
    """All the integer inputs of the rules, as host numpy arrays (a dict); ``held`` as for :func:`set_extents`
    (the layers a rank of a split run holds)."""
    dt = cfg.run.dt
    steps = lambda minutes: duration_steps(minutes, dt)  # noqa: E731
    relax = lambda minutes: q32(relaxation_per_step(minutes, dt))  # noqa: E731
    half_life = lambda minutes: q32(relaxation_per_step(minutes / math.log(2), dt))  # noqa: E731
    tumour, synapse, damage = cfg.tumour, cfg.synapse, cfg.damage
    params = np.zeros(P.N_PARAMS, dtype=np.int64)
    set_extents(params, cfg.lattice.shape, cfg.fields.coarsening, held=held)
    params[P.CONTACT_Q16] = int(round(synapse.contact_fraction * 65536))
    params[P.ANTIGEN_LOSS] = q32(tumour.antigen_loss)
    params[P.NECROSIS_STEPS] = steps(tumour.necrosis_time)
    params[P.DEBRIS_STEPS] = steps(tumour.debris_clearance)

    for kind in range(N_KINDS):
        params[P.LETHAL_DAMAGE + kind] = damage.lethal_hits if kind == TUMOUR else damage.effector_lethal_hits
        params[P.DAMAGE_REPAIR + kind] = q32(chance_per_step(1.0 / damage.hit_repair_time, dt))
        params[P.LETHAL_BITES + kind] = damage.lethal_bites
        params[P.BITE_REPAIR + kind] = q32(chance_per_step(1.0 / damage.bite_repair_time, dt))

    # tumour cells: antigens relax to their own set points; acquired receptors are internalised
    params[P.APOPTOSIS_THRESHOLD + TUMOUR] = q32(chance_per_step(tumour.apoptosis_rate, dt))
    params[P.MOVE_THRESHOLD + TUMOUR] = q32(min(1.0, tumour.speed * dt / cfg.lattice.voxel_size))  # in suspension
    params[P.TURN_THRESHOLD + TUMOUR] = q32(1.0)  # drifting without persistence
    for species, set_point in ((ANTIGEN_A, tumour.antigen_a), (ANTIGEN_B, tumour.antigen_b), (ICAR_LIGAND, tumour.icar_ligand)):
        _set(params, P.SET_POINT, TUMOUR, species, set_point)
        _set(params, P.SYNTHESIS, TUMOUR, species, relax(tumour.reexpression_time))
        _set(params, P.DECAY, TUMOUR, species, relax(tumour.reexpression_time))
    for species in (CAR, RECEPTOR_B, ICAR):
        _set(params, P.DECAY, TUMOUR, species, half_life(tumour.acquired_car_half_life))

    for kind in EFFECTOR_KINDS:
        eff = getattr(cfg.effectors, KIND_NAMES[kind])
        attempt, turn = effector_step_chances(eff, dt, cfg.lattice.voxel_size)
        params[P.MOVE_THRESHOLD + kind] = q32(attempt)
        params[P.TURN_THRESHOLD + kind] = q32(turn)
        params[P.SQUEEZE_THRESHOLD + kind] = q32(eff.squeeze)
        params[P.CHEMOTAXIS_THRESHOLD + kind] = q32(eff.chemotaxis) if cfg.fields.chemokine is not None else 0
        params[P.APOPTOSIS_THRESHOLD + kind] = q32(chance_per_step(1.0 / eff.lifespan, dt))
        for species, set_point in ((CAR, eff.car), (RECEPTOR_B, eff.receptor_b), (ICAR, eff.icar), (ICAR_LIGAND, eff.icar_ligand)):
            _set(params, P.SET_POINT, kind, species, set_point)
            _set(params, P.SYNTHESIS, kind, species, relax(eff.car_reexpression_time))
            _set(params, P.DECAY, kind, species, relax(eff.car_reexpression_time))
        for species in (ANTIGEN_A, ANTIGEN_B):
            _set(params, P.DECAY, kind, species, half_life(eff.acquired_antigen_half_life))
        costim = COSTIMULATION[eff.costimulation]
        params[P.K_CAR + kind] = k_2d(eff.car_kd, synapse)
        params[P.K_RECEPTOR_B + kind] = k_2d(eff.receptor_b_kd, synapse)
        params[P.K_ICAR + kind] = k_2d(eff.icar_kd, synapse)
        params[P.RECEPTOR_B_KILLS + kind] = 1 if eff.receptor_b_role == "car" else 0
        params[P.COSTIMULATION_HALF + kind] = max(1, int(eff.lysis_threshold))  # [est]
        params[P.ICAR_WEIGHT_Q16 + kind] = int(round(eff.icar_weight * 65536))
        params[P.RECOGNITION + kind] = max(1, eff.recognition)
        params[P.ATTACKS_EFFECTORS + kind] = 1 if eff.attacks_effectors else 0
        contact_steps = steps(eff.synapse_time)
        car_holds = holding_share(eff.car_off_rate, synapse.extraction_time)
        taking = eff.trogocytosis * costim["trogocytosis"]
        params[P.TROGOCYTOSIS + kind] = q32(chance_per_step(taking * car_holds, dt))
        params[P.TROGOCYTOSIS_B + kind] = q32(chance_per_step(
            taking * holding_share(eff.receptor_b_off_rate, synapse.extraction_time), dt))
        params[P.REVERSE_TROGOCYTOSIS + kind] = q32(chance_per_step(eff.reverse_trogocytosis * car_holds, dt))
        params[P.INTERNALISATION + kind] = q32(chance_per_step(eff.car_internalisation, dt))
        params[P.TONIC_WEIGHT_Q16 + kind] = int(round(eff.tonic_weight * 65536))
        params[P.SYNAPSE_STEPS + kind] = contact_steps
        params[P.REFRACTORY_STEPS + kind] = steps(eff.refractory_time)
        params[P.BITE_SHARE + kind] = q32(eff.bite_fraction)
        for target in range(N_KINDS):
            adherence = tumour.adherence if target == TUMOUR else 0.0
            params[P.ENGULF + kind * N_KINDS + target] = q32(eff.phagocytosis / (1.0 + adherence)) if kind == CAR_M else 0
        params[P.EXHAUSTION_LIMIT + kind] = steps(eff.exhaustion_limit)
        params[P.EXHAUSTION_RECOVERY + kind] = q32(chance_per_step(1.0 / eff.exhaustion_recovery_time, dt))
        params[P.DIVISION_BUDGET + kind] = eff.divisions
        params[P.DIVISION_STEPS + kind] = steps(eff.division_time)

    held = hold_rows(params, {TUMOUR} | {KIND_NAMES.index(dose.kind) for dose in cfg.dose})
    set_point_table = np.zeros((N_SET_POINTS, 1024), dtype=np.int32)
    for row, (median, cv) in ((SET_A, (tumour.antigen_a, tumour.antigen_a_cv)), (SET_B, (tumour.antigen_b, tumour.antigen_b_cv))):
        set_point_table[row] = np.clip(np.rint(lognormal_quantiles(median, cv)), 0, 2**30)
    return {
        "params": params,
        "held": held,  # the rows of the per-run columns the agent table holds (gpusim.state.State)
        "oxygen_levels": np.asarray([tumour.hypoxia, tumour.anoxia], dtype=np.float64),  # mmHg
        "chemotaxis_sensitivity": np.asarray(
            [0.0] + [getattr(cfg.effectors, KIND_NAMES[k]).chemotaxis_sensitivity for k in EFFECTOR_KINDS], dtype=np.float64
        ),  # nM, per kind
        "tables": signal_tables(cfg),
        "cycle_table": cycle_table_steps(tumour.cycle_time, tumour.cycle_time_cv, dt),
        "age_table": growth_age_table_q16(),
        "set_point_table": set_point_table,
        "inheritance_table": inheritance_factors_q16(tumour.set_point_noise),
    }
