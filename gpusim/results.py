"""Reading a run back in Python: ``gpusim.open_run(path)``.

Arrays stay lazy (zarr arrays read only what is indexed); the time series
comes as a pandas DataFrame indexed by simulated time in hours.

    run = gpusim.open_run("demo.ome.zarr")
    run.timeseries[["cells_tumour", "cells_car_t"]].plot()
    tumour_antigen = run.field("antigen_a")[-1]      # last snapshot, [z, y, x]
    kinds = run.labels[0][-1]                         # cell-kind map, full resolution
    table = run.agents(-1)                            # every cell at the last snapshot
"""

from pathlib import Path

import numpy as np

from gpusim.store import StoreError, level_arrays, open_store, read_histograms, read_timeseries
from gpusim.store_validation import read


class Run:
    """A run's store, opened for reading."""

    def __init__(self, path):
        self.path = Path(path)
        self.opened = open_store(self.path)
        self.root, self.meta, self.config = self.opened.root, self.opened.meta, self.opened.cfg

    def __repr__(self):
        return (f"Run({str(self.path)!r}: {self.meta['steps_done']} of {self.meta['steps_total']} steps, "
                f"{self.snapshots} snapshots, {self.meta['status']})")

    @property
    def snapshots(self):
        return int(self.meta["snapshots_written"])

    @property
    def snapshot_times_min(self):
        """Simulated time (minutes) of every snapshot written."""
        return np.asarray(self.meta["snapshot_steps"][: self.snapshots], dtype=float) * self.meta["dt_min"]

    @property
    def timeseries(self):
        """Every observable at every step: a pandas DataFrame indexed by simulated time (hours)."""
        import pandas as pd

        series = read_timeseries(self.opened)
        frame = pd.DataFrame(series)
        frame.index = pd.Index(frame["time_min"] / 60.0, name="time_h")
        return frame

    @property
    def labels(self):
        """The cell-kind map, one lazy array ``[t, z, y, x]`` per resolution level (0 empty, 1 + kind)."""
        return level_arrays(self.root["labels/cells"])

    @property
    def channels(self):
        """Names of the field image's channels."""
        return list(self.meta.get("field_channels", {}))

    @property
    def image(self):
        """The molecule-field image, one lazy array ``[t, c, z, y, x]`` per resolution level."""
        return level_arrays(self.root)

    @property
    def diffusing(self):
        """Names of the diffusing fields (oxygen in mmHg, chemokine in nM), on the solver's coarser grid."""
        return list(self.meta.get("diffusing_fields", {}))

    @property
    def diffusing_image(self):
        """The diffusing fields' image, one lazy array ``[t, c, z, y, x]`` (float32) per resolution level."""
        return level_arrays(self.root["fields"]) if self.diffusing else []

    def field(self, name, level=0):
        """One field as a lazy ``[t, z, y, x]`` view (indexing reads only what it needs).

        A molecule field (``antigen_a``, ...) at lattice resolution, or a diffusing field (``oxygen``,
        ``chemokine``) at the solver grid's (``meta["field_grid_coarsening"]`` lattice voxels per edge).
        """
        if name in self.diffusing:
            return _ChannelView(self.diffusing_image[level], self.diffusing.index(name))
        if name not in self.channels:
            raise KeyError(f"{name!r} is not among this run's fields {self.channels + self.diffusing}")
        return _ChannelView(self.image[level], self.channels.index(name))

    def histograms(self):
        """(counts ``[t, species, kind, bin]``, snapshot clocks, bin edges) of the virtual flow cytometer."""
        return read_histograms(self.opened)

    def field_levels(self, name):
        """:meth:`field` at every resolution level, finest first."""
        count = len(self.diffusing_image if name in self.diffusing else self.image)
        return [self.field(name, level) for level in range(count)]

    def agents(self, snapshot):
        """Every cell's columns at one snapshot (index into the snapshots, negative counts back), as a DataFrame."""
        import pandas as pd

        from gpusim.kernels.cells import KIND_NAMES
        from gpusim.kernels.molecules import SPECIES_NAMES

        group = self.root["agents"]
        if "offsets" not in group:
            raise StoreError(f"{self.path}: this run wrote no agent tables (output.agent_tables = false)")
        k = range(self.snapshots)[snapshot]
        start, stop = (int(v) for v in read(group["offsets"], self.path, "agents/offsets", slice(k, k + 2)))
        from gpusim.state import COLUMNS

        data = {}
        for name in COLUMNS:
            values = read(group[name], self.path, f"agents/{name}", (..., slice(start, stop)))
            if values.ndim == 2:
                rows = SPECIES_NAMES if name == "pools" else ("antigen_a", "antigen_b")
                for r, row in enumerate(rows):
                    data[f"{row}" if name == "pools" else f"{row}_set_point"] = values[r]
            else:
                data[name] = values
        frame = pd.DataFrame(data)
        frame["kind"] = pd.Categorical.from_codes(frame["kind"].astype(int), categories=list(KIND_NAMES))
        return frame


class _ChannelView:
    """``image[:, channel]`` without reading it: indexing reads only the selected part."""

    def __init__(self, array, channel):
        self.array, self.channel = array, channel
        self.shape = (array.shape[0],) + array.shape[2:]
        self.dtype = array.dtype
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        values = self.array[:, self.channel]
        return values if dtype is None else values.astype(dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self.array[(key[0], self.channel) + key[1:]] if key else self.array[:, self.channel]


def open_run(path):
    """Open a gpusim store for reading (:class:`Run`); StoreError if it is not one."""
    return Run(path)
