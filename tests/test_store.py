"""The run's store: layout, metadata, `gpusim info`, the report figure, and refusing foreign paths."""

import json

import numpy as np
import pytest
import zarr

from gpusim.engine import Simulation
from gpusim.store import RunStore, read_timeseries

from helpers import run_gpusim, small_config


def write_store(path, seed=None):
    cfg, raw = small_config(run={"seed": seed}) if seed is not None else small_config()
    sim = Simulation(cfg)
    sim.run(store=RunStore(path, cfg, raw, sim.backend.label))
    return sim


def test_snapshot_volumes_show_each_cell_in_its_voxel(small, monkeypatch):
    """The kind map and the molecule fields painted for a snapshot (a chunk of the lattice at a time through one
    device buffer) hold each cell's own kind and molecules in its voxel and nothing elsewhere; the table, sorted
    a chunk of the lattice at a time, still agrees with the occupancy grid."""
    from gpusim import state as state_module
    from gpusim.kernels.cells import DEBRIS_LABEL, NECROTIC, TUMOUR
    from gpusim.kernels.molecules import ANTIGEN_A, CAR

    monkeypatch.setattr(state_module, "VOXEL_CHUNK", 1000)  # 16^3 voxels: five chunks, the last one short
    cfg, _ = small
    sim = Simulation(cfg)
    sim.run(30)  # sorted by voxel at 20 min, the lattice listed in chunks too
    sim.state.check_invariants()
    cells = sim.state.snapshot()
    voxel, kind, pools = cells["voxel"], cells["kind"], cells["pools"]
    expected_kind = np.zeros(16**3, dtype=np.uint8)
    expected_kind[voxel] = np.where(cells["state"] & NECROTIC, DEBRIS_LABEL, kind + 1)
    assert np.array_equal(sim.kind_volume().reshape(-1), expected_kind)
    tumour = kind == TUMOUR
    expected = np.zeros((3, 16**3), dtype=np.uint32)
    expected[0, voxel[tumour]] = pools[ANTIGEN_A, tumour]
    expected[1, voxel[~tumour]] = pools[ANTIGEN_A, ~tumour]
    expected[2, voxel] = pools[CAR]
    assert np.array_equal(sim.field_volumes().reshape(3, -1), expected)
    assert np.count_nonzero(expected[1]) > 0  # effectors are there, with antigen taken from the tumour


def test_store_layout_and_metadata(tmp_path):
    path = tmp_path / "run.ome.zarr"
    sim = write_store(path)
    root = zarr.open_group(str(path), mode="r")
    meta = root.attrs["gpusim"]
    assert meta["status"] == "complete" and meta["steps_done"] == sim.clock == 120
    assert meta["seed"] == 3 and meta["backend"] == "cpu" and meta["version"]
    assert meta["config"]["tumour"]["initial_cells"] == 500
    assert root["labels"].attrs["ome"]["labels"] == ["cells"]
    ome = root["labels/cells"].attrs["ome"]
    assert ome["version"] == "0.5"
    axes = ome["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["t", "z", "y", "x"]
    assert axes[1]["unit"] == "micrometer" and axes[0]["unit"] == "minute"
    assert ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [30.0, 10.0, 10.0, 10.0]
    labels = root["labels/cells/s0"]
    assert labels.shape == (5, 16, 16, 16) and labels.dtype == np.uint8
    assert np.array_equal(labels[-1], sim.kind_volume())
    assert np.count_nonzero(labels[0] == 1) == 500
    series = read_timeseries(path)
    assert series["step"].tolist() == list(range(121))
    assert series["cells_tumour"][-1] == sim.timeseries.last()["cells_tumour"]


def test_shards_keep_a_snapshot_in_one_file_per_level(tmp_path, monkeypatch):
    """Chunks stay small for lazy reading; shards gather them so a snapshot is one file, not one per chunk."""
    import gpusim
    from gpusim import store as store_module

    assert store_module.spatial_chunks((1000, 1000, 40)) == ((64, 64, 40), (256, 256, 40))
    assert store_module.spatial_chunks((100, 100, 100)) == ((64, 64, 64), (128, 128, 128))
    monkeypatch.setattr(store_module, "CHUNK_EDGE", 8)  # 8^3 chunks of a 16^3 lattice: 8 per snapshot and channel
    path = tmp_path / "run.ome.zarr"
    sim = write_store(path)
    root = zarr.open_group(str(path), mode="r")
    image, labels = root["s0"], root["labels/cells/s0"]
    assert image.chunks == (1, 1, 8, 8, 8) and image.shards == (1, 3, 16, 16, 16)
    assert labels.chunks == (1, 8, 8, 8) and labels.shards == (1, 16, 16, 16)
    for array in ("s0", "labels/cells/s0"):
        files = [f for f in (path / array / "c").rglob("*") if f.is_file()]
        assert len(files) == 5  # one per snapshot, holding 8 (labels) or 24 (fields) chunks
    run = gpusim.open_run(path)
    assert np.array_equal(run.labels[0][-1], sim.kind_volume())
    assert np.array_equal(run.field("car")[-1], sim.field_volumes()[2])
    assert np.array_equal(run.field("car")[-1, 3:11, 5, 2:9], sim.field_volumes()[2][3:11, 5, 2:9])  # across chunks


def test_same_seed_gives_identical_stores(tmp_path):
    a, b = tmp_path / "a.ome.zarr", tmp_path / "b.ome.zarr"
    write_store(a)
    write_store(b)
    ra, rb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert np.array_equal(ra["labels/cells/s0"][:], rb["labels/cells/s0"][:])
    for name in ra["timeseries"].array_keys():
        a_, b_ = ra["timeseries"][name][:], rb["timeseries"][name][:]
        assert np.array_equal(a_, b_, equal_nan=a_.dtype.kind == "f"), name
    def when_written_aside(meta):
        meta = {k: v for k, v in meta.items() if k != "created"}
        meta["segments"] = [{k: v for k, v in s.items() if k != "started"} for s in meta["segments"]]
        return meta

    assert when_written_aside(ra.attrs["gpusim"]) == when_written_aside(rb.attrs["gpusim"])


def test_cli_run_info_and_report(tmp_path):
    out = tmp_path / "tiny.ome.zarr"
    run = run_gpusim("run", "tiny", "-o", out, "--seed", "5", "--set", "run.duration=2 h")
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and "agent-steps/s" in run.stdout
    info = run_gpusim("info", out)
    assert info.returncode == 0 and "120 of 120 steps" in info.stdout and "tumour" in info.stdout
    as_json = json.loads(run_gpusim("info", out, "--json").stdout)
    assert as_json["seed"] == 5 and as_json["steps_done"] == 120 and as_json["final_counts"]["cells_tumour"] > 0
    report = run_gpusim("report", out)
    png = tmp_path / "tiny.png"
    assert report.returncode == 0 and png.exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["info", "resume", "view"])
