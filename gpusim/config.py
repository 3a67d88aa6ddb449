"""The run configuration: TOML, validated whole against a typed schema.

A config is read from a preset shipped with the package or from a TOML file,
merged with ``--set section.key=value`` overrides, and validated in one pass:
every problem is reported as one line naming the key and the reason, and
nothing runs while any remains.  Dimensional values carry units
(:mod:`gpusim.units`); the validated model holds them in internal units
(micrometres, minutes).
"""

import copy
import hashlib
import os
import stat
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gpusim.units import UnitError, parse_quantity


class ConfigError(ValueError):
    """Bad input: one or more problems, each naming the key and the reason."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Quantity:
    """Marks a config value as a physical quantity of ``dimension`` (gpusim.units), for the reference."""

    def __init__(self, dimension, positive=False, non_negative=False):
        self.dimension, self.positive, self.non_negative = dimension, positive, non_negative


def _quantity(dimension, positive=False, non_negative=False):
    def convert(value):
        try:
            number = parse_quantity(value, dimension)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if positive and number <= 0:
            raise ValueError(f"must be positive (got {value!r})")
        if non_negative and number < 0:
            raise ValueError(f"must not be negative (got {value!r})")
        return number

    return Annotated[float, BeforeValidator(convert), Quantity(dimension, positive, non_negative)]


Duration = _quantity("time", positive=True)
Moment = _quantity("time", non_negative=True)
Length = _quantity("length", positive=True)
Speed = _quantity("speed", non_negative=True)
Rate = _quantity("rate", non_negative=True)
Area = _quantity("area", positive=True)
Affinity = _quantity("concentration", positive=True)
Pressure = _quantity("pressure", non_negative=True)
Level = _quantity("concentration", non_negative=True)
Diffusivity = _quantity("diffusivity", non_negative=True)
Production = _quantity("production", non_negative=True)
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0, lt=2**30)]
Spread = Annotated[float, Field(ge=0.0, le=3.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RunSection(_Section):
    duration: Duration = "2 d"
    dt: Duration = "1 min"
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 1
    snapshot_every: Duration = "2 h"
    sort_every: Duration = "2 h"
    checkpoint_every: Duration = "6 h"  # complete state in the store, for `gpusim resume`
    backend: Literal["auto", "cpu", "cuda"] = "auto"


class LatticeSection(_Section):
    shape: tuple[Annotated[int, Field(ge=3)], Annotated[int, Field(ge=3)], Annotated[int, Field(ge=3)]] = (64, 64, 64)
    voxel_size: Length = "10 um"


class TumourSection(_Section):
    initial_cells: Annotated[int, Field(ge=0)] = 10000
    placement: Literal["ball", "well_mixed"] = "ball"  # a ball at the centre, or scattered as in a co-culture well
    # free tumour cells drift in a random direction at this speed, as in a shaken suspension culture; 0: they stay
    speed: Speed = "0 um/min"
    cycle_time: Duration = "24 h"
    cycle_time_cv: Annotated[float, Field(ge=0.0, le=2.0)] = 0.25
    apoptosis_rate: Rate = "0.002 /h"
    # molecules (per cell); set points are log-normal across cells, heritable
    antigen_a: Count = 20000  # median CD19-like density (B-ALL/NALM6 1-4e4, Ginaldi 1998)
    antigen_a_cv: Spread = 0.5
    antigen_b: Count = 0
    antigen_b_cv: Spread = 0.5
    icar_ligand: Count = 0  # the NK self-marker is absent from tumour cells
    set_point_noise: Spread = 0.05  # CV of the multiplicative noise a daughter's set points inherit
    antigen_loss: Fraction = 1e-4  # chance per division that a daughter becomes antigen-A negative
    reexpression_time: Duration = "24 h"  # time constant of antigen returning to its set point [est]
    acquired_car_half_life: Duration = "6 h"  # internalisation of CAR gained by reverse trogocytosis [est]
    adherence: Annotated[float, Field(ge=0.0, le=1000.0)] = 1.0  # resistance to whole-cell phagocytosis
    # oxygen (with [fields.oxygen]); PhysiCell's defaults: proliferation from 5 mmHg, necrosis below 2.5 mmHg
    hypoxia: Pressure = "5 mmHg"  # below this a tumour cell stops cycling (quiescent) until oxygen returns
    anoxia: Pressure = "2.5 mmHg"  # below this it counts towards necrosis
    necrosis_time: Duration = "6 h"  # time anoxic before a cell dies necrotic [est]
    debris_clearance: Duration = "2 d"  # a necrotic cell's debris holds its voxel this long [est]


class EffectorSection(_Section):
    speed: Speed = "5 um/min"
    persistence: Duration = "10 min"
    squeeze: Fraction = 0.3
    chemotaxis: Fraction = 0.5  # chance that a new heading points up the chemokine gradient (with [fields.chemokine])
    chemotaxis_sensitivity: Level = "1 pM"  # smallest chemokine difference between neighbouring grid voxels sensed [est]
    lifespan: Duration = "8.6 d"
    # receptors and markers (molecules per cell)
    car: Count = 30000  # CARCADE; Singh 2020: 1.5e4-5e4
    car_kd: Affinity = "0.3 nM"  # FMC63 scFv by SPR (Ghorashian 2019); binding saturates at typical densities
    # how long a complex holds: FMC63-like, KD 0.3 nM at an scFv on-rate of ~2.3e5 /M/s: koff ~7e-5 /s [est]
    car_off_rate: Rate = "0.0041 /min"
    receptor_b: Count = 0
    receptor_b_kd: Affinity = "50 nM"
    receptor_b_off_rate: Rate = "0.69 /min"  # a 50 nM binder at the same on-rate [est]
    receptor_b_role: Literal["car", "ccr"] = "ccr"  # a CAR kills on B; a CCR only costimulates
    icar: Count = 0
    icar_kd: Affinity = "50 nM"
    icar_weight: Annotated[float, Field(ge=0.0, le=100.0)] = 1.0  # inhibition per iCAR complex
    icar_ligand: Count = 0  # NK self-marker carried by this kind
    car_reexpression_time: Duration = "12 h"  # [est]
    # CAR taken into the cell while it is engaged: surface CAR falls over a day of attack (Davenport 2015; Walker
    # 2017) [est]
    car_internalisation: Rate = "0.005 /min"
    acquired_antigen_half_life: Duration = "3 h"  # internalisation, 2-24 h [est]
    costimulation: Literal["cd28", "41bb"] = "cd28"
    # signalling: thresholds in bound complexes (signal) at half-maximal response
    recognition: Count = 20  # signal needed to engage a neighbour
    lysis_threshold: Count = 400  # ~2,000 CD19/target at default CAR and affinity (Majzner ASH 2018)
    proliferation_threshold: Count = 4000  # ~10x the lysis threshold (Watanabe 2015)
    hill: Annotated[float, Field(gt=0.0, le=20.0)] = 2.0
    # lytic hits per step at full signal: a 25-min contact delivers the 3 hits that kill (Weigelin 2021) more often
    # than not [est]
    hit_chance: Fraction = 0.14
    # trogocytosis: the rate at which the membrane under a bound complex is pulled into the effector, for a complex
    # that holds through the pull (synapse.extraction_time) [est]; reverse: bound CAR left on the target (Zhai 2023)
    trogocytosis: Rate = "0.15 /min"
    reverse_trogocytosis: Rate = "0.01 /min"
    tonic_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.03  # signal per cis complex of acquired antigen and own CAR [est]
    synapse_time: Duration = "25 min"  # engage-kill-detach ~25 min (Cazaux 2019)
    # granule reload after a contact; with the contact and its kill chance, a kill rate per effector of at most
    # ~0.35 /h, Singh 2020's in vitro maximum [est]
    refractory_time: Duration = "50 min"
    divisions: Annotated[int, Field(ge=0, le=100)] = 3
    division_time: Duration = "12 h"  # from activation to division
    exhaustion_limit: Duration = "250 min"  # stimulated time that exhausts: ~10 engagements (CARCADE)
    exhaustion_recovery_time: Duration = "1 h"  # mean time to recover one step of stimulation
    # CAR-macrophages: how a contact ends
    attacks_effectors: bool = True  # engages effectors wearing acquired antigen (fratricide)
    phagocytosis: Fraction = 0.0  # chance that a contact ends in engulfment of a non-adherent target
    bite_fraction: Annotated[float, Field(ge=0.0, le=1.0 / 27.0)] = 0.0  # of each target pool per bite


class CarNKSection(EffectorSection):
    """CAR-NK defaults: slower, shorter-lived, carrying the NK self-marker an iCAR can recognise (Li 2022)."""

    speed: Speed = "4 um/min"
    lifespan: Duration = "7 d"
    car: Count = 20000
    icar_ligand: Count = 20000
    divisions: Annotated[int, Field(ge=0, le=100)] = 2


class CarMSection(EffectorSection):
    """CAR-macrophage defaults: slow; contacts end in engulfment or a trogocytic bite, no lytic hits."""

    speed: Speed = "1 um/min"
    persistence: Duration = "30 min"
    squeeze: Fraction = 0.05
    lifespan: Duration = "30 d"
    hit_chance: Fraction = 0.0
    trogocytosis: Rate = "0 /min"
    reverse_trogocytosis: Rate = "0 /min"
    divisions: Annotated[int, Field(ge=0, le=100)] = 0
    synapse_time: Duration = "30 min"
    attacks_effectors: bool = False  # fratricide is documented for cytotoxic lymphocytes, not macrophages
    phagocytosis: Fraction = 0.3
    bite_fraction: Annotated[float, Field(ge=0.0, le=1.0 / 27.0)] = 0.03


class EffectorsSection(_Section):
    car_t: EffectorSection = EffectorSection()
    car_nk: CarNKSection = CarNKSection()
    car_m: CarMSection = CarMSection()


class DamageSection(_Section):
    """How targets (tumour cells, and effectors attacked by effectors) take and repair damage."""

    lethal_hits: Annotated[int, Field(ge=1, le=10000)] = 3  # lytic hits that kill; they add up across effectors
    # an effector attacked by another (fratricide) takes more: cytotoxic lymphocytes carry serpin PI-9, which
    # blocks the granzyme B that enters them (Bird 1998) [est]
    effector_lethal_hits: Annotated[int, Field(ge=1, le=10000)] = 6
    hit_repair_time: Duration = "50 min"  # sublethal damage decays within ~50 min (Weigelin 2021)
    lethal_bites: Annotated[int, Field(ge=1, le=10000)] = 6  # CAR-M bites that kill (trogoptosis)
    bite_repair_time: Duration = "6 h"


class SynapseSection(_Section):
    contact_fraction: Fraction = 0.2  # of each surface inside the synapse (CARCADE CONTACT_FRAC)
    contact_area: Area = "40 um2"  # membrane area of one synapse
    confinement_length: Length = "10 nm"  # converts a 3D KD to a 2D one [est]
    extraction_time: Duration = "15 min"  # how long a complex must hold for the membrane under it to be pulled in [est]
    trogocytosis_detection: Count = 500  # acquired antigen that makes an effector trog-positive


class DoseEntry(_Section):
    time: Moment
    count: Annotated[int, Field(ge=1)]
    kind: Literal["car_t", "car_nk", "car_m"] = "car_t"
    placement: Literal["rim", "uniform"] = "rim"


class OutputSection(_Section):
    """What each snapshot (every run.snapshot_every) writes besides the cell-kind labels and histograms."""

    fields: list[Literal["antigen_a", "acquired_antigen_a", "car"]] = ["antigen_a", "acquired_antigen_a", "car"]
    agent_tables: bool = True  # every cell's columns at every snapshot (agents/)


Kind = Literal["tumour", "car_t", "car_nk", "car_m"]
Face = Literal["z-", "z+", "y-", "y+", "x-", "x+"]
ALL_FACES = ["z-", "z+", "y-", "y+", "x-", "x+"]


class _SolubleField(_Section):
    """A diffusing species: diffusion, decay, uptake by cells, and where it is supplied at a fixed level."""

    diffusion: Diffusivity
    decay: Rate = "0 /min"
    uptake: dict[Kind, Rate] = {}  # by each live cell of a kind, as a rate in the cell's own voxel
    supply_faces: list[Face] = []  # faces of the domain held at the supply level (Dirichlet); others let nothing through
    vessel_density: Fraction = 0.0  # share of grid voxels that are vessels holding the supply level, placed at random
    vessels: list[tuple[int, int, int]] = []  # grid voxels (z, y, x) that are vessels
    vessel_mask: str = ""  # a .npy file of the grid's shape: nonzero voxels are vessels
    quasi_steady: bool = False  # solve for the steady state at each update instead of stepping in time


class OxygenField(_SolubleField):
    """Oxygen partial pressure (mmHg); BioFVM/PhysiCell defaults (Ghaffarizadeh 2016, 2018)."""

    diffusion: Diffusivity = "1e5 um^2/min"
    decay: Rate = "0.1 /min"
    # ~5e-17 mol/s per tumour cell of ~1000 um^3 at 38 mmHg and 1.4 uM/mmHg gives ~50 /min; effectors use less [est]
    uptake: dict[Kind, Rate] = {"tumour": "50 /min", "car_t": "5 /min", "car_nk": "5 /min", "car_m": "10 /min"}
    supply: Pressure = "38 mmHg"  # tissue level near vessels (PhysiCell's physioxia)
    supply_faces: list[Face] = ALL_FACES
    quasi_steady: bool = True  # oxygen equilibrates within seconds: its steady state at every update


class ChemokineField(_SolubleField):
    """A chemokine tumour cells secrete (CXCL9/10-like, nM) that draws effectors in [est]."""

    diffusion: Diffusivity = "6000 um^2/min"  # ~1e-6 cm^2/s, a small protein in tissue
    decay: Rate = "0.02 /min"
    uptake: dict[Kind, Rate] = {}
    secretion: dict[Kind, Production] = {"tumour": "0.01 nM/min"}  # per cell
    attacked_secretion: Annotated[float, Field(ge=0.0, le=1000.0)] = 4.0  # factor while a tumour cell bears lytic damage
    supply: Level = "0 nM"


class FieldsSection(_Section):
    """The diffusing fields, solved on a grid ``coarsening`` times coarser than the lattice, every ``every``."""

    coarsening: Annotated[int, Field(ge=1, le=64)] = 2
    every: Duration = "5 min"  # one update per 5 steps keeps the fields under 20% of the step at 1e6 agents
    settle: Annotated[int, Field(ge=0, le=100000)] = 50  # solver steps before the run, toward the quasi-steady state
    oxygen: OxygenField | None = None
    chemokine: ChemokineField | None = None

    @property
    def active(self):
        """(name, section) of every configured field, oxygen first."""
        return [(name, section) for name, section in (("oxygen", self.oxygen), ("chemokine", self.chemokine))
                if section is not None]


class DepletionEntry(_Section):
    """Every cell of a kind removed at a time (the CAR-T removal arm of Hamieh 2019)."""

    time: Moment
    kind: Literal["car_t", "car_nk", "car_m"] = "car_t"


class Config(_Section):
    description: str = ""
    run: RunSection = RunSection()
    lattice: LatticeSection = LatticeSection()
    tumour: TumourSection = TumourSection()
    effectors: EffectorsSection = EffectorsSection()
    synapse: SynapseSection = SynapseSection()
    damage: DamageSection = DamageSection()
    output: OutputSection = OutputSection()
    fields: FieldsSection = FieldsSection()
    dose: list[DoseEntry] = []
    depletion: list[DepletionEntry] = []
    # control arms run after the run with the same seed, each into a store of its own inside the run's
    # (STORE/arms/NAME): "untreated" without doses, "no_trogocytosis" with no membrane changing hands
    arms: Annotated[list[Literal["untreated", "no_trogocytosis"]], Field(max_length=2)] = []

    # --- derived quantities used by the engine ---------------------------------
    @property
    def steps(self):
        return round(self.run.duration / self.run.dt)

    def steps_of(self, minutes):
        return round(minutes / self.run.dt)

    @property
    def voxels(self):
        z, y, x = self.lattice.shape
        return z * y * x


def _describe(error):
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    kind = error["type"]
    if kind == "extra_forbidden":
        reason = "unknown key"
    elif kind == "missing":
        reason = "missing required key"
    elif kind == "value_error":
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind == "literal_error":
        reason = f"{error['msg'].lower()} (got {error['input']!r})"
    else:
        reason = f"{error['msg'][0].lower()}{error['msg'][1:]} (got {error['input']!r})"
    return f"{loc}: {reason}" if loc else reason


# the most steps a run may have: its time series keeps a row of every observable for each step, on the host
# (about 4 KiB a step) and in the store; 2**20 steps are two years at the default 1 min step
MAX_STEPS = 2**20


def not_whole_steps(key, minutes, dt, interval=False):
    """The problem with a time of ``minutes`` given as ``key`` if it is not a whole number of steps of ``dt``
    minutes (an ``interval`` must also be at least one step, and no time more than MAX_STEPS), else None."""
    steps = minutes / dt
    if steps > MAX_STEPS:
        return f"{key}: {minutes:g} min is {steps:.3g} steps of run.dt = {dt:g} min; a run has at most {MAX_STEPS:,}"
    if abs(steps - round(steps)) > 1e-6:
        return f"{key}: {minutes:g} min is not a whole number of steps of run.dt = {dt:g} min"
    if interval and round(steps) < 1:
        return f"{key}: {minutes:g} min is shorter than one step of run.dt = {dt:g} min"
    return None


def _check_whole(cfg, check_files=True):
    """Problems that involve several keys at once (with ``check_files``, the input files' too)."""
    problems = []
    dt = cfg.run.dt

    def whole_steps(key, minutes, interval=False):
        problem = not_whole_steps(key, minutes, dt, interval)
        if problem:
            problems.append(problem)
        return problem is None

    if len(set(cfg.arms)) != len(cfg.arms):
        problems.append("arms: an arm is listed twice")
    if not whole_steps("run.duration", cfg.run.duration, interval=True):
        return problems  # the checks below count steps (a step too short shows here first)
    intervals = [whole_steps(f"run.{key}", getattr(cfg.run, key), interval=True)
                 for key in ("snapshot_every", "sort_every", "checkpoint_every")]
    if not all(intervals):
        return problems
    ratio = cfg.run.duration / cfg.run.snapshot_every
    if abs(ratio - round(ratio)) > 1e-6:
        problems.append(
            f"run.snapshot_every: the run's duration ({cfg.run.duration:g} min) is not a whole number "
            f"of snapshot intervals ({cfg.run.snapshot_every:g} min)"
        )
    for n, dose in enumerate(cfg.dose):
        whole_steps(f"dose.{n}.time", dose.time)
        if dose.time > cfg.run.duration:
            problems.append(f"dose.{n}.time: {dose.time:g} min is after the end of the run ({cfg.run.duration:g} min)")
    for n, depletion in enumerate(cfg.depletion):
        whole_steps(f"depletion.{n}.time", depletion.time)
        if depletion.time > cfg.run.duration:
            problems.append(f"depletion.{n}.time: {depletion.time:g} min is after the end of the run")
    voxel = cfg.lattice.voxel_size
    for key, speed in [("tumour.speed", cfg.tumour.speed)] + [
            (f"effectors.{name}.speed", getattr(cfg.effectors, name).speed) for name in ("car_t", "car_nk", "car_m")]:
        per_step = speed * dt / voxel
        if per_step > 1.0:
            problems.append(
                f"{key}: {speed:g} um/min covers {per_step:.2f} voxels per step; "
                "at most one voxel per step (lower run.dt or the speed)"
            )
    for name in ("car_t", "car_nk", "car_m"):
        eff = getattr(cfg.effectors, name)
        if eff.proliferation_threshold < eff.lysis_threshold:
            problems.append(
                f"effectors.{name}.proliferation_threshold: {eff.proliferation_threshold} is below the lysis "
                f"threshold ({eff.lysis_threshold}); proliferation needs the stronger signal (Watanabe 2015)"
            )
        if eff.receptor_b > 0 and cfg.tumour.antigen_b == 0:
            problems.append(
                f"effectors.{name}.receptor_b: {eff.receptor_b} receptors against antigen B, but tumour.antigen_b "
                "is 0: the receptor has no ligand (set tumour.antigen_b or drop the receptor)"
            )
        if eff.icar > 0 and cfg.tumour.icar_ligand == 0 and all(
            getattr(cfg.effectors, other).icar_ligand == 0 for other in ("car_t", "car_nk", "car_m")
        ):
            problems.append(
                f"effectors.{name}.icar: {eff.icar} iCARs, but no cell carries their ligand "
                "(set icar_ligand on an effector kind or on the tumour)"
            )
    problems += _check_fields(cfg, check_files)
    from gpusim.kernels.lattice import MAX_VOXELS
    from gpusim.parameters import binding_problems, step_count_problems

    problems += step_count_problems(cfg) + binding_problems(cfg)

    if cfg.voxels > MAX_VOXELS:
        z, y, x = cfg.lattice.shape
        problems.append(f"lattice.shape: {z} x {y} x {x} is {cfg.voxels:,} voxels; a lattice holds at most "
                        f"{MAX_VOXELS:,} (2**32, a cube of 1625)")
    dosed = sum(d.count for d in cfg.dose)
    if cfg.tumour.initial_cells + dosed > cfg.voxels:
        problems.append(
            f"tumour.initial_cells: {cfg.tumour.initial_cells} cells plus {dosed} dosed effectors "
            f"do not fit in a lattice of {cfg.voxels} voxels"
        )
    return problems


def _check_vessel_mask(key, path, grid):
    """The problems with a vessel mask: it must be a regular ``.npy`` file holding a numeric array of the field
    grid's shape, all there.  Only its header is read (a FIFO or a device is never read from, an archive never
    unpacked)."""
    import numpy as np

    if Path(path).suffix != ".npy":
        return [f"{key}: {path!r} is not a .npy file"]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return [f"{key}: cannot open {path!r} ({exc.strerror})"]
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return [f"{key}: {path!r} is not a regular file"]
        try:
            version = np.lib.format.read_magic(file)
            header = np.lib.format.read_array_header_2_0 if version >= (2, 0) else np.lib.format.read_array_header_1_0
            shape, _fortran, dtype = header(file)
            data_start, size = file.tell(), os.fstat(file.fileno()).st_size
        except (OSError, ValueError) as exc:
            return [f"{key}: cannot read {path!r} as a .npy array ({exc})"]
    if dtype.hasobject or dtype.kind not in "biuf":
        return [f"{key}: {path!r} holds {dtype} values; a vessel mask holds numbers (nonzero: a vessel)"]
    if tuple(shape) != tuple(grid):
        return [f"{key}: {path!r} has shape {tuple(shape)}, the field grid is {tuple(grid)}"]
    if size < data_start + int(np.prod(shape)) * dtype.itemsize:
        return [f"{key}: {path!r} is truncated ({size} bytes for a {dtype} array of shape {tuple(shape)})"]
    return []


def input_files(cfg):
    """The files a run reads besides its config, by config key (the vessel masks): their content is part of the
    run, so the store keeps their digests."""
    return {f"fields.{name}.vessel_mask": section.vessel_mask for name, section in cfg.fields.active
            if section.vessel_mask}


def file_digest(path):
    """sha256 (hex) of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_fields(cfg, check_files):
    fields = cfg.fields
    problems = []
    if not fields.active:
        return problems
    f = fields.coarsening
    shape = cfg.lattice.shape
    if any(edge % f for edge in shape):
        problems.append(f"fields.coarsening: {f} does not divide the lattice ({shape[0]} x {shape[1]} x {shape[2]} voxels)")
        return problems
    grid = tuple(edge // f for edge in shape)
    problem = not_whole_steps("fields.every", fields.every, cfg.run.dt, interval=True)
    if problem:
        problems.append(problem)
    for name, section in fields.active:
        for n, vessel in enumerate(section.vessels):
            if any(c < 0 or c >= g for c, g in zip(vessel, grid)):
                problems.append(f"fields.{name}.vessels.{n}: {list(vessel)} is outside the field grid "
                                f"({grid[0]} x {grid[1]} x {grid[2]} voxels of {f * cfg.lattice.voxel_size:g} um)")
        if section.vessel_mask and check_files:
            problems += _check_vessel_mask(f"fields.{name}.vessel_mask", section.vessel_mask, grid)
        if len(set(section.supply_faces)) != len(section.supply_faces):
            problems.append(f"fields.{name}.supply_faces: a face is listed twice")
    if cfg.tumour.anoxia > cfg.tumour.hypoxia:
        problems.append(f"tumour.anoxia: {cfg.tumour.anoxia:g} mmHg is above tumour.hypoxia "
                        f"({cfg.tumour.hypoxia:g} mmHg); anoxia is the deeper state")
    return problems


def validate(raw, check_files=True):
    """Validate a raw config dict whole; return the :class:`Config` or raise :class:`ConfigError`.  With
    ``check_files`` the files it names (vessel masks) must be there as a run reads them; a stored config is read
    without them."""
    problem = nesting_problem(raw, "config")
    if problem:
        raise ConfigError([problem])
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(e) for e in exc.errors()) from None
    problems = _check_whole(cfg, check_files)
    if problems:
        raise ConfigError(problems)
    return cfg


# --- presets, files and overrides ----------------------------------------------


def preset_names():
    folder = resources.files("gpusim") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def preset_text(name):
    return (resources.files("gpusim") / "presets" / f"{name}.toml").read_text()


def _parse_toml(text, where):
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: malformed TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: tables and lists nested too deeply"]) from None
    problem = nesting_problem(raw, where)
    if problem:
        raise ConfigError([problem])
    return raw


def merge(base, override):
    """``override`` laid over ``base``: tables merge key by key, everything else (lists too) is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_source(source, _seen=()):
    """The raw dict of a preset name or a TOML file path, with ``extends = "PRESET"`` resolved."""
    raw = _read_one(source)
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError([f"extends: expected a preset name, got {base!r}"])
    if base in _seen or base == source:
        raise ConfigError([f"extends: {base!r} extends itself through {' -> '.join((*_seen, source))}"])
    if base not in preset_names():
        raise ConfigError([f"extends: no preset named {base!r} (`gpusim presets` lists them)"])
    return merge(read_source(base, (*_seen, str(source))), raw)


MAX_CONFIG_BYTES = 1 << 20  # a config is a page of TOML; a larger file is not one


def _read_one(source):
    """A config file's raw dict (a regular file by that name), else a preset's; a folder never hides a preset."""
    path = Path(source)
    if path.is_file():
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError([f"{source}: {path.stat().st_size:,} bytes is not a config (at most "
                                   f"{MAX_CONFIG_BYTES:,})"])
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{source}: cannot read: {exc}"]) from None
        return _parse_toml(text, source)
    if source in preset_names():
        return _parse_toml(preset_text(source), f"preset {source}")
    if path.suffix == ".toml" or path.exists():
        raise ConfigError([f"{source}: no such config file (and no preset of that name; `gpusim presets` lists them)"])
    raise ConfigError([f"{source}: no such preset or config file (`gpusim presets` lists the presets)"])


def parse_override(item):
    """``'run.duration=2 d'`` -> (['run', 'duration'], '2 d'); the value is read as TOML, else as a string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError([f"--set {item!r}: expected section.key=value"])
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    except RecursionError:
        raise ConfigError([f"--set {key}: the value is nested too deeply"]) from None
    problem = nesting_problem(value, f"--set {key}")
    if problem:
        raise ConfigError([problem])
    return key.split("."), value


def apply_override(raw, path, value):
    """Set ``raw[path...] = value``; integer parts index into lists (``dose.0.count``), missing sections are made."""
    key = ".".join(path)
    node = raw
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([f"{key}: there is no entry {part} in {'.'.join(path[:depth])}"])
            child = node[int(part)]
        else:
            child = node.setdefault(part, {})
        if not isinstance(child, (dict, list)):
            raise ConfigError([f"{key}: {'.'.join(path[: depth + 1])} is a value, not a section"])
        node = child
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError([f"{key}: there is no entry {last}"])
        node[int(last)] = value
    else:
        node[last] = value


MAX_NESTING = 16  # tables and lists within each other: a config needs four


def nesting_problem(value, where):
    """A line if ``value`` nests tables and lists deeper than MAX_NESTING, else None (looked at without
    recursion, so that no depth can exhaust the stack)."""
    pending = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_NESTING:
            return f"{where}: tables and lists nested more than {MAX_NESTING} deep"
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return None


def load(source, overrides=(), seed=None, backend=None):
    """Read, override and validate a config.  Returns ``(Config, raw dict)``."""
    raw = copy.deepcopy(source) if isinstance(source, dict) else read_source(source)
    for item in overrides:
        path, value = parse_override(item)
        apply_override(raw, path, value)
    if seed is not None:
        raw.setdefault("run", {})["seed"] = seed
    if backend is not None:
        raw.setdefault("run", {})["backend"] = backend
    _absolute_input_paths(raw)
    return validate(raw), raw


def _absolute_input_paths(raw):
    """Input files named relative to the working directory, named absolutely: the store keeps the config, and a
    resume may run elsewhere."""
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        return
    for section in fields.values():
        if isinstance(section, dict) and isinstance(section.get("vessel_mask"), str) and section["vessel_mask"]:
            section["vessel_mask"] = str(Path(section["vessel_mask"]).expanduser().absolute())
