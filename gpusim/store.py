"""The run's store: ``NAME.ome.zarr``, zarr v3 with OME-NGFF 0.5 metadata.

Layout (docs/output.md; later writers add the field image at the root, ``agents/``
and checkpoints beside these)::

    NAME.ome.zarr/
      zarr.json            root group; attributes["ome"]: the multiscale image of the
                           molecule fields (axes t, c, z, y, x); attributes["gpusim"]:
                           the store marker ("format": "gpusim-run"), config, seed,
                           version, source revision, backend, progress, the input files'
                           digests, the run's digest, and the stretches of the run
                           ("segments": from which step each process ran it, on which
                           backend, with which gpusim)
      s0, s1, ...          the field image: uint32 molecules per voxel, channels
                           antigen_a, acquired_antigen_a, car (as output.fields selects)
      labels/              attributes["ome"]["labels"] = ["cells"]
        cells/             OME-NGFF multiscale label image, axes t, z, y, x,
          s0, s1, ...      uint8: 0 empty, 1 tumour cell, 2 CAR-T, 3 CAR-NK, 4 CAR-M
      timeseries/          one 1-D array per observable, one entry per step
      agents/              every cell's columns at every snapshot, concatenated; snapshot
                           k holds rows offsets[k]:offsets[k+1]
      histograms/pools     the virtual flow cytometer: at every snapshot, cells per
                           [species, kind, log-scale bin] (edges in its attributes)
      checkpoints/step_N   the complete state at clock N (every run.checkpoint_every);
                           attributes["gpusim"]["checkpoint"] names the newest complete one
      arms/NAME            with `arms` in the config: each control arm's run, a store of its own

A new store is built beside its path (``.NAME.XXXX.gpusim-new``) and takes the
path once its first checkpoint is on disk, replacing (with ``--overwrite``)
only a gpusim store there: a run that fails or is stopped before then leaves
the path as it was.  A checkpoint is written whole before the root attributes
point at it, and the previous one is removed only after: a run killed at any
moment leaves a store that opens and resumes from its newest checkpoint
(``gpusim resume``).  Writers hold the store's lock (:mod:`gpusim.store_lock`);
every reader and writer checks a store before use
(:mod:`gpusim.store_validation`).
"""

import ctypes
import datetime
import errno
import functools
import glob
import json
import os
import queue
import shutil
import tempfile
import time
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gpusim.kernels.cells import DEBRIS_LABEL, KIND_LABELS, KIND_NAMES, N_KINDS
from gpusim.kernels.molecules import HIST_BINS, N_SPECIES, SPECIES_NAMES, log_bin_edges
from gpusim.kernels.occupancy import FIELD_LABELS, FIELD_NAMES
from gpusim.observables import FLOAT_SERIES, SERIES
from gpusim.store_lock import WriterLock
from gpusim.store_validation import (
    FORMAT_VERSION, MAX_ROOT_METADATA, STORE_FORMAT, StoreError, array_keys, check_arrays, check_tree, checked_attributes,
    checkpoint_arrays, checkpoint_header, checkpoint_problems, consistency_problem, inside, read, run_digest,
    snapshot_clocks,
)

NGFF_VERSION = "0.5"
KIND_COLOURS = {  # RGBA of label value 1 + kind
    "tumour": [214, 96, 77, 255],
    "car_t": [67, 147, 195, 255],
    "car_nk": [90, 174, 97, 255],
    "car_m": [153, 112, 171, 255],
}
# every value of the cell map: (label value, key, name, RGBA); 0 is an empty voxel
LABELS = [(k + 1, name, KIND_LABELS[k], KIND_COLOURS[name]) for k, name in enumerate(KIND_NAMES)] + [
    (DEBRIS_LABEL, "debris", "necrotic debris", [140, 120, 100, 255])
]
LABEL_COLOURS = {key: rgba for _value, key, _name, rgba in LABELS}
MIN_LEVEL_EDGE = 16
DIFFUSING_COLOURS = {"oxygen": "F7F7F7", "chemokine": "FEE08B"}
DIFFUSING_UNITS = {"oxygen": "mmHg", "chemokine": "nM"}
CHUNK_EDGE = 64  # voxels along a chunk's edge: the piece napari reads for one tile
SHARD_EDGE = 256  # voxels along a shard's edge: one file holds up to (256 / 64)^3 = 64 chunks
HISTOGRAM_SHARD = 64  # snapshots of flow cytometry per file
AGENT_CHUNK = 1 << 20  # rows of an agent-table column per chunk


def _zarr():
    import zarr

    return zarr


def _compressor():
    # level 1: at 1e6 agents level 3 made runs ~20% slower on 2 cores for ~10% smaller fields (benchmarks/RESULTS.md)
    return _zarr().codecs.ZstdCodec(level=1)


