"""The napari reader, headless: a store opens as field image layers and a cell-kind labels layer.

napari's ViewerModel needs no window or Qt; the screenshot tests of the
rendered 3D canvas need a display and come with the dock widget.
"""

from pathlib import Path

import numpy as np
import pytest
import zarr

from gpusim.engine import Simulation
from gpusim.store import KIND_COLOURS, RunStore

from helpers import ROOT, small_config

napari = pytest.importorskip("napari")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewer") / "run.ome.zarr"
    cfg, raw = small_config(lattice={"shape": [32, 32, 32]}, tumour={"initial_cells": 3000})
    sim = Simulation(cfg)
    sim.run(store=RunStore(path, cfg, raw, sim.backend.label))
    return path


def test_manifest_is_valid_and_discovered():
    import npe2

    manifest = npe2.PluginManifest.from_file(ROOT / "viewers" / "napari.yaml")
    assert manifest.name == "gpusim" and manifest.contributions.readers
    manager = npe2.PluginManager.instance()
    manager.discover()
    assert manager.get_manifest("gpusim").contributions.readers[0].command == "gpusim.get_reader"


def test_reader_takes_gpusim_stores_only(store, tmp_path):
    from gpusim.viewers.reader import get_reader

    assert get_reader(str(store)) is not None
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["x"] = 1
    assert get_reader(str(foreign)) is None
    assert get_reader(str(tmp_path / "missing.ome.zarr")) is None
    assert get_reader([str(store), str(store)]) is None


def test_viewer_opens_a_store_in_simulated_time_and_micrometres(store):
    from napari.components import ViewerModel
    from napari.plugins import _initialize_plugins

    import gpusim

    _initialize_plugins()
    viewer = ViewerModel()
    viewer.open(str(store), plugin="gpusim")
    names = [layer.name for layer in viewer.layers]
    assert names[-1] == "cell kinds" and len(names) == 4
    run = gpusim.open_run(store)
    for layer in viewer.layers:
        assert tuple(layer.scale) == (30.0, 10.0, 10.0, 10.0)
        assert layer.multiscale and len(layer.data) == 2  # s0 and s1 of a 32^3 lattice
    assert viewer.dims.range[0].stop == 120.0  # the time slider runs to the end of the run, in minutes
    tumour_layer = viewer.layers[names[0]]
    assert np.array_equal(np.asarray(tumour_layer.data[0][-1]), run.field("antigen_a")[-1])
    assert tumour_layer.contrast_limits[1] > 1000
    labels = viewer.layers["cell kinds"]
    assert np.array_equal(np.asarray(labels.data[0][-1]), run.labels[0][-1])
    for value, kind in enumerate(("tumour", "car_t"), start=1):
        assert np.allclose(labels.get_color(value)[:3], np.asarray(KIND_COLOURS[kind][:3]) / 255.0)
    assert Path(tumour_layer.metadata["gpusim_store"]) == Path(store)


def test_npe2_validates_the_manifest_and_imports_every_command():
    import subprocess
    import sys

    npe2_cli = Path(sys.executable).parent / "npe2"
    result = subprocess.run([str(npe2_cli), "validate", "--imports", "gpusim"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr
    import npe2

    contributions = npe2.PluginManifest.from_file(ROOT / "viewers" / "napari.yaml").contributions
    assert [w.command for w in contributions.widgets] == ["gpusim.make_dashboard"]
    assert [s.command for s in contributions.sample_data] == ["gpusim.sample_run"]


def test_napari_ome_zarr_opens_the_store(store):
    """The independent reader: channels of the field image and the cell-kind labels, in physical units."""
    pytest.importorskip("napari_ome_zarr")
    from napari.components import ViewerModel
    from napari.plugins import _initialize_plugins

    import gpusim

    _initialize_plugins()
    viewer = ViewerModel()
    viewer.open(str(store), plugin="napari-ome-zarr")
    run = gpusim.open_run(store)
    images = [layer for layer in viewer.layers if layer.__class__.__name__ == "Image"]
    labels = [layer for layer in viewer.layers if layer.__class__.__name__ == "Labels"]
    assert [layer.name.split(": ")[-1] for layer in images] == run.channels
    assert len(labels) == 1
    for layer in images + labels:
        assert tuple(layer.scale[-3:]) == (10.0, 10.0, 10.0)  # micrometres per voxel
        assert layer.scale[0] == 30.0  # minutes per snapshot
    antigen = images[run.channels.index("antigen_a")]
    assert np.array_equal(np.asarray(antigen.data[0][-1]), run.field("antigen_a")[-1])
    assert np.array_equal(np.asarray(labels[0].data[0][-1]), run.labels[0][-1])


def test_sample_data_is_simulated_once_then_read_from_the_cache(tmp_path):
    from gpusim.viewers.reader import read_store
    from gpusim.viewers.sample import sample_store

    first = sample_store(preset="tiny", folder=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("tiny-") and first.name.endswith(".ome.zarr")
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial store left beside it
    stamp = (first / "zarr.json").stat().st_mtime_ns
    assert sample_store(preset="tiny", folder=tmp_path) == first
    assert (first / "zarr.json").stat().st_mtime_ns == stamp  # not simulated again
    layers = read_store(first)
    assert [kind for _data, _kwargs, kind in layers] == ["image", "image", "image", "labels"]
