"""Fuzzing a store's metadata and a config with hypothesis; run by tests/test_fuzz_store.py in a subprocess whose
address space is capped, so that a crash shows as a signal and an unbounded allocation as a MemoryError.

    python tests/fuzz_store_run.py WORK_DIR EXAMPLES [SEED]

Every example mutates a copy of a small stopped store (root attributes, array metadata, checkpoint values, files
cut short or removed) or the ``tiny`` preset's config, then runs a command on it.  The property: the command exits
0 or 2 (2 with a one-line ``gpusim: error:`` message), raises nothing, and leaves the files beside the store as
they were.  Prints a JSON summary; exits 1 with hypothesis's falsifying example when the property fails.  Without
SEED the examples are hypothesis's derandomized ones (the same in every run: CI sees what a developer saw); a SEED
explores others.
"""

import contextlib
import copy
import io
import json
import shutil
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpusim import cli, config

SMALL = ["--set", "run.duration=15 min", "--set", "run.snapshot_every=5 min", "--set", "run.checkpoint_every=5 min",
         "--set", "lattice.shape=[8, 8, 8]", "--set", "tumour.initial_cells=60", "--set", "dose.0.time=6 min",
         "--set", "dose.0.count=12", "--set", "fields.chemokine.decay=0.02 /min", "--quiet", "--backend", "cpu"]
ARRAYS = ["timeseries/cells_tumour", "timeseries/time_min", "labels/cells/s0", "s0", "fields/s0", "histograms/pools",
          "agents/offsets", "agents/voxel", "agents/pools", "checkpoints/step_5/voxel", "checkpoints/step_5/pools",
          "checkpoints/step_5/field_values"]
COLUMNS = ["voxel", "kind", "state", "heading", "partner", "agent_id", "pools", "set_points", "cycle_timer",
           "divisions_left", "field_values"]
DTYPES = ["int8", "uint8", "int16", "int32", "int64", "uint64", "float32", "float64", "bool", "complex128", "nonsense"]

numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**31, 2**31 - 1, 2**32, 2**62, 10**12, 5, 15, 16]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.5]),
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "/", "/tmp", "..", "../..", "checkpoints/../../thesis", "checkpoints/step_5",
                     "checkpoints/step_999", "\x1b[2J", "running", "complete", "gpusim-run", "1 min", "1e-9 min",
                     "1e9 d", "-5 min", "nan min"]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=8,
)


def paths_of(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value, the root excluded."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out.append(prefix + (key,))
        out.extend(paths_of(child, prefix + (key,)))
    return out


def set_path(document, path, value):
    node = document
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


DELETE = object()
values_or_delete = st.one_of(json_values, st.just(DELETE))


@st.composite
def root_edits(draw, meta):
    path = draw(st.sampled_from(paths_of(meta)))
    return ("root", path, draw(values_or_delete))


@st.composite
def array_edits(draw):
    key = draw(st.sampled_from(ARRAYS))
    field = draw(st.sampled_from(["shape", "data_type", "chunk", "fill_value", "codecs", "node_type"]))
    if field == "shape":
        value = draw(st.lists(st.sampled_from([0, 1, 3, 8, 16, 2**31, 2**40, 65536, -1]), min_size=0, max_size=5))
    elif field == "data_type":
        value = draw(st.sampled_from(DTYPES))
    elif field == "chunk":
        value = draw(st.lists(st.sampled_from([0, 1, 8, 2**20, 2**31]), min_size=1, max_size=5))
    else:
        value = draw(json_values)
    return ("array", key, field, value)


@st.composite
def column_edits(draw):
    name = draw(st.sampled_from(COLUMNS))
    value = draw(st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1),
                           st.floats(allow_nan=True, allow_infinity=True)))
    return ("column", name, draw(st.integers(min_value=0, max_value=100)), value)


@st.composite
def file_edits(draw, files):
    return ("file", draw(st.sampled_from(files)), draw(st.sampled_from(["truncate", "delete", "empty", "garbage"])))