def spatial_chunks(shape):
    """(chunk, shard) shapes over z, y, x: chunks of up to 64^3 voxels for lazy reading, gathered into
    shards of up to 256^3 voxels so that a snapshot of a large lattice is tens of files, not thousands."""
    chunks = tuple(min(s, CHUNK_EDGE) for s in shape)
    shards = tuple(min(-(-s // c) * c, SHARD_EDGE) for s, c in zip(shape, chunks))
    return chunks, shards


def _write_levels(arrays, index, volume):
    """Snapshot ``index`` of every level of a multiscale image: level k takes every 2**k-th voxel."""
    for level, array in enumerate(arrays):
        step = 2**level
        array[index] = volume[..., ::step, ::step, ::step]


def level_arrays(group):
    """The levels s0, s1, ... of a multiscale image group, in order."""
    keys = [k for k in array_keys(group) if k.startswith("s") and k[1:].isdigit()]
    return [group[k] for k in sorted(keys, key=lambda k: int(k[1:]))]


def level_shapes(shape):
    """Spatial shapes of the multiscale levels: halve (nearest) while every edge stays >= 16."""
    levels = [tuple(shape)]
    while min(s // 2 for s in levels[-1]) >= MIN_LEVEL_EDGE:
        levels.append(tuple((s + 1) // 2 for s in levels[-1]))
    return levels


def check_target(path, overwrite):
    """Refuse a path a new run may not take: an existing one without ``overwrite``, and with it anything but a
    gpusim store (a folder without the store marker, a file, a symbolic link, the working folder or a folder
    holding it).  A path that does not exist needs a folder, or nothing, where its parent goes."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        for parent in path.absolute().parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise StoreError(f"{path}: {parent} is not a folder")
                break
        return
    if not overwrite:
        raise StoreError(f"{path} already exists; pass --overwrite to replace it")
    if path.is_symlink():
        raise StoreError(f"{path} is a symbolic link; refusing to replace it (name the store itself)")
    resolved, here = path.resolve(), Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise StoreError(f"{path} is the working folder or holds it; refusing to replace it")
    if not path.is_dir():
        raise StoreError(f"{path} is a file, not a store; refusing to replace it")
    if not is_gpusim_store(path):
        raise StoreError(f"{path} is not a gpusim store (its zarr.json has no gpusim store marker); refusing to "
                         "replace it")


def is_gpusim_store(path):
    """Whether the folder ``path`` is a gpusim store by its root metadata: the store marker (or, from before
    the marker, the attributes only gpusim writes)."""
    top = Path(path) / "zarr.json"
    try:
        if top.is_symlink() or not top.is_file() or top.stat().st_size > MAX_ROOT_METADATA:
            return False
        meta = json.loads(top.read_text()).get("attributes", {}).get("gpusim")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(meta, dict):
        return False
    return meta.get("format") == STORE_FORMAT or {"version", "config", "seed", "steps_total"} <= set(meta)


# renameat2 flags (Linux): fail if the target exists; swap the two paths
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def _rename(source, target, flags):
    """renameat2(source, target, flags); False where the system or file system has no such call."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    at_cwd = -100
    if function(at_cwd, os.fsencode(source), at_cwd, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


BUILD_SUFFIX = ".gpusim-new"  # a store being built beside its path: .NAME.XXXX.gpusim-new


def _abandoned_build(folder):
    """Whether ``folder`` (named as a build) is a store gpusim was building: empty, or a zarr group whose root holds
    no attributes yet or gpusim's."""
    if not os.listdir(folder):
        return True
    top = folder / "zarr.json"
    try:
        document = json.loads(top.read_text()) if top.is_file() and not top.is_symlink() else None
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("node_type") == "group" and (
        not document.get("attributes") or is_gpusim_store(folder))


def _remove_abandoned_builds(path):
    """Remove builds of a store at ``path`` that a killed run left beside it (no process holds their lock)."""
    for build in path.parent.glob(f".{glob.escape(path.name)}.*{BUILD_SUFFIX}"):
        if build.is_symlink() or not build.is_dir():
            continue
        if not _abandoned_build(build):
            continue
        try:
            lock = WriterLock(build, "run").acquire()
        except StoreError:
            continue  # a run is building it now
        shutil.rmtree(build, ignore_errors=True)
        lock.release()


class RunStore:
    """Writes one run: label snapshots and the time series, with the run's metadata."""

    def __init__(self, path, cfg, raw_config, backend_label, overwrite=False, command="run", _existing=False):
        """A new store for a run of ``cfg`` at ``path``, built beside it (``.NAME.XXXX.gpusim-new``) and moved to
        ``path`` once the run's first checkpoint is on disk (:meth:`start`): a run that fails or is stopped
        before then leaves whatever was at ``path`` as it was.  With ``overwrite`` an existing gpusim store at
        ``path`` is replaced then, its writers' lock held from now on."""
        from gpusim import __version__
        from gpusim.config import file_digest, input_files

        self.path = Path(path)
        self.cfg = cfg
        self.building = None  # the folder the store is built in until it moves to its path
        self.writer_seconds = 0.0  # time the background writer spent on snapshots (compressing and writing)
        self.replaced_lock = None  # the lock of the store it replaces
        if _existing:
            self._reopen()
            return
        check_target(self.path, overwrite)
        try:
            if self.path.exists():
                self.replaced_lock = WriterLock(self.path, command).acquire()
            self.path.absolute().parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_builds(self.path.absolute())
            self.building = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=BUILD_SUFFIX,
                                                  dir=self.path.absolute().parent))
            self.building.chmod(0o777 & ~_umask())  # as a folder made by mkdir: mkdtemp makes it private
            self.lock = WriterLock(self.building, command).acquire()
            created = _now()
            self.snapshot_clocks = snapshot_clocks(cfg)
            self.root = _zarr().open_group(str(self.building), mode="w-", zarr_format=3)
            self.meta = {
                "format": STORE_FORMAT,
                "format_version": FORMAT_VERSION,
                "version": __version__,
                "config": raw_config,
                "description": cfg.description,
                "seed": cfg.run.seed,
                "inputs": {key: {"path": file, "sha256": file_digest(file)} for key, file in input_files(cfg).items()},
                "backend": backend_label,
                "source_revision": source_revision(),
                "created": created,
                "segments": [_segment(0, backend_label, created)],
                "status": "running",
                "dt_min": cfg.run.dt,
                "steps_total": cfg.steps,
                "steps_done": 0,
                "lattice_shape": list(cfg.lattice.shape),
                "voxel_size_um": cfg.lattice.voxel_size,
                "snapshot_steps": self.snapshot_clocks,
                "snapshots_written": 0,
                "checkpoint": None,
                "kinds": {str(value): key for value, key, _name, _rgba in LABELS},
            }
            self.meta["digest"] = run_digest(self.meta)
            self.root.attrs["gpusim"] = self.meta
            self._create_image()
            self._create_diffusing()
            self._create_agents()
            self._create_labels()
            self._create_timeseries(cfg.steps + 1)
            self._create_histograms()
            self.root.attrs["gpusim"] = self.meta
        except BaseException:  # a failure, Ctrl-C or a full disk while building: nothing is left of it
            self.abandon()
            raise
        self._init_writer(rows_taken=0)

    @property
    def location(self):
        """Where the store is now: its path, or the folder it is built in until it moves there."""
        return self.building if self.building is not None else self.path

    def _move_in(self):
        """The store built beside its path takes the path (replacing the store there, if any, which is removed)."""
        if self.building is None:
            return
        target = self.path.absolute()
        if self.replaced_lock is not None:
            if _rename(self.building, target, RENAME_EXCHANGE):
                old = self.building  # the replaced store now lies where this one was built
            else:
                old = target.with_name(f".{self.path.name}.{os.getpid()}.gpusim-old")
                os.rename(target, old)
                os.rename(self.building, target)
            shutil.rmtree(old, ignore_errors=True)
            self.replaced_lock.release()
            self.replaced_lock = None
        else:
            appeared = StoreError(f"{self.path} appeared while this run was starting; refusing to replace it")
            try:
                moved = _rename(self.building, target, RENAME_NOREPLACE)
            except FileExistsError:
                raise appeared from None
            if not moved:  # no renameat2 here: look, then rename
                if target.exists():
                    raise appeared
                os.rename(self.building, target)
        self.lock.moved_to(target)
        self.building = None
        self.root = _zarr().open_group(str(target), mode="r+", zarr_format=3)
        self._bind_arrays()

    def abandon(self):
        """Remove a store still being built (the run failed or stopped before its first checkpoint) and release
        the locks: what is at its path stays as it was."""
        if self.building is not None:
            shutil.rmtree(self.building, ignore_errors=True)
            self.building = None
        for lock in (getattr(self, "lock", None), self.replaced_lock):
            if lock is not None:
                lock.release()

    def _init_writer(self, rows_taken):
        self._rows_taken = rows_taken
        self._writer = None
        self._writer_error = None
        self.checkpoint_clock = None

    def _axes(self, channels):
        axes = [{"name": "t", "type": "time", "unit": "minute"}]
        if channels:
            axes.append({"name": "c", "type": "channel"})
        return axes + [{"name": n, "type": "space", "unit": "micrometer"} for n in ("z", "y", "x")]

    def _multiscale(self, group, name, shape, voxel_um, channels, dtype):
        """Levels s0, s1, ... of a ``[t, (c,) z, y, x]`` image in ``group`` (chunked, sharded, compressed) and
        its NGFF ``multiscales`` entry; ``channels`` 0 means no channel axis."""
        lead = (len(self.snapshot_clocks), channels) if channels else (len(self.snapshot_clocks),)
        arrays, datasets = [], []
        for level, spatial in enumerate(level_shapes(shape)):
            chunks, shards = spatial_chunks(spatial)
            arrays.append(group.create_array(
                f"s{level}", shape=lead + spatial, chunks=(1,) * len(lead) + chunks, shards=(1,) + lead[1:] + shards,
                dtype=dtype, fill_value=0, compressors=_compressor(),
                dimension_names=["t", "c", "z", "y", "x"] if channels else ["t", "z", "y", "x"],
            ))
            scale = voxel_um * 2**level
            factors = [self.cfg.run.snapshot_every] + ([1.0] if channels else []) + [scale, scale, scale]
            datasets.append({"path": f"s{level}", "coordinateTransformations": [{"type": "scale", "scale": factors}]})
        return arrays, {"name": name, "axes": self._axes(channels), "datasets": datasets}

    def _create_image(self):
        """The field image at the root: molecules per voxel, one channel per selected field."""
        self.field_channels = [FIELD_NAMES.index(name) for name in self.cfg.output.fields]
        self.image = []
        if not self.field_channels:
            return
        self.image, multiscale = self._multiscale(self.root, "molecule fields", self.cfg.lattice.shape,
                                                  self.cfg.lattice.voxel_size, len(self.field_channels), "uint32")
        colours = {"antigen_a": "D6604D", "acquired_antigen_a": "4393C3", "car": "5AAE61"}
        self.root.attrs["ome"] = {
            "version": NGFF_VERSION,
            "multiscales": [multiscale],
            "omero": {
                "channels": [
                    {"label": FIELD_NAMES[k], "color": colours[FIELD_NAMES[k]], "active": True,
                     "window": {"min": 0, "max": 100000, "start": 0, "end": 30000}}
                    for k in self.field_channels
                ],
            },
        }
        self.meta["field_channels"] = {FIELD_NAMES[k]: FIELD_LABELS[k] for k in self.field_channels}

    def _create_diffusing(self):
        """The diffusing fields (oxygen, chemokine) as a second image, ``fields/``, at the solver grid's resolution."""
        names = [name for name, _section in self.cfg.fields.active]
        self.diffusing = []
        if not names:
            return
        coarsening = self.cfg.fields.coarsening
        self.diffusing, multiscale = self._multiscale(
            self.root.create_group("fields"), "diffusing fields", tuple(e // coarsening for e in self.cfg.lattice.shape),
            self.cfg.lattice.voxel_size * coarsening, len(names), "float32",
        )
        self.root["fields"].attrs["ome"] = {
            "version": NGFF_VERSION,
            "multiscales": [multiscale],
            "omero": {"channels": [
                {"label": name, "color": DIFFUSING_COLOURS[name], "active": True,
                 "window": {"min": 0.0, "max": float(section.supply) * 2 or 1.0, "start": 0.0,
                            "end": float(section.supply) or 1.0}}
                for name, section in self.cfg.fields.active
            ]},
        }
        self.meta["diffusing_fields"] = {name: DIFFUSING_UNITS[name] for name in names}
        self.meta["field_grid_coarsening"] = coarsening

    def _create_agents(self):
        """Ragged per-snapshot agent tables: each column concatenated over snapshots, with offsets."""
        group = self.root.create_group("agents")
        self.agent_arrays = {}
        if not self.cfg.output.agent_tables:
            return
        from gpusim.state import COLUMNS

        for name, (dtype, rows) in COLUMNS.items():
            shape, chunks = ((0,), (AGENT_CHUNK,)) if rows == 1 else ((rows, 0), (rows, AGENT_CHUNK))
            self.agent_arrays[name] = group.create_array(
                name, shape=shape, chunks=chunks, dtype=np.dtype(dtype).name, fill_value=0, compressors=_compressor()
            )
        self.agent_arrays["offsets"] = group.create_array(
            "offsets", shape=(len(self.snapshot_clocks) + 1,), chunks=(len(self.snapshot_clocks) + 1,), dtype="int64",
            fill_value=0,
        )
        group.attrs["description"] = "snapshot k holds rows offsets[k]:offsets[k+1] of every column"

    def _write_agents(self, table, index):
        offsets = self.agent_arrays["offsets"]
        start = int(offsets[index])
        count = int(table["agent_id"].shape[0])
        for name, array in self.agent_arrays.items():
            if name == "offsets":
                continue
            values = table[name]
            array.resize(values.shape[:-1] + (start + count,))
            array[..., start : start + count] = values
        offsets[index + 1] = start + count

    def _create_labels(self):
        labels = self.root.create_group("labels")
        labels.attrs["ome"] = {"version": NGFF_VERSION, "labels": ["cells"]}
        cells = labels.create_group("cells")
        self.levels, multiscale = self._multiscale(cells, "cells", self.cfg.lattice.shape, self.cfg.lattice.voxel_size,
                                                   0, "uint8")
        cells.attrs["ome"] = {
            "version": NGFF_VERSION,
            "multiscales": [multiscale],
            "image-label": {
                "colors": [{"label-value": value, "rgba": rgba} for value, _key, _name, rgba in LABELS],
                "properties": [{"label-value": value, "kind": key, "name": name} for value, key, name, _rgba in LABELS],
            },
        }

    def _create_timeseries(self, length):
        group = self.root.create_group("timeseries")
        self.series = {}
        for name in SERIES:
            self.series[name] = group.create_array(
                name, shape=(length,), chunks=(min(length, 1 << 16),),
                dtype="float64" if name in FLOAT_SERIES else "int64",
                fill_value=float("nan") if name in FLOAT_SERIES else 0, compressors=_compressor(),
            )

    def _create_histograms(self):
        group = self.root.create_group("histograms")
        self.histograms = group.create_array(
            "pools", shape=(len(self.snapshot_clocks), N_SPECIES, N_KINDS, HIST_BINS), chunks=(1, N_SPECIES, N_KINDS, HIST_BINS),
            shards=(min(len(self.snapshot_clocks), HISTOGRAM_SHARD), N_SPECIES, N_KINDS, HIST_BINS),
            dtype="int64", fill_value=0, compressors=_compressor(), dimension_names=["t", "species", "kind", "bin"],
        )
        self.histograms.attrs.update({
            "species": list(SPECIES_NAMES),
            "kinds": list(KIND_NAMES),
            "bin_edges": log_bin_edges().tolist(),
            "description": "cells per log-scale bin of molecules; bin b holds bin_edges[b] <= molecules < bin_edges[b+1]",
        })

    # --- writing --------------------------------------------------------------------
    # The simulation thread only takes host copies; a background writer
    # thread compresses and writes them, in submission order, so the step
    # does not wait on the disk.  Order is what keeps a killed store
    # consistent: the root attributes point at a checkpoint only after
    # everything submitted before it is on disk.

    def _submit(self, task):
        if self._writer is None:
            self._tasks = queue.Queue(maxsize=2)  # at most two snapshots in flight (memory)
            self._writer = threading.Thread(target=self._write_loop, name="gpusim-writer", daemon=True)
            self._writer.start()
        self._raise_writer_error()
        self._tasks.put(task)

    def _write_loop(self):
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                if self._writer_error is None:
                    task()
            except BaseException as exc:  # handed to the simulation thread at its next call
                self._writer_error = exc
            finally:
                self._tasks.task_done()

    def _raise_writer_error(self):
        if self._writer_error is not None:
            error, self._writer_error = self._writer_error, None
            raise RuntimeError(f"writing {self.location} failed: {error}") from error

    def drain(self):
        """Wait until everything submitted is on disk."""
        if self._writer is not None:
            self._tasks.put(None)
            self._writer.join()
            self._writer = None
        self._raise_writer_error()

    def close_after_failure(self):
        """The run failed: let the writer finish what it can, drop a store that never reached its path, release
        the lock.  A store at its path keeps its last checkpoint for a resume."""
        self.drain_quietly()
        if self.building is not None:
            self.abandon()
        else:
            self.lock.release()

    def close(self):
        """Stop writing: wait for the writer and release the lock (a store reopened but not run on)."""
        self.drain()
        self.lock.release()

    def drain_quietly(self):
        """Wait for the writer, whatever became of it (the run failed already)."""
        try:
            self.drain()
        except Exception:
            pass

    def _take_rows(self, sim):
        """The time-series rows not yet handed to the writer (host arrays) and where they go."""
        start = self._rows_taken
        rows = sim.timeseries.arrays(start)
        self._rows_taken = start + len(rows["step"])
        return start, rows

    def _write_rows(self, start, rows, clock):
        count = len(rows["step"])
        for name, values in rows.items():
            if count:
                self.series[name][start : start + count] = values
        self.meta["steps_done"] = clock
        self.root.attrs["gpusim"] = self.meta

    def start(self, sim):
        """Begin (or continue) writing: the initial snapshot and checkpoint of a new run, on disk before the
        store moves to its path."""
        if self.first_snapshot_due(sim.clock):
            self.snapshot(sim)
            self.checkpoint(sim)
        self.take_path()

    def first_snapshot_due(self, clock):
        """Whether a run at step ``clock`` has yet to write its initial snapshot and checkpoint."""
        return self.meta["snapshots_written"] == 0 and clock == 0

    def take_path(self):
        """Mark the run running and, once what was handed to the writer is on disk, move the store to its path."""
        self.meta["status"] = "running"
        self.drain()
        self._move_in()

    def snapshot(self, sim):
        """Hand the writer the current clock's snapshot (cell kinds, fields, agent table, histograms) and the time series."""
        clock = sim.clock
        payload = None
        if clock in self.snapshot_clocks:
            payload = {
                "index": self.snapshot_clocks.index(clock),
                "volume": sim.kind_volume(),
                "fields": sim.field_volumes(self.field_channels) if self.image else None,
                "diffusing": sim.fields.host_values().astype(np.float32) if self.diffusing else None,
                "table": sim.state.snapshot() if self.agent_arrays else None,
                "cytometer": sim.flow_cytometry(),
                "imbalance": sim.domain.imbalance,  # a split run's (gpusim.parallel), None in one process
            }
        start, rows = self._take_rows(sim)
        self._submit(lambda: self._write_snapshot(payload, start, rows, clock))

    def _write_snapshot(self, payload, start, rows, clock):
        began = time.perf_counter()
        if payload is not None:
            index = payload["index"]
            _write_levels(self.levels, index, payload["volume"])
            _write_levels(self.image, index, payload["fields"])
            _write_levels(self.diffusing, index, payload["diffusing"])
            if payload["table"] is not None:
                self._write_agents(payload["table"], index)
            self.histograms[index] = payload["cytometer"]
            self.meta["snapshots_written"] = index + 1
            if payload["imbalance"] is not None:
                self.meta.setdefault("imbalance", {})[str(clock)] = round(float(payload["imbalance"]), 4)
        self._write_rows(start, rows, clock)
        self.writer_seconds += time.perf_counter() - began  # the writer thread's busy time (gpusim bench)

    def finish(self, sim):
        """Write what is left, mark the run complete (or stopped) and wait for the disk; a store that never
        reached its path is abandoned."""
        if self.building is not None:
            self.drain_quietly()
            self.abandon()
            return
        status = "complete" if sim.done else "stopped"
        start, rows = self._take_rows(sim)
        clock = sim.clock

        def close():
            self.meta["status"] = status
            self._write_rows(start, rows, clock)

        self._submit(close)
        self.drain()
        self.lock.release()

    def checkpoint(self, sim):
        """Hand the writer the complete state at the current clock; the store points at it once written."""
        state = sim.checkpoint()
        start, rows = self._take_rows(sim)
        self.checkpoint_clock = state["clock"]
        self._submit(lambda: self._write_checkpoint(state, start, rows))

    def _write_checkpoint(self, state, start, rows):
        self._write_rows(start, rows, state["clock"])
        name = f"step_{state['clock']}"
        group = self.root.require_group("checkpoints").create_group(name, overwrite=True)
        for column, values in state["columns"].items():
            group.create_array(column, data=values, compressors=_compressor())
        group.attrs.update({"clock": state["clock"], "n": state["n"], "next_id": state["next_id"]})
        previous = self.meta.get("checkpoint")
        self.meta["checkpoint"] = {"path": f"checkpoints/{name}", "clock": state["clock"]}
        self.root.attrs["gpusim"] = self.meta
        if previous and previous["path"] != self.meta["checkpoint"]["path"]:
            shutil.rmtree(inside(self.location, previous["path"]), ignore_errors=True)

    # --- continuing a run ------------------------------------------------------------
    def code_changed(self):
        """A line saying that this gpusim is not the one that last ran the store's run (another version, or
        another source revision where both are known), or None: the run goes on under this one's rules, so it
        need no longer be the one a single process would have computed."""
        from gpusim import __version__

        last = segments(self.meta)[-1]
        was_version, was_revision, revision = last["gpusim_version"], last["source_revision"], source_revision()
        if was_version != __version__:
            return f"gpusim {was_version} last ran this store; this is gpusim {__version__}"
        if "unknown" not in (was_revision, revision) and was_revision != revision:
            return f"source revision {was_revision} last ran this store; this is {revision}"
        return None

    def continue_on(self, backend_label, clock):
        """Note that the run goes on from step ``clock`` (its checkpoint's) on ``backend_label``: a store resumed
        on another machine or backend says which stretch ran where (:func:`segments`)."""
        self.meta["segments"] = segments(self.meta) + [_segment(clock, backend_label)]

    @classmethod
    def reopen(cls, path):
        """An existing store, locked for appending to it after a resume, checked as :func:`open_store` checks it
        and further: its config, seed and code as the run wrote them (the digest) and its input files as they
        were."""
        _store_folder(path)
        lock = WriterLock(path, "resume").acquire()
        try:
            opened = open_store(path)
            if opened.edited:
                raise StoreError(f"{path}: the run cannot go on under another config{edited_hint(path)}")
            _check_inputs(path, opened)
            store = cls(path, opened.cfg, opened.meta["config"], opened.meta["backend"], _existing=True)
        except BaseException:
            lock.release()
            raise
        store.lock = lock
        return store

    def _reopen(self):
        self.root = _zarr().open_group(str(self.path), mode="r+", zarr_format=3)
        self.meta = dict(self.root.attrs["gpusim"])
        self.snapshot_clocks = list(self.meta["snapshot_steps"])
        self.field_channels = [FIELD_NAMES.index(name) for name in self.cfg.output.fields]
        self._bind_arrays()
        for leftover in Path(self.path).rglob("*.partial"):  # zarr's temporary files, left by a killed writer
            leftover.unlink(missing_ok=True)
        self._init_writer(rows_taken=0)

    def _bind_arrays(self):
        """The arrays of the store at its (new) place."""
        self.levels = level_arrays(self.root["labels/cells"])
        self.image = level_arrays(self.root) if self.field_channels else []
        self.diffusing = level_arrays(self.root["fields"]) if "fields" in self.root else []
        agents = self.root["agents"]
        self.agent_arrays = {name: agents[name] for name in array_keys(agents)}
        self.series = {name: self.root["timeseries"][name] for name in SERIES}
        self.histograms = self.root["histograms/pools"]

    def checkpoint_header(self):
        """(clock, cells, next id) of the newest checkpoint, checked, without reading its columns: enough to
        size a resume (the memory preflight) before anything is read."""
        pointer = self._pointer()
        return checkpoint_header(self._checkpoint_group(pointer), self.path, pointer, self.cfg)

    def _pointer(self):
        from gpusim.store_validation import CheckpointPointer

        pointer = self.meta.get("checkpoint")
        if not pointer:
            raise StoreError(f"{self.path}: the run wrote no checkpoint yet; start it again with --overwrite")
        return CheckpointPointer.model_validate(pointer)

    def _checkpoint_group(self, pointer):
        inside(self.path, pointer.path)
        try:
            return self.root[pointer.path]
        except KeyError:
            raise StoreError(f"{self.path}: checkpoint {pointer.path} is missing") from None
        except Exception as exc:
            raise StoreError(f"{self.path}: checkpoint {pointer.path} cannot be read ({type(exc).__name__})") from None

    def load_checkpoint(self):
        """The newest checkpoint (as :meth:`gpusim.engine.Simulation.checkpoint` returns) and the observables up to
        it, every column checked against its domain before anything is restored from it."""
        from gpusim.parameters import build

        pointer = self._pointer()
        group = self._checkpoint_group(pointer)
        clock, n, next_id = checkpoint_header(group, self.path, pointer, self.cfg)
        arrays = checkpoint_arrays(group, self.path, pointer, self.cfg, n)
        columns = {name: read(array, self.path, f"{pointer.path}/{name}") for name, array in arrays.items()}
        problem = checkpoint_problems(columns, self.cfg, n, next_id, build(self.cfg)["held"])
        if problem:
            raise StoreError(f"{self.path}: checkpoint {pointer.path}: {problem}")
        state = {"clock": clock, "n": n, "next_id": next_id, "columns": columns}
        rows = clock + 1
        series = {name: read(self.series[name], self.path, f"timeseries/{name}", slice(0, rows)) for name in SERIES}
        self._rows_taken = rows
        self.checkpoint_clock = clock
        self.meta["snapshots_written"] = sum(1 for c in self.snapshot_clocks if c <= clock)
        return state, series


def _check_inputs(path, opened):
    """StoreError unless every input file of the run (a vessel mask) is still there as the run read it."""
    from gpusim.config import ConfigError, file_digest, validate

    try:
        validate(opened.meta["config"])  # the files themselves: there, regular, the grid's shape
    except ConfigError as exc:
        raise StoreError(f"{path}: {exc.problems[0]}") from None
    for key, record in opened.attributes.inputs.items():
        if file_digest(record.path) != record.sha256:
            raise StoreError(f"{path}: {key}: {record.path} changed since the run began; a resume needs the file "
                             "the run read")


@functools.lru_cache(maxsize=None)
def source_revision():
    """The git commit gpusim runs from (with '+dirty' for uncommitted changes), or 'unknown' outside a checkout;
    asked of git once a process."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _segment(clock, backend_label, started=None):
    """A stretch of a run: from step ``clock`` on, this process runs it on ``backend_label``."""
    from gpusim import __version__

    return {"from_step": int(clock), "backend": backend_label, "gpusim_version": __version__,
            "source_revision": source_revision(), "started": started or _now()}


def segments(meta):
    """The stretches of a store's run, oldest first."""
    return list(meta["segments"])


def _config_of(path, raw):
    """The stored config ``raw``, validated (its input files are not looked at: a store is read anywhere)."""
    from gpusim.config import ConfigError, validate

    try:
        return validate(raw, check_files=False)
    except ConfigError as exc:
        raise StoreError(f"{path}: the stored config does not validate: {exc.problems[0]}") from None


# --- reading ------------------------------------------------------------------------


def _store_folder(path):
    """``path`` as a Path, after the first look: StoreError unless it is a folder with a root zarr.json."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    if not path.is_dir():
        raise StoreError(f"{path}: a file, not a store")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a zarr v3 store (no zarr.json)")
    return path


class OpenedStore(NamedTuple):
    """A store that passed every check of :mod:`gpusim.store_validation`."""

    path: Path
    root: object  # the zarr root group, read-only
    meta: dict  # the root's gpusim attributes
    attributes: object  # the same, as gpusim.store_validation.RootAttributes
    cfg: object  # the stored config, validated
    edited: bool  # whether the config, seed or input files differ from those the run began with (the digest)


def open_store(path):
    """Open an existing gpusim store for reading, checked first (:mod:`gpusim.store_validation`); StoreError if it
    is not one, or not one gpusim can read safely."""
    if isinstance(path, OpenedStore):
        return path
    path, root, meta, checked = _root_checked(path)
    edited = run_digest(meta) != checked.digest
    try:
        cfg = _config_of(path, checked.config)
        problem = consistency_problem(checked, cfg)
        if problem:
            raise StoreError(f"{path}: {problem}")
        check_arrays(root, path, checked, cfg)
    except StoreError as exc:
        raise StoreError(f"{exc}{edited_hint(path) if edited else ''}") from None
    return OpenedStore(path, root, meta, checked, cfg, edited)


def edited_hint(path):
    """What to say of a store whose config was edited after its run began: how to run the edited config."""
    return (f" (its config, seed or input files were edited after the run began; to run the edited config, start a "
            f"new run from it: gpusim info {path} --config > edited.toml && gpusim run edited.toml -o NEW.ome.zarr)")


def stored_config(path):
    """The config a store holds, as written (root attributes checked; nothing else read): what a new run can
    start from."""
    return _root_checked(path)[3].config


def _root_checked(path):
    """(path, root group, gpusim attributes, the same as RootAttributes) of a store after the first two looks: its
    tree and its root attributes."""
    path = _store_folder(path)
    check_tree(path)
    try:
        root = _zarr().open_group(str(path), mode="r", zarr_format=3)
        attributes = root.attrs.asdict()
    except Exception as exc:
        raise StoreError(f"{path}: cannot be read as a zarr store ({type(exc).__name__}: {exc})") from None
    checked = checked_attributes(path, attributes)  # a gpusim store: its attributes are there
    return path, root, attributes["gpusim"], checked


def read_timeseries(store):
    """The time series of a store (a path or an OpenedStore) as a dict of numpy arrays, trimmed to the steps
    done."""
    opened = open_store(store)
    rows = opened.meta["steps_done"] + 1
    group = opened.root["timeseries"]
    return {name: read(group[name], opened.path, f"timeseries/{name}", slice(0, rows)) for name in SERIES}


def read_histograms(store):
    """(histograms [t, species, kind, bin], snapshot clocks, bin edges) of a store's flow cytometer."""
    opened = open_store(store)
    written = opened.meta["snapshots_written"]
    counts = read(opened.root["histograms/pools"], opened.path, "histograms/pools", slice(0, written))
    return counts, opened.meta["snapshot_steps"][:written], log_bin_edges()


def disk_usage(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def summary(path):
    """A JSON-able summary of a store: what ``gpusim info`` prints (the time series read one at a time)."""
    opened = open_store(path)
    root, meta = opened.root, opened.meta
    rows = slice(0, meta["steps_done"] + 1)

    def series(name):
        return read(root["timeseries"][name], path, f"timeseries/{name}", rows)

    final = {name: int(series(name)[-1]) for name in SERIES if name.startswith("cells_")}
    totals = {
        name: int(series(name).sum())
        for name in SERIES
        if name.startswith(("births_", "deaths_", "dosed_", "taken_", "given_"))
        or name in ("moves", "engagements", "hits", "bites")
    }
    return {
        "path": str(path),
        "description": meta.get("description", ""),
        "gpusim_version": meta["version"],
        "status": meta["status"],
        "backend": meta["backend"],
        "segments": segments(meta),
        "seed": meta["seed"],
        "created": meta["created"],
        "lattice_shape": meta["lattice_shape"],
        "voxel_size_um": meta["voxel_size_um"],
        "dt_min": meta["dt_min"],
        "steps_done": meta["steps_done"],
        "steps_total": meta["steps_total"],
        "simulated_min": meta["steps_done"] * meta["dt_min"],
        "snapshots": meta["snapshots_written"],
        "labels_levels": [a.basename for a in level_arrays(root["labels/cells"])] if "labels" in root else [],
        "diffusing_fields": meta.get("diffusing_fields", {}),
        "field_grid_coarsening": meta.get("field_grid_coarsening"),
        "final_counts": final,
        "totals": totals,
        "bytes_on_disk": disk_usage(path),
        "config": meta["config"],
        "edited": opened.edited,
        "arms": {name: arm_status(path, name) for name in opened.cfg.arms},
    }


def arm_path(path, name):
    """Where control arm ``name`` of the run at ``path`` keeps its store."""
    return Path(path) / "arms" / name


def arm_status(path, name):
    """'complete', 'running', 'stopped', 'not run' or 'unreadable' for control arm ``name`` of a run."""
    where = arm_path(path, name)
    if not where.exists():
        return "not run"
    try:
        return open_store(where).meta["status"]
    except StoreError:
        return "unreadable"


def to_json(obj):
    return json.dumps(obj, indent=2, sort_keys=False)
