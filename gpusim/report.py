"""Figures of a run: the populations over time, drawn from a store's time series."""

from pathlib import Path

import numpy as np

from gpusim.kernels.cells import KIND_LABELS, KIND_NAMES
from gpusim.store import KIND_COLOURS, open_store, read_timeseries


def default_output(store_path):
    """``demo.ome.zarr`` -> ``demo.png`` beside it."""
    path = Path(store_path)
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.png")


def _colour(name):
    return np.asarray(KIND_COLOURS[name][:3]) / 255.0


def _slice_panels(fig, grid, root, meta, panels=4):
    """Mid-plane sections of the cell-kind map at evenly spaced snapshots."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    written = meta["snapshots_written"]
    if written == 0:
        return
    labels = root["labels/cells/s0"]
    picks = sorted(set(np.linspace(0, written - 1, panels).round().astype(int).tolist()))
    colours = [(1, 1, 1)] + [_colour(name) for name in KIND_NAMES]
    cmap = ListedColormap(colours)
    voxel_mm = meta["voxel_size_um"] / 1000.0
    mid = labels.shape[1] // 2
    for column, index in enumerate(picks):
        ax = fig.add_subplot(grid[0, column])
        section = labels[index, mid]
        ny, nx = section.shape
        ax.imshow(section, cmap=cmap, vmin=0, vmax=len(KIND_NAMES), interpolation="nearest",
                  extent=(0, nx * voxel_mm, ny * voxel_mm, 0))
        minutes = meta["snapshot_steps"][index] * meta["dt_min"]
        ax.set_title(f"t = {minutes / 60:.0f} h", fontsize=9)
        ax.tick_params(labelsize=7)
        if column == 0:
            ax.set_ylabel("mm (mid-plane z section)", fontsize=8)
    present = [k for k in range(len(KIND_NAMES)) if np.any(labels[picks[-1], mid] == k + 1) or k == 0]
    fig.legend(handles=[Patch(color=colours[k + 1], label=KIND_LABELS[k]) for k in present],
               loc="upper right", fontsize=8, frameon=False, ncol=len(present))


def write_report(store_path, output=None):
    """Write the figure of a store as PNG (sections of the cell map, populations, events); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root, meta = open_store(store_path)
    series = read_timeseries(store_path)
    hours = series["time_min"] / 60.0
    output = Path(output) if output else default_output(store_path)

    fig = plt.figure(figsize=(9, 10.5))
    grid = fig.add_gridspec(3, 4, height_ratios=[2.2, 3, 2])
    _slice_panels(fig, grid, root, meta)
    ax_cells = fig.add_subplot(grid[1, :])
    ax_events = fig.add_subplot(grid[2, :], sharex=ax_cells)
    for k, name in enumerate(KIND_NAMES):
        counts = series[f"cells_{name}"]
        if counts.max() > 0:
            ax_cells.plot(hours, counts, color=_colour(name), lw=2, label=KIND_LABELS[k])
    if series["tumour_quiescent"].max() > 0:
        ax_cells.plot(hours, series["tumour_quiescent"], color=_colour("tumour"), lw=1, ls="--",
                      label="tumour, quiescent (no room)")
    for dose_hour in hours[np.flatnonzero(sum(series[f"dosed_{n}"] for n in KIND_NAMES))]:
        ax_cells.axvline(dose_hour, color="0.4", lw=0.8, ls=":")
    ax_cells.set_ylabel("cells")
    ax_cells.set_yscale("symlog", linthresh=10)
    ax_cells.set_ylim(bottom=0)
    ax_cells.legend(loc="best", frameon=False)
    ax_cells.grid(alpha=0.3)
    desc = meta.get("description") or ""
    fig.suptitle(f"{Path(store_path).name}\n{desc}", fontsize=10, x=0.02, ha="left")

    # events per simulated hour
    per_hour = max(1, int(round(60.0 / meta["dt_min"])))
    n_bins = len(hours) // per_hour
    if n_bins:
        centres = (np.arange(n_bins) + 0.5) * per_hour * meta["dt_min"] / 60.0

        def hourly(values):
            return values[1 : 1 + n_bins * per_hour].reshape(n_bins, per_hour).sum(axis=1)

        ax_events.plot(centres, hourly(series["births_tumour"]), color=_colour("tumour"), label="tumour divisions")
        ax_events.plot(centres, hourly(series["deaths_tumour"]), color=_colour("tumour"), ls="--",
                       label="tumour apoptoses")
        for k, name in enumerate(KIND_NAMES[1:], start=1):
            deaths = hourly(series[f"deaths_{name}"])
            if deaths.max() > 0:
                ax_events.plot(centres, deaths, color=_colour(name), ls="--", label=f"{KIND_LABELS[k]} deaths")
    ax_events.set_xlabel("simulated time (h)")
    ax_events.set_ylabel("events per hour")
    ax_events.legend(loc="best", frameon=False, fontsize=8)
    ax_events.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
