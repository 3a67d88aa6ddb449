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

from conftest import ROOT, small_config

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
