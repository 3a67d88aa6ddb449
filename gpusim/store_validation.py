"""What a store must be before gpusim reads it: a store is untrusted input, checked as strictly as a config.

A store is opened in four looks, each before anything is read that it
vouches for:

1. **The tree**: the store's folder holds folders and regular files only (no
   symbolic link, FIFO or device that could lead a read or a write outside it),
   and no metadata file larger than metadata can be.
2. **The root attributes**: one typed schema (:class:`RootAttributes`) with the
   store's own marker; the stored config validates, and everything the
   attributes say about the run agrees with it (seed, step, lattice, snapshot
   clocks, the checkpoint's path and clock, the fields written).
3. **The arrays**: every array the config implies is there with the shape and
   dtype it implies, in chunks no larger than a writer makes, so that no
   read allocates more than the run's own data (:func:`expected_arrays`).
4. **A checkpoint, before a resume**: its cells fit the lattice and the
   memory (checked before its columns are read), and every column's values
   lie in their domain: voxels inside the lattice and one cell to a voxel,
   kinds and state flags known, directions in range, pools and timers not
   negative, ids unique and below the id counter (:func:`checkpoint_problems`).

The config, seed, creating code and input files are covered by a digest
written with the run (:func:`run_digest`); a resume refuses a store whose
digest no longer matches.  Every refusal is one line naming what is wrong.
"""

import hashlib
import json
import math
import os
import stat
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

STORE_FORMAT = "gpusim-run"  # the marker in the root attributes that says a folder is a gpusim store
FORMAT_VERSION = 1
MAX_ROOT_METADATA = 64 << 20  # bytes of the root zarr.json: the config and a clock per snapshot (2**20 at most)
MAX_METADATA = 1 << 20  # bytes of any other zarr.json
MAX_CHUNK_BYTES = 256 << 20  # an array's (inner) chunk, decoded: a writer's largest is 24 MiB (agent pools)
MAX_TEXT = 10_000  # characters of a text attribute
DIGEST_KEYS = ("config", "seed", "inputs")  # what the digest covers, with the creating stretch's code


class StoreError(ValueError):
    """A path that is not a usable gpusim store (missing, foreign, damaged, or in the way)."""


Text = Annotated[str, Field(max_length=MAX_TEXT)]
Step = Annotated[int, Field(ge=0, le=2**20)]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Segment(_Strict):
    """A stretch of the run: from which step a process ran it, on what, with which gpusim."""

    from_step: Step
    backend: Text
    gpusim_version: Text
    source_revision: Text
    started: Text


class CheckpointPointer(_Strict):
    path: Annotated[str, Field(pattern=r"^checkpoints/step_[0-9]{1,7}$")]
    clock: Step


class InputFile(_Strict):
    """A file the run read (a vessel mask): where it was and what it held."""

    path: Text
    sha256: Hex64


class RootAttributes(_Strict):
    """``attributes["gpusim"]`` of a store's root ``zarr.json``."""

    format: Literal["gpusim-run"]
    format_version: Literal[1]
    version: Text
    digest: Hex64
    config: dict
    description: Text
    seed: Annotated[int, Field(ge=0, lt=2**63)]
    backend: Text
    source_revision: Text
    created: Text
    segments: Annotated[list[Segment], Field(min_length=1, max_length=100_000)]
    status: Literal["running", "stopped", "complete"]
    dt_min: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    steps_total: Step
    steps_done: Step
    lattice_shape: Annotated[list[Annotated[int, Field(ge=3)]], Field(min_length=3, max_length=3)]
    voxel_size_um: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    snapshot_steps: Annotated[list[Step], Field(max_length=2**20 + 1)]
    snapshots_written: Step
    checkpoint: CheckpointPointer | None
    kinds: dict[Text, Text]
    inputs: dict[Text, InputFile]
    field_channels: dict[Text, Text] = {}
    diffusing_fields: dict[Text, Text] = {}
    field_grid_coarsening: Annotated[int, Field(ge=1, le=64)] | None = None
    # a run split across MPI ranks: at each snapshot (by step), the most cells a rank stepped over the mean
    imbalance: Annotated[dict[Annotated[str, Field(pattern=r"^[0-9]{1,7}$")],
                              Annotated[float, Field(ge=1.0, le=1e6, allow_inf_nan=False)]],
                         Field(max_length=2**20 + 1)] = {}


