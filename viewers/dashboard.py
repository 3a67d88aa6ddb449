"""The gpusim dock widget: population curves and antigen histograms at the time the slider shows.

The widget finds the gpusim store behind the viewer's layers (the reader
tags each layer with it), draws the cell counts over the whole run once, and
on every move of the time slider moves a marker to the current time and
redraws the flow-cytometry histograms of that snapshot: antigen A on tumour
cells and acquired antigen A on each kind of effector present.
"""

import numpy as np
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from gpusim.kernels.cells import KIND_LABELS, KIND_NAMES, TUMOUR
from gpusim.kernels.molecules import ANTIGEN_A

STORE_KEY = "gpusim_store"  # layer metadata key the reader sets


def store_of(layers):
    """The store path behind the first gpusim layer among ``layers``, or None."""
    for layer in layers:
        path = layer.metadata.get(STORE_KEY)
        if path:
            return path
    return None


def nearest_snapshot(snapshot_minutes, minutes):
    """Index of the snapshot closest in time to ``minutes`` (simulated)."""
    return int(np.argmin(np.abs(np.asarray(snapshot_minutes) - minutes)))


class RunDashboard(QWidget):
    """Populations over time with a marker at the slider's time, and that snapshot's antigen histograms."""

    def __init__(self, napari_viewer):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__()
        self.viewer = napari_viewer
        self.run = None
        self.store_path = None
        self.snapshot = None
        self.marker = None
        self.histograms_shown = {}  # label -> counts per bin drawn for the current snapshot
        self.figure = Figure(figsize=(4.2, 6.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ax_cells, self.ax_pools = self.figure.subplots(2, 1)
        self.caption = QLabel("open a gpusim store (File > Open Folder, or gpusim view STORE)")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(self.canvas)
        self.setMinimumWidth(360)
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)
        napari_viewer.dims.events.current_step.connect(self._time_changed)
        self._layers_changed()

    # --- what the viewer shows -------------------------------------------------------------

    def _layers_changed(self, event=None):
        path = store_of(self.viewer.layers)
        if path != self.store_path:
            self.load(path)

    def _time_changed(self, event=None):
        if self.run is None or self.run.snapshots == 0:
            return
        point = self.viewer.dims.point
        if len(point) < 4:
            return
        index = nearest_snapshot(self.run.snapshot_times_min, point[-4])  # t is the fourth axis from the right
        if index != self.snapshot:
            self.show_snapshot(index)

    # --- drawing ----------------------------------------------------------------------------

    def load(self, path):
        """Draw the run stored at ``path`` (None clears the widget)."""
        from gpusim.report import plot_populations
        from gpusim.results import open_run
        from gpusim.store import read_timeseries

        self.store_path, self.snapshot, self.histograms_shown = path, None, {}
        self.ax_cells.clear()
        self.ax_pools.clear()
        if path is None:
            self.run = None
            self.canvas.draw_idle()
            return
        self.run = open_run(path)
        self.series = read_timeseries(path)
        self.pool_counts, _clocks, self.bin_edges = self.run.histograms()
        self.kinds = plot_populations(self.ax_cells, self.series, fontsize=8)
        self.ax_cells.tick_params(labelsize=7)
        self.ax_cells.set_title("populations (dotted: infusions; line: slider time)", fontsize=8)
        self.marker = self.ax_cells.axvline(0.0, color="black", lw=1.2)
        self.show_snapshot(0)
        self._time_changed()

    def show_snapshot(self, index):
        """Move the time marker to snapshot ``index`` and draw its antigen histograms."""
        from gpusim.report import draw_pool_histogram, kind_colour, style_pool_axes

        if self.run is None or self.run.snapshots == 0:
            return
        self.snapshot = index
        minutes = float(self.run.snapshot_times_min[index])
        self.marker.set_xdata([minutes / 60.0, minutes / 60.0])
        self.ax_pools.clear()
        self.histograms_shown = {}
        for kind in self.kinds:
            counts = self.pool_counts[index, ANTIGEN_A, kind]
            label = KIND_LABELS[kind] if kind == TUMOUR else f"{KIND_LABELS[kind]} (acquired)"
            if draw_pool_histogram(self.ax_pools, counts, self.bin_edges, kind_colour(KIND_NAMES[kind]), label):
                self.histograms_shown[label] = np.asarray(counts)
        style_pool_axes(self.ax_pools, f"antigen A per cell at {minutes / 60:.1f} h")
        self.ax_pools.tick_params(labelsize=7)
        if self.histograms_shown:
            self.ax_pools.legend(fontsize=7, frameon=False)
        self.caption.setText(self.caption_text(index))
        self.canvas.draw_idle()

    def caption_text(self, index):
        clock = int(self.run.meta["snapshot_steps"][index])
        row = min(int(np.searchsorted(self.series["step"], clock)), len(self.series["step"]) - 1)
        cells = " · ".join(f"{KIND_LABELS[k]} {int(self.series[f'cells_{KIND_NAMES[k]}'][row]):,}" for k in self.kinds)
        hours = float(self.run.snapshot_times_min[index]) / 60.0
        return f"t = {hours:.1f} h (snapshot {index + 1} of {self.run.snapshots}) · {cells}"


def make_dashboard(napari_viewer):
    """npe2 widget command: the dashboard docked in ``napari_viewer``."""
    return RunDashboard(napari_viewer)
