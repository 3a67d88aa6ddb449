"""A store and a config are untrusted input: careless edits, crashes and crafted files get one line naming what is
wrong and exit status 2; nothing outside the store is touched, an old store survives, and no read allocates more
than the run's own data.

Commands that could crash the interpreter (a resume of a crafted checkpoint) or allocate without bound run in a
subprocess whose address space is capped (``limited``): a segfault shows as a signal, an unchecked allocation of
gigabytes as a MemoryError traceback, and either fails the test.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from gpusim import cli

from helpers import run_gpusim

# a small run stopped at 5 min with a checkpoint: CAR-T cells arrive at 6 min, the run ends at 15
SMALL = ["--set", "run.duration=15 min", "--set", "run.snapshot_every=5 min", "--set", "run.checkpoint_every=5 min",
         "--set", "lattice.shape=[8, 8, 8]", "--set", "tumour.initial_cells=60", "--set", "dose.0.time=6 min",
         "--set", "dose.0.count=12", "--set", "fields.oxygen.supply=38 mmHg", "--set", "fields.chemokine.decay=0.02 /min",
         "--quiet", "--backend", "cpu"]
ADDRESS_SPACE = 3 << 30  # bytes a limited command may map: the run's data fit many times, a crafted size does not


@pytest.fixture(scope="module")
def stopped_store(tmp_path_factory):
    """A store of the small run, stopped at 5 min (checkpoint at step 5); tests take copies."""
    path = tmp_path_factory.mktemp("base") / "base.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(path), *SMALL, "--stop-at", "5 min"]) == 0
    return path


@pytest.fixture
def store(stopped_store, tmp_path):
    """A copy of the stopped store in a folder of its own, beside a folder of the user's that must never change."""
    path = tmp_path / "runs" / "run.ome.zarr"
    shutil.copytree(stopped_store, path)
    victim = tmp_path / "thesis"
    victim.mkdir()
    (victim / "chapter1.tex").write_text("years of work")
    return path


def tree(path):
    """Every file under ``path`` with its content: what must not change."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


def attributes(path):
    return json.loads((path / "zarr.json").read_text())


def edit_root(path, change):
    """Edit a store's root attributes in place as a careless user would, with a text editor: ``change(meta)``."""
    document = attributes(path)
    change(document["attributes"]["gpusim"])
    (path / "zarr.json").write_text(json.dumps(document))


def edit_array_metadata(path, key, change):
    """Edit an array's zarr.json in place: ``change(document)``."""
    target = path / key / "zarr.json"
    document = json.loads(target.read_text())
    change(document)
    target.write_text(json.dumps(document))


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def limited(*args, timeout=300):
    """``gpusim ARGS`` in a subprocess with its address space capped; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "gpusim", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit_memory)


def refused(result, *phrases):
    """The command exited 2 with one line on stderr holding every phrase (and no traceback, no signal)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("gpusim: error: "), result.stderr[-2000:]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def refused_here(capsys, status, *phrases):
    """As :func:`refused`, for ``cli.main`` called in this process."""
    captured = capsys.readouterr()
    return refused(subprocess.CompletedProcess([], status, captured.out, captured.err), *phrases)


# --- 1. no deletion outside the store -------------------------------------------------------------------


@pytest.mark.parametrize("pointer", ["ABSOLUTE", "../../thesis", "checkpoints/../../../thesis"])
def test_a_crafted_checkpoint_path_deletes_nothing_outside_the_store(store, tmp_path, pointer):
    victim = tmp_path / "thesis"
    before = tree(victim)
    path = str(victim) if pointer == "ABSOLUTE" else pointer
    edit_root(store, lambda meta: meta.update(checkpoint={"path": path, "clock": 5}))
    refused(limited("resume", store), "attribute gpusim.checkpoint.path")
    assert tree(victim) == before