def test_store_commands_refuse_foreign_and_corrupt_paths(command, tmp_path):
    missing = run_gpusim(command, tmp_path / "nothing.ome.zarr")
    assert missing.returncode == 2 and "no such store" in missing.stderr
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["hello"] = 1
    result = run_gpusim(command, foreign)
    assert result.returncode == 2 and "not one written by gpusim" in result.stderr
    corrupt = tmp_path / "corrupt.ome.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{not json")
    result = run_gpusim(command, corrupt)
    assert result.returncode == 2 and "cannot be read" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_presets_command_lists_one_line_each():
    result = run_gpusim("presets")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and any(line.startswith("demo ") for line in lines)
    assert all(len(line.split()) > 2 for line in lines)


def test_open_run_gives_lazy_fields_labels_agent_tables_and_a_dataframe(tmp_path):
    import gpusim
    from gpusim.kernels.molecules import ANTIGEN_A

    path = tmp_path / "run.ome.zarr"
    sim = write_store(path)
    run = gpusim.open_run(path)
    assert run.snapshots == 5 and list(run.snapshot_times_min) == [0, 30, 60, 90, 120]
    frame = run.timeseries
    assert frame.index.name == "time_h" and frame.index[-1] == 2.0
    assert frame["cells_tumour"].iloc[-1] == sim.timeseries.last()["cells_tumour"]
    assert run.channels == ["antigen_a", "acquired_antigen_a", "car"]
    antigen = run.field("antigen_a")[-1]
    snap = sim.state.snapshot()
    tumour = snap["kind"] == 0
    assert antigen.shape == (16, 16, 16)
    assert antigen.sum() == snap["pools"][ANTIGEN_A][tumour].sum()
    assert run.field("acquired_antigen_a")[-1].sum() == snap["pools"][ANTIGEN_A][~tumour].sum()
    table = run.agents(-1)
    assert len(table) == sim.state.n and set(table["agent_id"]) == set(snap["agent_id"].tolist())
    assert table["antigen_a"].sum() == snap["pools"][ANTIGEN_A].sum()
    assert (table["kind"] == "tumour").sum() == tumour.sum()
    assert np.array_equal(run.labels[0][-1], sim.kind_volume())
    root = zarr.open_group(str(path), mode="r")
    ome = root.attrs["ome"]
    assert [a["name"] for a in ome["multiscales"][0]["axes"]] == ["t", "c", "z", "y", "x"]
    assert [c["label"] for c in ome["omero"]["channels"]] == run.channels
    assert root.attrs["gpusim"]["source_revision"]


def test_store_passes_the_independent_ome_ngff_validator(tmp_path):
    """ome-zarr-models (NGFF 0.5) accepts the field image at the root and the cell-kind label image."""
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    path = tmp_path / "run.ome.zarr"
    write_store(path)
    root = zarr.open_group(str(path), mode="r")
    image = Image.from_zarr(root)
    assert [d.path for d in image.attributes.ome.multiscales[0].datasets] == ["s0"]
    labels = ImageLabel.from_zarr(root["labels/cells"])
    assert labels.attributes.ome.image_label.colors[0].rgba == (214, 96, 77, 255)


def test_molecule_fields_take_under_8_bytes_per_agent_per_snapshot():
    """The issue's disk budget at default settings (PhysiCell writes about 880 bytes per agent per snapshot)."""
    from gpusim import bench

    row = bench.snapshot_cost(5000, every_min=5, snapshots=2, echo=lambda *_: None)
    assert row["snapshots"] == 3 and row["agents"] > 4000
    assert 0 < row["field_bytes_per_agent"] < 8
    assert row["writer_s"] > 0 and row["writer_mb_per_s"] > 0  # the writer thread's share is measured too
    assert "| fields B/agent/snapshot |" in bench.snapshot_markdown(row, 5)
