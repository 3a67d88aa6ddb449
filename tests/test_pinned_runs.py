"""Runs with valid input are bit for bit what they were: five presets, shrunk to a few hours on a small lattice,
written through the command line, hash to pinned digests.

The digest covers the final checkpoint's every column (the fields' values among them) and every time series.
A change to a digest is a change to what the model computes: it belongs in a commit that says so and why, with
the new digests.
"""

import hashlib

import numpy as np
import pytest
import zarr

from gpusim import cli
from gpusim.store import read_timeseries

SHRINK = ["--set", "lattice.shape=[24, 24, 24]", "--set", "tumour.initial_cells=1500", "--set", "run.duration=8 h",
          "--set", "run.snapshot_every=2 h", "--set", "run.checkpoint_every=2 h", "--set", "dose.0.time=1 h",
          "--set", "dose.0.count=400", "--quiet", "--backend", "cpu"]
PINNED = {
    "hamieh2019_removal": (["--set", "depletion.0.time=4 h"], "b832fcf7782f5b27"),
    "li2022_car_nk_icar": ([], "8dddcbadd82b56b9"),
    "car_macrophage": ([], "deacfe616f88a1c1"),
    "dual_targeting": ([], "5af63c0f54f6ffb5"),
    "sample": ([], "b5ee410d95a4d8f3"),
}


def run_digest(path):
    """sha256 (16 hex digits) of a store's final checkpoint columns and time series."""
    root = zarr.open_group(str(path), mode="r")
    pointer = root.attrs["gpusim"]["checkpoint"]
    group = root[pointer["path"]]
    h = hashlib.sha256(str(pointer["clock"]).encode())
    for name in sorted(group.array_keys()):
        values = np.ascontiguousarray(group[name][...])
        h.update(f"{name}:{values.dtype.str}:{values.shape}".encode())
        h.update(values.tobytes())
    for name, values in sorted(read_timeseries(path).items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("preset", sorted(PINNED))
def test_a_preset_run_hashes_to_its_pinned_digest(preset, tmp_path):
    extra, digest = PINNED[preset]
    path = tmp_path / f"{preset}.ome.zarr"
    assert cli.main(["run", preset, "-o", str(path), *SHRINK, *extra]) == 0
    assert run_digest(path) == digest