def _describe(error):
    where = ".".join(str(part) for part in error["loc"])
    value = repr(error.get("input"))
    value = value if len(value) <= 60 else value[:57] + "..."
    return f"attribute gpusim.{where}: {error['msg'][0].lower()}{error['msg'][1:]} (got {value})"


def checked_attributes(path, attributes):
    """The root attributes as :class:`RootAttributes`, or StoreError naming the first thing wrong."""
    if not isinstance(attributes, dict) or not isinstance(attributes.get("gpusim"), dict):
        raise StoreError(f"{path}: a zarr store, but not one written by gpusim (no gpusim attributes)")
    meta = attributes["gpusim"]
    if meta.get("format") != STORE_FORMAT:
        if "config" in meta and "version" in meta:
            raise StoreError(f"{path}: written by gpusim {_printable(meta.get('version'))} before stores were "
                             "checked on reading; this gpusim does not read it (run its config again)")
        raise StoreError(f"{path}: a zarr store, but not one written by gpusim (no gpusim store marker)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{path}: store format {_printable(meta.get('format_version'))}; this gpusim reads "
                         f"format {FORMAT_VERSION}")
    try:
        return RootAttributes.model_validate(meta)
    except ValidationError as exc:
        raise StoreError(f"{path}: {_describe(exc.errors()[0])}") from None


