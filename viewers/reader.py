"""The napari reader: a gpusim store as image layers (molecule fields) and a labels layer (cell kinds).

Layers keep the store lazy (napari reads only the slices it shows), carry the
physical scale (minutes between snapshots, micrometres per voxel) so the time
slider runs in simulated time, and start with a contrast taken from the last
snapshot at the coarsest resolution.
"""

from pathlib import Path

import numpy as np

from gpusim.store import LABELS, StoreError, open_store

FIELD_COLOURMAPS = {"antigen_a": "red", "acquired_antigen_a": "cyan", "car": "green", "oxygen": "viridis",
                    "chemokine": "yellow"}
DIFFUSING_LABELS = {"oxygen": "oxygen (mmHg)", "chemokine": "chemokine (nM)"}


def get_reader(path):
    """napari's reader hook: a reader for a gpusim store, None for anything else."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        open_store(path)
    except StoreError:
        return None
    return read_store


def _levels(array_levels):
    return array_levels if len(array_levels) > 1 else array_levels[0]


def _contrast(levels):
    """(0, 99.5th percentile) of the last snapshot at the coarsest level: a sensible start."""
    coarsest = np.asarray(levels[-1][-1])
    positive = coarsest[coarsest > 0]
    high = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    return [0.0, max(high, 1.0)]


def read_store(path):
    """Layer data (data, kwargs, layer type) of every field channel and of the cell-kind labels."""
    from gpusim.results import open_run

    run = open_run(path)
    voxel = float(run.meta["voxel_size_um"])
    minutes = float(run.config.run.snapshot_every)
    scale = (minutes, voxel, voxel, voxel)
    common = {"scale": scale, "axis_labels": ("t (min)", "z (µm)", "y (µm)", "x (µm)"),
              "metadata": {"gpusim_store": str(Path(path))}}
    layers = []
    for name in run.channels:
        levels = run.field_levels(name)
        layers.append((_levels(levels), {
            **common, "name": run.meta["field_channels"][name], "colormap": FIELD_COLOURMAPS.get(name, "gray"),
            "blending": "additive", "contrast_limits": _contrast(levels), "visible": name == "antigen_a"}, "image"))
    coarse = voxel * float(run.meta.get("field_grid_coarsening", 1))
    for name in run.diffusing:  # on the solver's coarser grid; centred on the lattice voxels it covers
        levels = run.field_levels(name)
        layers.append((_levels(levels), {
            **common, "scale": (minutes, coarse, coarse, coarse), "translate": (0.0,) + ((coarse - voxel) / 2,) * 3,
            "name": DIFFUSING_LABELS.get(name, name), "colormap": FIELD_COLOURMAPS.get(name, "gray"),
            "blending": "additive", "contrast_limits": [0.0, max(float(np.asarray(levels[-1][-1]).max()), 1e-6)],
            "visible": False}, "image"))
    colours = {0: (0.0, 0.0, 0.0, 0.0), None: (0.5, 0.5, 0.5, 1.0)}
    for value, _key, _name, rgba in LABELS:
        colours[value] = tuple(c / 255.0 for c in rgba)
    layers.append((
        _levels(run.labels),
        {**common, "name": "cell kinds", "colormap": colours, "opacity": 0.7,
         "features": {"kind": ["empty", *(name for _value, _key, name, _rgba in LABELS)]}},
        "labels",
    ))
    return layers
