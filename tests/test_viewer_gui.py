"""The napari window itself, rendered: the 3D canvas shows the tumour in the label colours, the
dashboard follows the time slider, and ``gpusim view --screenshot`` writes the window.

Qt runs in subprocesses (tests/gui_run.py, ``gpusim view``) on a display: the one in DISPLAY, or an
Xvfb server this module starts. Without either the tests skip, unless GPUSIM_REQUIRE_DISPLAY is set
(.ci/run sets it, and installs Xvfb and the X/GL libraries Qt needs), where they fail instead.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.kernels.cells import TUMOUR
from gpusim.kernels.molecules import ANTIGEN_A
from gpusim.store import RunStore

from helpers import run_gpusim, run_script, small_config

pytest.importorskip("napari")


@pytest.fixture(scope="module")
def display():
    """A DISPLAY for Qt: the session's own, or a private Xvfb server for this module."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        message = "no display and no Xvfb (apt install xvfb; .ci/run installs it)"
        if os.environ.get("GPUSIM_REQUIRE_DISPLAY"):
            pytest.fail(message)
        pytest.skip(message)
    read_end, write_end = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write_end), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read_end, 16)
        if not chunk:
            pytest.fail("Xvfb exited before it reported its display")
        number += chunk
    os.close(read_end)
    yield f":{number.decode().strip()}"
    server.terminate()
    server.wait(timeout=30)


def napari_env(display, folder):
    """The display, and napari settings of the test's own (not the user's saved window size and layout)."""
    return {"DISPLAY": display, "NAPARI_CONFIG": str(folder / "napari_settings.yaml")}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two hours of CAR-T cells among a 3,000-cell tumour on 32^3 voxels with oxygen and chemokine, snapshots every
    30 min."""
    path = tmp_path_factory.mktemp("gui") / "run.ome.zarr"
    cfg, raw = small_config(lattice={"shape": [32, 32, 32]}, tumour={"initial_cells": 3000, "apoptosis_rate": "0 /h"},
                            fields={"oxygen": {}, "chemokine": {}})
    sim = Simulation(cfg)
    sim.run(store=RunStore(path, cfg, raw, sim.backend.label))
    return path


@pytest.fixture(scope="module")
def shown(display, store, tmp_path_factory):
    """What the napari window showed (tests/gui_run.py's report) and the folder of its screenshots."""
    out = tmp_path_factory.mktemp("shots")
    result = run_script("gui_run.py", store, out, env=napari_env(display, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), out


def test_3d_canvas_shows_the_tumour_in_the_label_colours(shown):
    report, out = shown
    assert report["ndisplay"] == 3
    assert report["layers"][-1] == "cell kinds" and len(report["layers"]) == 6
    assert "oxygen (mmHg)" in report["layers"] and "chemokine (nM)" in report["layers"]
    height, width = report["all_layers"]["shape"][:2]
    assert height > 300 and width > 300
    # not a blank or black canvas: a good part is lit, with structure
    assert report["all_layers"]["lit_fraction"] > 0.03 and report["all_layers"]["std"] > 10
    colours = report["labels_colours"]
    pixels = height * width
    assert colours["tumour"] > 0.02 * pixels  # the tumour, in its label colour
    assert colours["car_t"] > 0.001 * pixels  # the CAR-T cells around and inside it
    assert colours["car_nk"] < 0.001 * pixels and colours["car_m"] < 0.001 * pixels  # kinds not in this run
    assert (out / "all_layers.png").stat().st_size > 1000


def test_dashboard_follows_the_time_slider(shown, store):
    import gpusim

    report, _ = shown
    run = gpusim.open_run(store)
    counts, _clocks, _edges = run.histograms()
    assert [step["asked"] for step in report["follow"]] == [0, 2, 4]
    for step in report["follow"]:
        index = step["asked"]
        assert step["shown"] == index
        hours = run.snapshot_times_min[index] / 60.0
        assert step["marker_h"] == pytest.approx(hours)
        assert step["caption"].startswith(f"t = {hours:.1f} h (snapshot {index + 1} of 5)")
        assert np.array_equal(step["histograms"]["tumour cell"], counts[index, ANTIGEN_A, TUMOUR])
    assert "CAR-T (acquired)" not in report["follow"][0]["histograms"]  # no CAR-T before the dose
    assert "CAR-T (acquired)" in report["follow"][-1]["histograms"]


def test_gpusim_view_writes_a_screenshot_of_the_window(display, store, tmp_path):
    import imageio.v3 as iio

    png = tmp_path / "window.png"
    result = run_gpusim("view", store, "--3d", "--time", "1", "--screenshot", png, env=napari_env(display, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    image = iio.imread(png)
    assert image.shape[0] > 500 and image.shape[1] > 1000  # the whole window, dashboard included
    assert image[..., :3].std() > 10


def test_gpusim_view_without_a_display_says_so(store):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "gpusim", "view", str(store)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "no display" in result.stderr and "xvfb-run" in result.stderr