def test_a_symbolic_link_in_a_store_is_refused_before_anything_follows_it(store, tmp_path):
    victim = tmp_path / "thesis"
    before = tree(victim)
    checkpoints = store / "checkpoints"
    shutil.rmtree(checkpoints)
    checkpoints.symlink_to(victim)
    for command in ("resume", "info", "report"):
        refused(limited(command, store), "checkpoints is a symbolic link")
    assert tree(victim) == before


# --- 2. --overwrite replaces only a gpusim store ------------------------------------------------------------


def test_overwrite_never_replaces_what_is_not_a_gpusim_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "zarr.json").write_text("{}")  # a stray zarr.json
    (thesis / "chapter1.tex").write_text("years of work")
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["owner"] = "another tool"
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    link = tmp_path / "link.ome.zarr"
    link.symlink_to(thesis)
    before = tree(tmp_path)
    cases = [(thesis, "no gpusim store marker"), (foreign, "no gpusim store marker"), (empty, "no gpusim store marker"),
             ("", "is the working folder or holds it"), (".", "working folder"), ("..", "working folder"),
             (tmp_path / "notes.txt", "is a file"), (link, "symbolic link"), ("notes.txt/x.ome.zarr", "is not a folder")]
    for target, reason in cases:
        refused(run_gpusim("run", "tiny", "-o", target, "--overwrite", "--quiet", cwd=tmp_path), reason)
    assert tree(tmp_path) == before


def test_overwrite_swaps_the_new_store_in_only_once_its_first_checkpoint_is_written(store, monkeypatch, capsys):
    """A run that fails while starting (before its first checkpoint) leaves the old store as it was, and nothing
    beside it."""
    from gpusim.engine import Simulation

    before = tree(store)
    monkeypatch.setattr(Simulation, "checkpoint", lambda self: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    status = cli.main(["run", "tiny", "-o", str(store), *SMALL, "--seed", "8", "--overwrite"])
    assert status == 1 and "No space left on device" in capsys.readouterr().err
    assert tree(store) == before
    assert [p.name for p in store.parent.iterdir()] == ["run.ome.zarr"]  # no build left beside it


def test_a_full_disk_while_building_leaves_the_old_store_and_nothing_else(store, monkeypatch, capsys):
    from gpusim.store import RunStore

    before = tree(store)

    def full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunStore, "_create_histograms", full)
    status = cli.main(["run", "tiny", "-o", str(store), *SMALL, "--overwrite"])
    assert status == 1 and "No space left on device" in capsys.readouterr().err
    assert tree(store) == before and [p.name for p in store.parent.iterdir()] == ["run.ome.zarr"]


# --- 3. checkpoint contents are checked against their domain ------------------------------------------------------


def write_column(store, name, change):
    """Rewrite column ``name`` of the store's checkpoint with ``change(values)`` applied (dtype kept)."""
    group = zarr.open_group(str(store / "checkpoints" / "step_5"), mode="r+")
    values = group[name][...]
    values = change(values)
    del group[name]
    group.create_array(name, data=values)


@pytest.mark.parametrize("name, change, reason", [
    ("voxel", lambda v: np.where(np.arange(v.size) == 0, 10**12, v), "column voxel holds a voxel outside the lattice"),
    ("voxel", lambda v: np.where(np.arange(v.size) == 0, -1, v), "column voxel holds a voxel outside the lattice"),
    ("voxel", lambda v: np.where(np.arange(v.size) == 1, v[0], v), "two cells in one voxel"),
    ("kind", lambda v: np.where(np.arange(v.size) == 0, 200, v).astype(v.dtype), "column kind holds a kind beyond"),
    ("agent_id", lambda v: np.where(np.arange(v.size) == 1, v[0], v), "two cells with one id"),
    ("partner", lambda v: np.where(np.arange(v.size) == 0, 90, v).astype(v.dtype), "direction out of range"),
    ("pools", lambda v: -v, "column pools holds a negative value"),
])
def test_a_checkpoint_column_outside_its_domain_is_refused(store, name, change, reason):
    write_column(store, name, change)
    before = tree(store)
    refused(limited("resume", store), reason)
    assert tree(store) == before