def apply(store, edit):
    """Make ``edit`` to the store; an edit an earlier one made impossible (a key it removed, a file it cut) is
    skipped."""
    try:
        _apply(store, edit)
    except (KeyError, IndexError, TypeError, ValueError, OSError):
        pass


def _apply(store, edit):
    kind = edit[0]
    if kind == "root":
        document = json.loads((store / "zarr.json").read_text())
        set_path(document["attributes"]["gpusim"], edit[1], edit[2])
        (store / "zarr.json").write_text(json.dumps(document))
    elif kind == "array":
        _, key, field, value = edit
        target = store / key / "zarr.json"
        if not target.is_file():
            return
        document = json.loads(target.read_text())
        if field == "chunk":
            document.setdefault("chunk_grid", {}).setdefault("configuration", {})["chunk_shape"] = value
        else:
            document[field] = value
        target.write_text(json.dumps(document))
    elif kind == "column":
        _, name, index, value = edit
        group = zarr.open_group(str(store / "checkpoints" / "step_5"), mode="r+")
        if name not in group:
            return
        values = group[name][...]
        flat = values.reshape(-1)
        if flat.size == 0:
            return
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                flat[index % flat.size] = np.asarray(value).astype(values.dtype)
            except (OverflowError, ValueError):
                flat[index % flat.size] = np.iinfo(values.dtype).max if values.dtype.kind in "iu" else value
        group[name][...] = values
    elif kind == "file":
        _, relative, how = edit
        target = store / relative
        if not target.is_file():
            return
        data = target.read_bytes()
        if how == "delete":
            target.unlink()
        elif how == "truncate":
            target.write_bytes(data[: len(data) // 2])
        elif how == "empty":
            target.write_bytes(b"")
        else:
            target.write_bytes(b"\x00\xff garbage " * 10)


def tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


def run_cli(argv):
    """``cli.main(argv)``: (status, stderr).  argparse's own exits count as statuses."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            status = cli.main(argv)
        except SystemExit as exit_:
            status = exit_.code
    return status, err.getvalue()


def check_outcome(status, err, argv):
    assert status in (0, 2), f"{argv}: exit {status}: {err[-1500:]}"
    if status == 2:
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith(("gpusim: error: ", "gpusim: error:")), err[-1500:]
        assert "Traceback" not in err, err[-1500:]


def main():
    work, examples = Path(sys.argv[1]), int(sys.argv[2])
    explore = {"derandomize": False} if len(sys.argv) > 3 else {"derandomize": True}
    if len(sys.argv) > 3:
        from hypothesis import seed

        seeded = seed(int(sys.argv[3]))
    else:
        seeded = lambda f: f  # noqa: E731
    base = work / "base.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(base), *SMALL, "--stop-at", "5 min"]) == 0
    meta = json.loads((base / "zarr.json").read_text())["attributes"]["gpusim"]
    files = [str(p.relative_to(base)) for p in sorted(base.rglob("*")) if p.is_file()]
    outcomes = {"store": {0: 0, 2: 0}, "config": {0: 0, 2: 0}}

    edits = st.one_of(root_edits(meta), array_edits(), column_edits(), file_edits(files))
    commands = st.sampled_from(["info", "info-json", "info-config", "report", "resume", "open_run"])

    @seeded
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck), **explore)
    @given(st.lists(edits, min_size=1, max_size=3), commands)
    def store_property(changes, command):
        sandbox = work / "sandbox"
        shutil.rmtree(sandbox, ignore_errors=True)
        store = sandbox / "runs" / "run.ome.zarr"
        shutil.copytree(base, store)
        (sandbox / "thesis").mkdir()
        (sandbox / "thesis" / "chapter1.tex").write_text("years of work")
        for change in changes:
            apply(store, change)
        beside = tree(sandbox / "thesis")
        if command == "open_run":
            import gpusim
            from gpusim.store import StoreError

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run = gpusim.open_run(store)
                    run.timeseries
                    if run.snapshots:
                        run.agents(-1)
                status, err = 0, ""
            except StoreError as exc:
                status, err = 2, f"gpusim: error: {exc}"
        else:
            argv = {"info": ["info", str(store)], "info-json": ["info", str(store), "--json"],
                    "info-config": ["info", str(store), "--config"],
                    "report": ["report", str(store), "-o", str(sandbox / "runs" / "figure.png")],
                    "resume": ["resume", str(store), "--quiet"]}[command]
            status, err = run_cli(argv)
        check_outcome(status, err, [command, changes])
        assert tree(sandbox / "thesis") == beside
        outside = sorted(p.name for p in (sandbox / "runs").iterdir())
        assert set(outside) <= {"run.ome.zarr", "figure.png"}, outside
        outcomes["store"][status] += 1

    preset = config.read_source("tiny")
    keys = [path for path in paths_of(preset) if not isinstance(_get(preset, path), (dict, list))]
    schema_keys = [("run", k) for k in ("dt", "duration", "snapshot_every", "checkpoint_every", "sort_every", "seed")] + [
        ("effectors", "car_t", k) for k in ("synapse_time", "refractory_time", "division_time", "car_kd", "speed",
                                             "exhaustion_limit", "hill", "divisions")] + [
        ("tumour", k) for k in ("cycle_time", "cycle_time_cv", "necrosis_time", "antigen_a", "debris_clearance")] + [
        ("synapse", k) for k in ("contact_area", "confinement_length", "contact_fraction")] + [
        ("fields", "every"), ("fields", "coarsening"), ("lattice", "voxel_size")]
    units = st.sampled_from(["min", "h", "d", "s", "um", "nm", "um2", "nM", "uM", "um/min", "/h", "mmHg", ""])
    quantities = st.builds(lambda x, u: f"{x:g} {u}".strip(), st.floats(allow_nan=True, allow_infinity=True), units)

    @seeded
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck), **explore)
    @given(st.lists(st.tuples(st.sampled_from(keys + schema_keys), st.one_of(quantities, json_values)), min_size=1,
                    max_size=3))
    def config_property(changes):
        raw = copy.deepcopy(preset)
        for path, value in changes:
            node = raw
            for key in path[:-1]:
                node = node.setdefault(key, {}) if isinstance(node, dict) else node
            if isinstance(node, dict):
                node[path[-1]] = value
        sandbox = work / "config"
        shutil.rmtree(sandbox, ignore_errors=True)
        sandbox.mkdir()
        try:
            import tomli_w

            (sandbox / "c.toml").write_text(tomli_w.dumps(raw))
        except (TypeError, ValueError):
            return  # TOML cannot hold it (a null): no file a user could write
        argv = ["run", str(sandbox / "c.toml"), "-o", str(sandbox / "out.ome.zarr"), "--quiet", "--backend", "cpu"]
        try:
            cfg, _ = config.load(sandbox / "c.toml")
            small = cfg.voxels <= 32**3
            argv += ["--stop-at", f"{cfg.run.dt!r} min"]  # one step
        except config.ConfigError:
            small = True  # refused: quick
        if not small:
            from gpusim.engine import Simulation  # noqa: F401  (a large valid config: its rules' inputs only)
            from gpusim.parameters import build

            build(cfg)
            status, err = 0, ""
        else:
            status, err = run_cli(argv)
        check_outcome(status, err, changes)
        outcomes["config"][status] += 1

    failures = []
    for prop in (store_property, config_property):
        try:
            prop()
        except Exception as exc:  # hypothesis raises the falsifying examples' errors (a group of them)
            for error in getattr(exc, "exceptions", [exc]):
                notes = " ".join(getattr(error, "__notes__", []))
                where = traceback.format_exception(error)[-3:-1]
                failures.append(f"{prop.__name__}: {type(error).__name__}: {error} {notes} at {''.join(where)}"[:2500])
    print(json.dumps({"outcomes": outcomes, "failures": failures}))
    return 1 if failures else 0


def _get(value, path):
    for key in path:
        value = value[key]
    return value


if __name__ == "__main__":
    sys.exit(main())
