"""The run configuration: TOML, validated whole against a typed schema.

A config is read from a preset shipped with the package or from a TOML file,
merged with ``--set section.key=value`` overrides, and validated in one pass:
every problem is reported as one line naming the key and the reason, and
nothing runs while any remains.  Dimensional values carry units
(:mod:`gpusim.units`); the validated model holds them in internal units
(micrometres, minutes).
"""

import copy
import math
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


def _quantity(dimension, positive=False, non_negative=False):
    def convert(value):
        try:
            number = parse_quantity(value, dimension)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if not math.isfinite(number):
            raise ValueError(f"must be finite (got {value!r})")
        if positive and number <= 0:
            raise ValueError(f"must be positive (got {value!r})")
        if non_negative and number < 0:
            raise ValueError(f"must not be negative (got {value!r})")
        return number

    return Annotated[float, BeforeValidator(convert)]


Duration = _quantity("time", positive=True)
Moment = _quantity("time", non_negative=True)
Length = _quantity("length", positive=True)
Speed = _quantity("speed", non_negative=True)
Rate = _quantity("rate", non_negative=True)
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RunSection(_Section):
    duration: Duration = "2 d"
    dt: Duration = "1 min"
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 1
    snapshot_every: Duration = "2 h"
    sort_every: Duration = "2 h"
    backend: Literal["auto", "cpu", "cuda"] = "auto"


class LatticeSection(_Section):
    shape: tuple[Annotated[int, Field(ge=3)], Annotated[int, Field(ge=3)], Annotated[int, Field(ge=3)]] = (64, 64, 64)
    voxel_size: Length = "10 um"


class TumourSection(_Section):
    initial_cells: Annotated[int, Field(ge=0)] = 10000
    cycle_time: Duration = "24 h"
    cycle_time_cv: Annotated[float, Field(ge=0.0, le=2.0)] = 0.25
    apoptosis_rate: Rate = "0.002 /h"


class EffectorSection(_Section):
    speed: Speed = "5 um/min"
    persistence: Duration = "10 min"
    squeeze: Fraction = 0.3
    lifespan: Duration = "8.6 d"


class EffectorsSection(_Section):
    car_t: EffectorSection = EffectorSection()
    car_nk: EffectorSection = EffectorSection(speed="4 um/min", lifespan="7 d")
    car_m: EffectorSection = EffectorSection(speed="1 um/min", persistence="30 min", squeeze=0.05, lifespan="30 d")


class DoseEntry(_Section):
    time: Moment
    count: Annotated[int, Field(ge=1)]
    kind: Literal["car_t", "car_nk", "car_m"] = "car_t"
    placement: Literal["rim", "uniform"] = "rim"


class Config(_Section):
    description: str = ""
    run: RunSection = RunSection()
    lattice: LatticeSection = LatticeSection()
    tumour: TumourSection = TumourSection()
    effectors: EffectorsSection = EffectorsSection()
    dose: list[DoseEntry] = []

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


def _check_whole(cfg):
    """Problems that involve several keys at once."""
    problems = []
    dt = cfg.run.dt

    def whole_steps(key, minutes):
        steps = minutes / dt
        if abs(steps - round(steps)) > 1e-6:
            problems.append(f"{key}: {minutes:g} min is not a whole number of steps of run.dt = {dt:g} min")

    whole_steps("run.duration", cfg.run.duration)
    whole_steps("run.snapshot_every", cfg.run.snapshot_every)
    whole_steps("run.sort_every", cfg.run.sort_every)
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
    voxel = cfg.lattice.voxel_size
    for name in ("car_t", "car_nk", "car_m"):
        eff = getattr(cfg.effectors, name)
        per_step = eff.speed * dt / voxel
        if per_step > 1.0:
            problems.append(
                f"effectors.{name}.speed: {eff.speed:g} um/min covers {per_step:.2f} voxels per step; "
                "at most one voxel per step (lower run.dt or the speed)"
            )
    dosed = sum(d.count for d in cfg.dose)
    if cfg.tumour.initial_cells + dosed > cfg.voxels:
        problems.append(
            f"tumour.initial_cells: {cfg.tumour.initial_cells} cells plus {dosed} dosed effectors "
            f"do not fit in a lattice of {cfg.voxels} voxels"
        )
    return problems


def validate(raw):
    """Validate a raw config dict whole; return the :class:`Config` or raise :class:`ConfigError`."""
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(e) for e in exc.errors()) from None
    problems = _check_whole(cfg)
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
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: malformed TOML: {exc}"]) from None


def read_source(source):
    """The raw dict of a preset name or a TOML file path."""
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError([f"{source}: no such config file (and no preset of that name; `gpusim presets` lists them)"])
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{source}: cannot read: {exc}"]) from None
        return _parse_toml(text, source)
    if source in preset_names():
        return _parse_toml(preset_text(source), f"preset {source}")
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
    return key.split("."), value


def apply_override(raw, path, value):
    """Set ``raw[path...] = value``; integer parts index into lists (``dose.0.count``)."""
    node = raw
    for depth, part in enumerate(path[:-1]):
        key = int(part) if part.isdigit() and isinstance(node, list) else part
        if isinstance(node, list):
            if not isinstance(key, int) or key >= len(node):
                raise ConfigError([f"{'.'.join(path)}: there is no entry {part} in {'.'.join(path[:depth])}"])
            node = node[key]
        else:
            if not isinstance(node.get(key, {}), (dict, list)):
                raise ConfigError([f"{'.'.join(path)}: {'.'.join(path[: depth + 1])} is a value, not a section"])
            node = node.setdefault(key, {})
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError([f"{'.'.join(path)}: there is no entry {last}"])
        node[int(last)] = value
    else:
        node[last] = value


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
    return validate(raw), raw