def test_a_lattice_edited_smaller_is_refused(store):
    def smaller(meta):
        meta["lattice_shape"] = [4, 4, 4]
        meta["config"]["lattice"]["shape"] = [4, 4, 4]

    edit_root(store, smaller)
    refused(limited("resume", store))


# --- 4. metadata sizes are checked before anything is read ---------------------------------------------------------


def test_a_time_series_of_two_billion_rows_is_refused_before_reading(store):
    edit_array_metadata(store, "timeseries/cells_tumour", lambda d: d.update(shape=[2**31]))
    edit_root(store, lambda meta: meta.update(steps_done=2**31 - 1))
    for command in ("info", "report", "resume"):
        refused(limited(command, store), "steps_done")


def test_an_array_longer_than_the_config_implies_is_refused_before_reading(store):
    edit_array_metadata(store, "timeseries/cells_tumour", lambda d: d.update(shape=[2**31]))
    for command in ("info", "report", "resume"):
        refused(limited(command, store), "timeseries/cells_tumour has shape [2147483648]; the stored config gives [16]")
    result = subprocess.run([sys.executable, "-c", f"import gpusim; gpusim.open_run({str(store)!r})"],
                            capture_output=True, text=True, preexec_fn=limit_memory)
    assert "StoreError" in result.stderr and "MemoryError" not in result.stderr


def test_a_huge_label_image_and_a_huge_checkpoint_are_refused_before_reading(store):
    original = json.loads((store / "labels/cells/s0/zarr.json").read_text())
    edit_array_metadata(store, "labels/cells/s0", lambda d: d.update(shape=[7, 16, 65536, 65536]))
    for command in ("info", "report", "resume"):
        refused(limited(command, store), "labels/cells/s0 has shape")
    (store / "labels/cells/s0/zarr.json").write_text(json.dumps(original))
    group = zarr.open_group(str(store / "checkpoints" / "step_5"), mode="r+")
    group.attrs["n"] = 2**31
    edit_array_metadata(store, "checkpoints/step_5/voxel", lambda d: d.update(shape=[2**31]))
    refused(limited("resume", store), "holds 2,147,483,648 cells; the lattice has 512 voxels")


def test_chunks_larger_than_a_writer_makes_are_refused(store):
    def huge_chunks(document):
        document.update(shape=[16])
        document["chunk_grid"]["configuration"]["chunk_shape"] = [2**31]

    edit_array_metadata(store, "timeseries/cells_tumour", huge_chunks)
    refused(limited("info", store), "chunks of")


# --- 5. a value that passes validation never crashes later ----------------------------------------------------------


@pytest.mark.parametrize("key, value, reason", [
    ("run.snapshot_every", "1e-7 min", "shorter than one step"),
    ("run.checkpoint_every", "1e-7 min", "shorter than one step"),
    ("run.sort_every", "1e-7 min", "shorter than one step"),
    ("run.duration", "1e-7 min", "shorter than one step"),
    ("run.duration", "3000 d", "a run has at most 1,048,576"),
])
def test_an_interval_of_zero_steps_is_refused_and_the_old_store_survives(store, capsys, key, value, reason):
    before = tree(store)
    status = cli.main(["run", "tiny", "-o", str(store), *SMALL, "--set", f"{key}={value}", "--overwrite"])
    refused_here(capsys, status, key, reason)
    assert tree(store) == before


def test_an_interval_of_the_fields_of_zero_steps_is_refused(capsys, tmp_path):
    status = cli.main(["run", "sample", "-o", str(tmp_path / "x.ome.zarr"), "--set", "fields.every=1e-7 min"])
    refused_here(capsys, status, "fields.every", "shorter than one step")