def _printable(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- the tree ---------------------------------------------------------------------------


def check_tree(path):
    """StoreError unless the store's folder holds only folders and regular files (nothing that leads outside it or
    blocks a read) and its metadata files are of a size metadata can be."""
    root = Path(path)
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise StoreError(f"{path}: cannot list {folder} ({exc.strerror})") from None
        for entry in entries:
            where = Path(entry.path)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise StoreError(f"{path}: {where.relative_to(root)} is a symbolic link; a store holds only its own "
                                 "files and folders")
            if stat.S_ISDIR(mode):
                pending.append(where)
            elif not stat.S_ISREG(mode):
                raise StoreError(f"{path}: {where.relative_to(root)} is neither a file nor a folder")
            elif entry.name == "zarr.json":
                limit = MAX_ROOT_METADATA if folder == root else MAX_METADATA
                size = entry.stat(follow_symlinks=False).st_size
                if size > limit:
                    raise StoreError(f"{path}: {where.relative_to(root)} is {size:,} bytes, more than metadata can be "
                                     f"({limit:,})")


def inside(store, relative):
    """``store / relative``, resolved; StoreError if it leads outside the store."""
    base = Path(store).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise StoreError(f"{store}: {relative!r} leads outside the store")
    return target


# --- the root attributes against the config ----------------------------------------------------


def snapshot_clocks(cfg):
    """The clocks at which a run of ``cfg`` writes a snapshot."""
    return list(range(0, cfg.steps + 1, cfg.steps_of(cfg.run.snapshot_every)))


def kind_values():
    """The ``kinds`` attribute: label value -> kind key."""
    from gpusim.store import LABELS

    return {str(value): key for value, key, _name, _rgba in LABELS}


def consistency_problem(meta, cfg):
    """The first thing the root attributes ``meta`` (RootAttributes) say that the config ``cfg`` contradicts, or
    None."""
    expected = {
        "seed": cfg.run.seed,
        "dt_min": cfg.run.dt,
        "steps_total": cfg.steps,
        "lattice_shape": list(cfg.lattice.shape),
        "voxel_size_um": cfg.lattice.voxel_size,
        "description": cfg.description,
        "kinds": kind_values(),
        "field_channels": list(cfg.output.fields),
        "diffusing_fields": [name for name, _section in cfg.fields.active],
        "field_grid_coarsening": cfg.fields.coarsening if cfg.fields.active else None,
    }
    for key, value in expected.items():
        stored = getattr(meta, key)
        stored = list(stored) if key in ("field_channels", "diffusing_fields") else stored
        if stored != value:
            return f"attribute gpusim.{key} is {_printable(stored)}, but the stored config gives {_printable(value)}"
    if meta.snapshot_steps != snapshot_clocks(cfg):
        return "attribute gpusim.snapshot_steps does not list the stored config's snapshot clocks"
    if meta.steps_done > meta.steps_total:
        return f"attribute gpusim.steps_done ({meta.steps_done}) is beyond steps_total ({meta.steps_total})"
    written = meta.snapshots_written
    if written > len(meta.snapshot_steps) or (written and meta.snapshot_steps[written - 1] > meta.steps_done):
        return f"attribute gpusim.snapshots_written ({written}) counts snapshots the run has not reached"
    pointer = meta.checkpoint
    if pointer is not None and (pointer.path != f"checkpoints/step_{pointer.clock}" or pointer.clock > meta.steps_done):
        return f"attribute gpusim.checkpoint ({pointer.path} at step {pointer.clock}) is not a checkpoint of this run"
    starts = [segment.from_step for segment in meta.segments]
    if starts[0] != 0 or starts != sorted(starts) or starts[-1] > meta.steps_done:
        return "attribute gpusim.segments: the stretches do not run from step 0 in order up to the steps done"
    expected_inputs = _input_keys(cfg)
    if sorted(meta.inputs) != expected_inputs:
        return f"attribute gpusim.inputs names {sorted(meta.inputs)}, the stored config's input files are {expected_inputs}"
    for key, record in meta.inputs.items():
        if record.path != _config_value(meta.config, key):
            return f"attribute gpusim.inputs.{key} names another file than the stored config"
    return None


def _input_keys(cfg):
    from gpusim.config import input_files

    return sorted(input_files(cfg))


def _config_value(raw, key):
    node = raw
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def run_digest(meta):
    """sha256 (hex) of what makes the run the run: the config as written, the seed, the input files' digests and
    the gpusim version and source revision that created it (``meta``: the root attributes, as a dict)."""
    first = meta["segments"][0]
    covered = {key: meta[key] for key in DIGEST_KEYS}
    covered["created_by"] = [first["gpusim_version"], first["source_revision"]]
    return hashlib.sha256(json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- the arrays --------------------------------------------------------------------------------


def expected_arrays(meta, cfg):
    """Every array a store of ``cfg`` holds but the agent tables' columns and the checkpoints: path -> (shape,
    dtype)."""
    from gpusim.kernels.cells import N_KINDS
    from gpusim.kernels.molecules import HIST_BINS, N_SPECIES
    from gpusim.observables import FLOAT_SERIES, SERIES
    from gpusim.store import level_shapes

    snapshots = len(meta.snapshot_steps)
    arrays = {}
    for level, spatial in enumerate(level_shapes(cfg.lattice.shape)):
        arrays[f"labels/cells/s{level}"] = ((snapshots,) + spatial, "uint8")
        if cfg.output.fields:
            arrays[f"s{level}"] = ((snapshots, len(cfg.output.fields)) + spatial, "uint32")
    active = cfg.fields.active
    if active:
        grid = tuple(edge // cfg.fields.coarsening for edge in cfg.lattice.shape)
        for level, spatial in enumerate(level_shapes(grid)):
            arrays[f"fields/s{level}"] = ((snapshots, len(active)) + spatial, "float32")
    for name in SERIES:
        arrays[f"timeseries/{name}"] = ((cfg.steps + 1,), "float64" if name in FLOAT_SERIES else "int64")
    arrays["histograms/pools"] = ((snapshots, N_SPECIES, N_KINDS, HIST_BINS), "int64")
    if cfg.output.agent_tables:
        arrays["agents/offsets"] = ((snapshots + 1,), "int64")
    return arrays


def array_keys(group):
    """The names of a zarr group's arrays.  A killed writer may leave zarr's temporary ``*.partial`` files in a
    group (a resume removes them); listing passes over them without a warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Object at .* is not recognized as a component")
        return list(group.array_keys())


def open_group(node, store, key, where=""):
    """The zarr group ``key`` of group ``node``; StoreError if it is missing, not a group, or unreadable."""
    try:
        group = node[key]
    except KeyError:
        raise StoreError(f"{store}: {where}{key} is missing") from None
    except Exception as exc:  # zarr raises what its JSON parser raises
        raise StoreError(f"{store}: {where}{key}: metadata cannot be read ({type(exc).__name__}: {exc})") from None
    if not hasattr(group, "array_keys"):
        raise StoreError(f"{store}: {where}{key} is an array where a group belongs")
    return group


def open_array(node, store, key, where=""):
    """The zarr array ``key`` of group ``node`` (``where``: the group's path in the store, for messages);
    StoreError if it is missing or its metadata cannot be read."""
    try:
        array = node[key]
    except KeyError:
        raise StoreError(f"{store}: {where}{key} is missing") from None
    except Exception as exc:  # zarr raises what its JSON and codec parsers raise
        raise StoreError(f"{store}: {where}{key}: metadata cannot be read ({type(exc).__name__}: {exc})") from None
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        raise StoreError(f"{store}: {where}{key} is a group where an array belongs")
    return array


def check_array(node, store, key, shape, dtype, where=""):
    """The array ``key`` of group ``node``, after checking that it has ``shape`` (None: any length along that axis)
    and ``dtype`` and chunks no larger than a writer makes."""
    array = open_array(node, store, key, where)
    if len(array.shape) != len(shape) or any(want is not None and have != want for have, want in zip(array.shape, shape)):
        raise StoreError(f"{store}: {where}{key} has shape {list(array.shape)}; the stored config gives "
                         f"{['*' if s is None else s for s in shape]}")
    if str(array.dtype) != dtype:
        raise StoreError(f"{store}: {where}{key} holds {array.dtype}, not {dtype}")
    chunk = math.prod(array.chunks) * array.dtype.itemsize
    if chunk > MAX_CHUNK_BYTES:
        raise StoreError(f"{store}: {where}{key} has chunks of {chunk:,} bytes; a writer makes them at most "
                         f"{MAX_CHUNK_BYTES:,}")
    return array


def check_arrays(root, store, meta, cfg):
    """Every array of :func:`expected_arrays` as it must be, no other resolution level, and the agent tables'
    columns and offsets consistent."""
    from gpusim.state import COLUMNS

    expected = expected_arrays(meta, cfg)
    groups = {key.rsplit("/", 1)[0] for key in expected if "/" in key} | {"labels", "agents"}
    if meta.checkpoint is not None:
        groups.add("checkpoints")
    for group in sorted(groups):
        open_group(root, store, group)
    arrays = {key: check_array(root, store, key, shape, dtype) for key, (shape, dtype) in expected.items()}
    for group, prefix in (("labels/cells", "labels/cells/"), ("", ""), ("fields", "fields/")):
        try:
            node = root[group] if group else root
            levels = {key for key in array_keys(node) if key.startswith("s") and key[1:].isdigit()}
        except Exception:
            continue  # a missing group: its first level was reported missing above
        extra = sorted(levels - {key[len(prefix):] for key in arrays if key.startswith(prefix) and "/" not in key[len(prefix):]})
        if extra:
            raise StoreError(f"{store}: {prefix}{extra[0]} is a resolution level the stored config does not give")
    if not cfg.output.agent_tables:
        return
    offsets = read(arrays["agents/offsets"], store, "agents/offsets", ...)
    written = meta.snapshots_written
    used = offsets[: written + 1]
    if used[0] != 0 or np.any(np.diff(used) < 0):
        raise StoreError(f"{store}: agents/offsets do not rise from 0")
    for name, (dtype, rows) in COLUMNS.items():
        column = check_array(root, store, f"agents/{name}", (None,) if rows == 1 else (rows, None), np.dtype(dtype).name)
        if column.shape[-1] < used[-1]:
            raise StoreError(f"{store}: agents/{name} has {column.shape[-1]:,} rows; the offsets reach {used[-1]:,}")


# --- reading within a budget -----------------------------------------------------------------------


def memory_budget():
    """Bytes one read may take: half the host memory available to this process."""
    from gpusim.backend import host_memory_available

    return host_memory_available() // 2


def read(array, store, key, selection=slice(None)):
    """``array[selection]`` as a numpy array, after checking that it fits :func:`memory_budget`; StoreError if it
    would not, or if the data cannot be read (a damaged chunk)."""
    shape = _selected_shape(array.shape, selection)
    needed = math.prod(shape) * array.dtype.itemsize
    budget = memory_budget()
    if needed > budget:
        raise StoreError(f"{store}: reading {key} takes {needed / 2**30:.1f} GiB, more than the "
                         f"{budget / 2**30:.1f} GiB this process can spare")
    try:
        return np.asarray(array[selection])
    except Exception as exc:  # a truncated or corrupt chunk fails in the codec
        raise StoreError(f"{store}: {key} cannot be read ({type(exc).__name__}: {exc})") from None


def _selected_shape(shape, selection):
    """The shape ``array[selection]`` has (selection: an int, a slice, Ellipsis or a tuple of them)."""
    items = selection if isinstance(selection, tuple) else (selection,)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (len(shape) - len(items) + 1) + items[at + 1 :]
    items = items + (slice(None),) * (len(shape) - len(items))
    out = []
    for item, extent in zip(items, shape):
        if isinstance(item, slice):
            out.append(len(range(*item.indices(extent))))
        # an integer index drops the axis
    return tuple(out)


# --- a checkpoint --------------------------------------------------------------------------------


def checkpoint_header(group, store, pointer, cfg):
    """(clock, n, next_id) of a checkpoint group, checked: the clock its pointer names, a run's clock, at most a
    lattice's worth of cells and an id counter beyond them."""
    try:
        attributes = {key: group.attrs[key] for key in ("clock", "n", "next_id")}
    except KeyError as exc:
        raise StoreError(f"{store}: checkpoint {pointer.path} is incomplete (no {exc.args[0]})") from None
    for key, value in attributes.items():
        if type(value) is not int or value < 0:
            raise StoreError(f"{store}: checkpoint {pointer.path}: {key} is {_printable(value)}, not a count")
    clock, n, next_id = attributes["clock"], attributes["n"], attributes["next_id"]
    if clock != pointer.clock or clock > cfg.steps:
        raise StoreError(f"{store}: checkpoint {pointer.path} holds step {clock}, not step {pointer.clock}")
    if n > cfg.voxels:
        raise StoreError(f"{store}: checkpoint {pointer.path} holds {n:,} cells; the lattice has {cfg.voxels:,} voxels")
    if not n <= next_id < 2**62:
        raise StoreError(f"{store}: checkpoint {pointer.path}: next_id {next_id:,} is not beyond its {n:,} cells")
    return clock, n, next_id


def checkpoint_arrays(group, store, pointer, cfg, n):
    """The checkpoint's arrays (zarr), every column with ``n`` cells and its dtype, and the fields' values with the
    grid's shape."""
    from gpusim.state import COLUMNS

    where = pointer.path + "/"
    arrays = {}
    for name, (dtype, rows) in COLUMNS.items():
        shape = (n,) if rows == 1 else (rows, n)
        arrays[name] = check_array(group, store, name, shape, np.dtype(dtype).name, where)
    active = cfg.fields.active
    if active:
        grid = math.prod(edge // cfg.fields.coarsening for edge in cfg.lattice.shape)
        arrays["field_values"] = check_array(group, store, "field_values", (len(active), grid), "float64", where)
    extra = sorted(set(array_keys(group)) - set(arrays))
    if extra:
        raise StoreError(f"{store}: {where}{extra[0]} is an array no checkpoint of this run has")
    return arrays


def checkpoint_problems(columns, cfg, n, next_id, held):
    """The first value of a checkpoint's columns outside its domain, as a line, or None.  ``held``: the pool and
    set-point rows the run's table holds (gpusim.parameters.build)."""
    from gpusim.kernels.cells import N_KINDS, PERSISTENT_FLAGS
    from gpusim.kernels.lattice import N_DIRECTIONS

    voxel, ids = columns["voxel"], columns["agent_id"]
    checks = [
        ("voxel", np.any((voxel < 0) | (voxel >= cfg.voxels)), f"a voxel outside the lattice's {cfg.voxels:,}"),
        ("voxel", n and np.unique(voxel).size != n, "two cells in one voxel"),
        ("kind", np.any(columns["kind"] >= N_KINDS), f"a kind beyond the {N_KINDS} known"),
        ("state", np.any(columns["state"] & ~PERSISTENT_FLAGS), "a state flag no live cell carries"),
        ("heading", np.any((columns["heading"] < 0) | (columns["heading"] >= N_DIRECTIONS)), "a direction out of range"),
        ("partner", np.any((columns["partner"] < -1) | (columns["partner"] >= N_DIRECTIONS)), "a direction out of range"),
        ("agent_id", np.any((ids < 0) | (ids >= next_id)), "an id outside 0 .. next_id"),
        ("agent_id", n and np.unique(ids).size != n, "two cells with one id"),
    ]
    for name in ("pools", "set_points", "cycle_timer", "anoxic_steps", "synapse_steps", "refractory_steps",
                 "stimulation", "damage", "bites", "divisions_left"):
        checks.append((name, np.any(columns[name] < 0), "a negative value"))
    for name, rows in held.items():
        checks.append((name, np.any(columns[name][np.asarray(rows) < 0]), "molecules of a species this run never makes"))
    if "field_values" in columns:
        values = columns["field_values"]
        checks.append(("field_values", not np.all(np.isfinite(values)) or np.any(values < 0),
                       "a field value that is negative or not finite"))
    for name, failed, what in checks:
        if failed:
            return f"column {name} holds {what}"
    return None