# --- 6. long times never wrap a narrow column ------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, limit", [
    ("effectors.car_t.refractory_time", "65536 min", "the refractory_steps column (int16) holds at most 32,767"),
    ("effectors.car_t.synapse_time", "40000 min", "the synapse_steps column (int16) holds at most 32,767"),
    ("tumour.cycle_time", "2000000 d", "the cycle_timer column (int32) holds at most 2,147,483,647"),
    ("effectors.car_nk.division_time", "2000000 d", "the cycle_timer column (int32)"),
    ("tumour.debris_clearance", "2000000 d", "the cycle_timer column (int32)"),
])
def test_a_duration_a_column_cannot_hold_is_refused_with_the_key_and_the_limit(capsys, tmp_path, key, value, limit):
    out = tmp_path / "x.ome.zarr"
    refused_here(capsys, cli.main(["run", "tiny", "-o", str(out), "--set", f"{key}={value}"]), key, limit)
    assert not out.exists()


def test_a_synapse_as_long_as_its_column_holds_still_ends(tmp_path):
    """32,767 steps of synapse fit the int16 counter: the check refuses only what would wrap."""
    from gpusim.config import load

    cfg, _ = load("tiny", ["effectors.car_t.synapse_time=32767 min", "effectors.car_t.refractory_time=32767 min"])
    assert cfg.effectors.car_t.synapse_time == 32767


# --- 7. one writer at a time -------------------------------------------------------------------------------------------


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.05)
    return predicate()


def test_a_second_writer_is_refused_naming_the_first(store, tmp_path):
    long_run = ["--set", "run.duration=3 d", "--set", "run.checkpoint_every=1 d", "--quiet", "--backend", "cpu"]
    first = subprocess.Popen([sys.executable, "-m", "gpusim", "run", "tiny", "-o", str(store), *long_run, "--overwrite"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: attributes(store)["attributes"]["gpusim"]["steps_total"] == 4320)  # swapped in
        for second in (run_gpusim("run", "tiny", "-o", store, *long_run, "--overwrite"), run_gpusim("resume", store)):
            refused(second, "another gpusim is writing it", f"pid {first.pid}", "gpusim run")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)  # stops at a step with a checkpoint
        first.communicate(timeout=120)
    assert first.returncode == 130

    resume = subprocess.Popen([sys.executable, "-m", "gpusim", "resume", str(store), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: attributes(store)["attributes"]["gpusim"]["status"] == "running")
        refused(run_gpusim("run", "tiny", "-o", store, *SMALL, "--overwrite"), "another gpusim is writing it",
                f"pid {resume.pid}", "gpusim resume")
    finally:
        resume.send_signal(signal.SIGINT)
        resume.communicate(timeout=120)
    assert resume.returncode == 130 and attributes(store)["attributes"]["gpusim"]["status"] == "stopped"


# --- 8. an edited stored config is not trusted on resume ---------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("run.duration", "30 min"), ("run.seed", 99), ("synapse.contact_fraction", 0.3)])
def test_an_edited_stored_config_is_refused_on_resume_with_the_way_to_run_it(store, key, value, capsys):
    """A longer duration, another seed, an added section: the store no longer holds the run its config describes.
    A resume refuses it and says how to start a new run from the edited config, which `info --config` writes
    out."""
    section, name = key.split(".")
    edit_root(store, lambda meta: meta["config"].setdefault(section, {}).update({name: value}))
    before = tree(store)
    refused(limited("resume", store), "edited after the run began", f"gpusim info {store} --config > edited.toml")
    assert tree(store) == before
    assert cli.main(["info", str(store), "--config"]) == 0
    assert f"{name} = " in capsys.readouterr().out


def test_a_config_edited_in_the_store_can_start_a_new_run(store, tmp_path, capsys):
    edit_root(store, lambda meta: meta["config"].update(synapse={"contact_fraction": 0.3}))
    assert cli.main(["info", str(store)]) == 0
    assert "edited after the run began" in capsys.readouterr().out
    assert cli.main(["info", str(store), "--config"]) == 0
    edited = tmp_path / "edited.toml"
    edited.write_text(capsys.readouterr().out)
    assert cli.main(["run", str(edited), "-o", str(tmp_path / "new.ome.zarr"), "--quiet"]) == 0
    assert zarr.open_group(str(tmp_path / "new.ome.zarr"), mode="r").attrs["gpusim"]["config"]["synapse"] == {
        "contact_fraction": 0.3}


# --- 9. one line, never a traceback ------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, reason", [
    ("lattice.shape.0.x=3", "lattice.shape.0 is a value, not a section"),
    ("description=" + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("description=" + "[" * 40 + "]" * 40, "nested more than 16 deep"),
    ("run.dt=1e-300 min", "a run has at most"),
    ("synapse.contact_area=1e300 um2", "binding computes with at most"),
    ("dose.7.count=3", "there is no entry 7"),
])
def test_a_bad_override_is_one_line(capsys, tmp_path, override, reason):
    status = cli.main(["run", "tiny", "-o", str(tmp_path / "x.ome.zarr"), "--set", override])
    refused_here(capsys, status, reason)


def test_an_infinite_stop_time_is_one_line(capsys, tmp_path):
    refused_here(capsys, cli.main(["run", "tiny", "-o", str(tmp_path / "x"), "--stop-at", "1e999 h"]), "not a finite time")


def test_a_vessel_mask_must_be_a_regular_npy_file_of_the_grid(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.savez("mask.npz", mask=np.zeros((4, 4, 4)))
    np.save("wrong.npy", np.zeros((3, 3, 3)))
    np.save("objects.npy", np.array([None] * 64, dtype=object).reshape(4, 4, 4), allow_pickle=True)
    np.save("cut.npy", np.zeros((4, 4, 4)))
    with open("cut.npy", "r+b") as f:
        f.truncate(200)
    os.mkfifo("fifo.npy")
    base = ["run", "sample", "-o", str(tmp_path / "x.ome.zarr"), "--set", "lattice.shape=[8, 8, 8]",
            "--set", "tumour.initial_cells=50", "--set", "dose.0.count=10"]
    for name, reason in (("mask.npz", "is not a .npy file"), ("wrong.npy", "has shape (3, 3, 3), the field grid is (4, 4, 4)"),
                         ("objects.npy", "holds object values"), ("cut.npy", "is truncated"),
                         ("fifo.npy", "is not a regular file"), ("missing.npy", "cannot open")):
        status = cli.main(base + ["--set", f"fields.oxygen.vessel_mask={name}"])
        refused_here(capsys, status, "fields.oxygen.vessel_mask", reason)
    assert not (tmp_path / "x.ome.zarr").exists()


def test_a_vessel_mask_is_stored_absolute_with_its_digest_and_must_not_change_before_a_resume(tmp_path, monkeypatch,
                                                                                               capsys):
    monkeypatch.chdir(tmp_path)
    mask = np.zeros((4, 4, 4), dtype=np.uint8)
    mask[0, 0, 0] = 1
    np.save("mask.npy", mask)
    out = tmp_path / "x.ome.zarr"
    assert cli.main(["run", "sample", "-o", str(out), "--set", "lattice.shape=[8, 8, 8]", "--set", "tumour.initial_cells=50",
                     "--set", "dose.0.count=10", "--set", "dose.0.time=2 min", "--set", "run.duration=10 min",
                     "--set", "run.snapshot_every=5 min",
                     "--set", "fields.oxygen.vessel_mask=mask.npy", "--stop-at", "5 min", "--quiet"]) == 0
    meta = attributes(out)["attributes"]["gpusim"]
    assert meta["config"]["fields"]["oxygen"]["vessel_mask"] == str(tmp_path / "mask.npy")
    assert meta["inputs"]["fields.oxygen.vessel_mask"]["path"] == str(tmp_path / "mask.npy")
    mask[1, 1, 1] = 1
    np.save("mask.npy", mask)
    monkeypatch.chdir(tmp_path.parent)  # a resume from elsewhere finds the file by its absolute path
    refused_here(capsys, cli.main(["resume", str(out)]), "fields.oxygen.vessel_mask", "changed since the run began")


def test_bad_viewer_report_and_bench_arguments_are_one_line(store, tmp_path, capsys):
    for argv, reason in (
        (["view", str(store), "--time", "nan"], "must be a finite number of hours"),
        (["view", str(store), "--time", "-1"], "must be a finite number of hours"),
        (["bench", "--agents", "inf"], "is not a whole number of agents"),
        (["bench", "--agents", "-5"], "is not a whole number of agents"),
        (["bench", "--agents", ""], "expected comma-separated numbers"),
        (["bench", "--steps", "0"], "must be at least 1"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err
    for argv, reason in (
        (["report", str(store), "-o", str(tmp_path / "missing" / "x.png")], "no folder"),
        (["report", str(store), "-o", str(tmp_path)], "name a .png file"),
        (["report", str(store), "-o", str(tmp_path / "figure")], "name a .png file"),
        (["bench", "--agents", "1e3", "--record", str(tmp_path / "missing" / "r.md")], "no folder"),
    ):
        refused_here(capsys, cli.main(argv), reason)
    assert not list(tmp_path.glob("*.png"))


def test_a_screenshot_into_a_missing_folder_is_one_line(store, tmp_path, capsys, monkeypatch):
    pytest.importorskip("napari")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    refused_here(capsys, cli.main(["view", str(store), "--screenshot", str(tmp_path / "missing" / "x.png")]), "no folder")


def test_damaged_files_are_one_line(store, capsys):
    chunks = [p for p in (store / "timeseries" / "cells_tumour").rglob("*") if p.is_file() and p.name != "zarr.json"]
    chunk = chunks[0]
    chunk.write_bytes(chunk.read_bytes()[:5])  # a truncated chunk
    for command in ("info", "report"):
        refused_here(capsys, cli.main([command, str(store)]), "timeseries/cells_tumour cannot be read")
    (store / "timeseries" / "cells_car_t" / "zarr.json").write_text('{"shape": [1')  # truncated metadata
    refused_here(capsys, cli.main(["info", str(store)]), "timeseries/cells_car_t: metadata cannot be read")


@pytest.mark.parametrize("key, value", [
    ("steps_done", "5"), ("seed", -1), ("segments", []), ("snapshot_steps", {"a": 1}), ("status", "finished"),
    ("dt_min", "NaN"), ("checkpoint", 5), ("config", []), ("description", 7),
])
def test_an_attribute_of_the_wrong_type_is_one_line(store, capsys, key, value):
    edit_root(store, lambda meta: meta.update({key: value}))
    for command in ("info", "resume"):
        refused_here(capsys, cli.main([command, str(store)]), f"attribute gpusim.{key}")


def test_a_store_half_made_when_its_creation_was_killed_leaves_nothing_at_its_path(tmp_path):
    out = tmp_path / "x.ome.zarr"
    process = subprocess.Popen([sys.executable, "-m", "gpusim", "run", "tiny", "-o", str(out), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: any(p.name.endswith(".gpusim-new") and (p / "zarr.json").exists()
                                for p in tmp_path.iterdir()), timeout=120)
    process.kill()
    process.wait()
    if not out.exists():  # killed while building: nothing at the path, and the next run clears the leftover
        refused(run_gpusim("info", out), "no such store")
        assert run_gpusim("run", "tiny", "-o", out, "--quiet", "--set", "run.duration=1 h").returncode == 0
    assert [p.name for p in tmp_path.iterdir()] == ["x.ome.zarr"]


def test_ctrl_c_while_a_store_is_built_exits_130_and_leaves_nothing(store, tmp_path, monkeypatch, capsys):
    from gpusim.store import RunStore

    before = tree(store)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunStore, "_create_timeseries", lambda self, length: interrupted(self))
    assert cli.main(["run", "tiny", "-o", str(store), *SMALL, "--overwrite"]) == 130
    assert capsys.readouterr().err.strip() == "gpusim: interrupted"
    assert tree(store) == before and [p.name for p in store.parent.iterdir()] == ["run.ome.zarr"]


# --- also -------------------------------------------------------------------------------------------------------------


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    from gpusim.config import load

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    cfg, _ = load("tiny")
    assert cfg.lattice.shape == (16, 16, 16)


def test_escape_sequences_in_a_store_are_shown_not_obeyed(store, capsys):
    def bell(meta):
        meta["description"] = "\x1b]0;pwned\x07\x1b[2J"
        meta["config"]["description"] = meta["description"]

    edit_root(store, bell)
    assert cli.main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;pwned\\x07" in out


def test_a_resume_clears_what_a_killed_writer_left_and_reads_without_warnings(store, recwarn):
    leftover = store / "timeseries" / "cells_tumour" / "zarr.0123abcd.partial"
    leftover.write_bytes(b"half")
    assert run_gpusim("resume", store, "--quiet").returncode == 0
    assert not leftover.exists()
    import gpusim

    gpusim.open_run(store).timeseries
    assert not [w for w in recwarn if "zarr" in str(w.message).lower()]


def test_a_cache_folder_others_can_write_to_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    result = run_gpusim("run", "tiny", "-o", tmp_path / "x.ome.zarr", env={"GPUSIM_CACHE_DIR": str(cache)})
    refused(result, "is writable by group or others")
    fresh = tmp_path / "fresh"
    from gpusim.kernels import codegen

    os.environ["GPUSIM_CACHE_DIR"], saved = str(fresh), os.environ.get("GPUSIM_CACHE_DIR")
    try:
        codegen.private_cache_dir()
    finally:
        if saved is None:
            del os.environ["GPUSIM_CACHE_DIR"]
        else:
            os.environ["GPUSIM_CACHE_DIR"] = saved
    assert (fresh.stat().st_mode & 0o777) == 0o700 and ((fresh / "launchers").stat().st_mode & 0o777) == 0o700


def test_kill_and_resume_through_the_checks_still_equals_the_uninterrupted_run(stopped_store, tmp_path):
    """The checks change nothing a valid store computes: the stopped store resumed to the end equals the run made
    in one go."""
    from test_resume import assert_same_run

    straight, resumed = tmp_path / "straight.ome.zarr", tmp_path / "resumed.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(straight), *SMALL]) == 0
    shutil.copytree(stopped_store, resumed)
    assert cli.main(["resume", str(resumed), "--quiet"]) == 0
    assert_same_run(straight, resumed, 15)


def test_without_renameat2_a_store_still_takes_its_path_and_replaces_the_old_one(store, tmp_path, monkeypatch, capsys):
    """Where the system has no atomic exchange of two paths (not Linux), the new store takes the path by two
    renames, once its first checkpoint is on disk."""
    from gpusim import store as stores

    monkeypatch.setattr(stores, "_rename", lambda source, target, flags: False)
    assert cli.main(["run", "tiny", "-o", str(store), *SMALL, "--seed", "8", "--overwrite"]) == 0
    assert attributes(store)["attributes"]["gpusim"]["seed"] == 8
    fresh = tmp_path / "runs" / "fresh.ome.zarr"
    assert cli.main(["run", "tiny", "-o", str(fresh), *SMALL]) == 0
    assert sorted(p.name for p in store.parent.iterdir()) == ["fresh.ome.zarr", "run.ome.zarr"]
