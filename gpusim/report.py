"""Figures of a run: the populations over time, drawn from a store's time series."""

from pathlib import Path

import numpy as np

from gpusim.kernels.cells import KIND_LABELS, KIND_NAMES
from gpusim.store import LABEL_COLOURS, LABELS, open_store, read_timeseries


def default_output(store_path):
    """``demo.ome.zarr`` -> ``demo.png`` beside it."""
    path = Path(store_path)
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.png")


def kind_colour(name):
    """RGB (0..1) of a cell kind, the same as the labels layer's colour."""
    return np.asarray(LABEL_COLOURS[name][:3]) / 255.0


SECTION_EDGE = 2048  # pixels along a section's edge at most: a finer lattice is drawn from a coarser level


def _mid_section(store, levels, index, channel=None, prefix=""):
    """The mid-plane z section of snapshot ``index`` (of ``channel``) from the finest level of a multiscale image
    whose section fits SECTION_EDGE, and that level's number (its voxels are 2**level lattice voxels)."""
    from gpusim.store_validation import read

    level = next((k for k, a in enumerate(levels) if max(a.shape[-2:]) <= SECTION_EDGE), len(levels) - 1)
    array = levels[level]
    lead = (index,) if channel is None else (index, channel)
    section = read(array, store.path, f"{prefix}s{level}", lead + (array.shape[-3] // 2,))
    return section, level


def _slice_panels(fig, grid, store, panels=4):
    """Mid-plane sections of the cell-kind map at evenly spaced snapshots."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from gpusim.store import level_arrays

    meta = store.meta
    written = meta["snapshots_written"]
    if written == 0:
        return
    levels = level_arrays(store.root["labels/cells"])
    picks = sorted(set(np.linspace(0, written - 1, panels).round().astype(int).tolist()))
    colours = [(1, 1, 1)] + [kind_colour(key) for _value, key, _name, _rgba in LABELS]
    cmap = ListedColormap(colours)
    for column, index in enumerate(picks):
        ax = fig.add_subplot(grid[0, column])
        section, level = _mid_section(store, levels, index, prefix="labels/cells/")
        voxel_mm = meta["voxel_size_um"] * 2**level / 1000.0
        ny, nx = section.shape
        ax.imshow(section, cmap=cmap, vmin=0, vmax=len(LABELS), interpolation="nearest",
                  extent=(0, nx * voxel_mm, ny * voxel_mm, 0))
        minutes = meta["snapshot_steps"][index] * meta["dt_min"]
        ax.set_title(f"t = {minutes / 60:.0f} h", fontsize=9)
        ax.tick_params(labelsize=7)
        if column == 0:
            ax.set_ylabel("mm (mid-plane z section)", fontsize=8)
    shown = section  # the last snapshot's
    present = [(value, name) for value, _key, name, _rgba in LABELS if value == 1 or np.any(shown == value)]
    fig.legend(handles=[Patch(color=colours[value], label=name) for value, name in present],
               loc="upper right", fontsize=8, frameon=False, ncol=len(present))


def draw_pool_histogram(ax, counts, edges, colour, label=None):
    """One flow-cytometry histogram: the fraction of cells per log-scale bin of one pool; False if no cells."""
    counts = np.asarray(counts)
    if counts.sum() == 0:
        return False
    lower = np.maximum(edges[:-1], 0.5)  # zero goes to the left edge of a log axis
    ax.stairs(counts / counts.sum(), np.append(lower, edges[-2] * 2), color=colour, lw=1.6, label=label)
    return True


def style_pool_axes(ax, title):
    ax.set_xscale("log")
    ax.set_xlim(0.5, 2e6)  # the bin of cells with none sits at 0.5
    ax.set_xlabel("molecules per cell")
    ax.set_ylabel("fraction of cells")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def _antigen_histograms(ax, store, species, kind, title, times=5):
    """Flow-cytometry style: cells per log-scale bin of one pool at several snapshots."""
    from matplotlib import colormaps

    from gpusim.store import read_histograms

    opened = open_store(store)
    hist, clocks, edges = read_histograms(opened)
    if len(clocks) == 0:
        return
    picks = sorted(set(np.linspace(0, len(clocks) - 1, times).round().astype(int).tolist()))
    colours = colormaps["viridis"](np.linspace(0.0, 0.9, len(picks)))
    meta = opened.meta
    drawn = False
    for colour, index in zip(colours, picks):
        hours = clocks[index] * meta["dt_min"] / 60.0
        drawn |= draw_pool_histogram(ax, hist[index, species, kind], edges, colour, f"{hours:.0f} h")
    style_pool_axes(ax, title)
    if drawn:
        ax.legend(fontsize=7, frameon=False)


def plot_populations(ax, series, fontsize=None):
    """Cells of every kind present over simulated time (h), infusions dotted; returns the kinds drawn."""
    hours = series["time_min"] / 60.0
    drawn = []
    for k, name in enumerate(KIND_NAMES):
        counts = series[f"cells_{name}"]
        if counts.max() > 0:
            ax.plot(hours, counts, color=kind_colour(name), lw=2, label=KIND_LABELS[k])
            drawn.append(k)
    debris = series.get("tumour_necrotic")
    if debris is not None and np.max(debris) > 0:
        ax.plot(hours, debris, color=kind_colour("debris"), lw=1.5, ls="--", label="necrotic debris")
    for dose_hour in hours[np.flatnonzero(sum(series[f"dosed_{n}"] for n in KIND_NAMES))]:
        ax.axvline(dose_hour, color="0.4", lw=0.8, ls=":")
    ax.set_ylabel("cells", fontsize=fontsize)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("simulated time (h)", fontsize=fontsize)
    ax.legend(loc="best", frameon=False, fontsize=fontsize)
    ax.grid(alpha=0.3)
    return drawn


def _diffusing_panels(fig, cell, store, series, names):
    """Mid-plane sections of each diffusing field at the last snapshot, and hypoxic and necrotic tumour cells."""
    from gpusim.store import level_arrays

    meta = store.meta
    written = meta["snapshots_written"]
    sub = cell.subgridspec(1, len(names) + 2, width_ratios=[1] * len(names) + [0.15, 2])
    units = meta.get("diffusing_fields", {})
    if written:
        levels = level_arrays(store.root["fields"])
        for c, name in enumerate(names):
            ax = fig.add_subplot(sub[0, c])
            section, level = _mid_section(store, levels, written - 1, channel=c, prefix="fields/")
            coarse_mm = meta["voxel_size_um"] * meta.get("field_grid_coarsening", 1) * 2**level / 1000.0
            ny, nx = section.shape
            shown = ax.imshow(section, cmap="viridis" if name == "oxygen" else "magma", interpolation="nearest",
                              extent=(0, nx * coarse_mm, ny * coarse_mm, 0))
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
            hours = meta["snapshot_steps"][written - 1] * meta["dt_min"] / 60.0
            ax.set_title(f"{name} ({units.get(name, '')}) at {hours:.0f} h", fontsize=9)
            ax.tick_params(labelsize=7)
    ax = fig.add_subplot(sub[0, -1])
    hours = series["time_min"] / 60.0
    ax.plot(hours, series["tumour_hypoxic"], color="#6a51a3", lw=1.8, label="hypoxic (not cycling)")
    ax.plot(hours, series["tumour_necrotic"], color=kind_colour("debris"), lw=1.8, ls="--", label="necrotic debris")
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("tumour cells")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title("oxygen starvation", fontsize=9)


ARM_STYLES = {"untreated": ("0.45", "untreated arm"), "no_trogocytosis": ("#b2182b", "trogocytosis-off arm")}


def _arm_series(store_path, names):
    """The time series of each complete control arm of a run, by name (arms not run yet are left out)."""
    from gpusim.store import StoreError, arm_path

    arms = {}
    for name in names:
        try:
            opened = open_store(arm_path(store_path, name))
        except StoreError:
            continue
        if opened.meta["status"] == "complete":
            arms[name] = read_timeseries(opened)
    return arms


def _arm_panels(fig, cell, series, arms):
    """The run against its control arms: tumour cells over time, and antigen per tumour cell against the untreated
    arm (what the papers plot: the treated well over the untreated one)."""
    sub = cell.subgridspec(1, 2, wspace=0.3)
    hours = series["time_min"] / 60.0
    ax = fig.add_subplot(sub[0, 0])
    ax.plot(hours, series["cells_tumour"], color=kind_colour("tumour"), lw=2, label="this run")
    for name, arm in arms.items():
        colour, label = ARM_STYLES[name]
        ax.plot(arm["time_min"] / 60.0, arm["cells_tumour"], color=colour, lw=1.5, ls="--", label=label)
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("tumour cells")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title("against the control arms (same seed)", fontsize=9)
    ax = fig.add_subplot(sub[0, 1])
    if "untreated" in arms:
        reference = arms["untreated"]["mean_antigen_a_tumour"]
        with np.errstate(invalid="ignore", divide="ignore"):
            ax.plot(hours, series["mean_antigen_a_tumour"] / reference, color=kind_colour("tumour"), lw=2,
                    label="this run")
            if "no_trogocytosis" in arms:
                ax.plot(hours, arms["no_trogocytosis"]["mean_antigen_a_tumour"] / reference,
                        color=ARM_STYLES["no_trogocytosis"][0], lw=1.5, ls="--", label="trogocytosis off")
        ax.axhline(1.0, color="0.45", lw=0.8, ls=":")
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("antigen A per tumour cell / untreated")
    ax.grid(alpha=0.3)
    ax.set_title("tumour antigen against the untreated arm", fontsize=9)


def write_report(store_path, output=None):
    """Write the figure of a store as PNG; returns its path.

    Panels: mid-plane sections of the cell map; populations over time;
    tumour antigen histograms at several times and effectors' acquired
    antigen (flow cytometry on log axes); the trogocytosis-positive fraction
    of effectors with the tumour's mean antigen; kills by cause; and with
    diffusing fields, their mid-plane sections and the hypoxic and necrotic
    tumour cells over time.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gpusim.kernels.cells import CAUSE_NAMES, EFFECTOR_KINDS, TUMOUR
    from gpusim.kernels.molecules import ANTIGEN_A

    opened = open_store(store_path)
    meta = opened.meta
    series = read_timeseries(opened)
    hours = series["time_min"] / 60.0
    output = Path(output) if output else default_output(store_path)
    effectors = [k for k in EFFECTOR_KINDS if series[f"cells_{KIND_NAMES[k]}"].max() > 0]

    diffusing = list(meta.get("diffusing_fields", {}))
    arms = _arm_series(store_path, opened.cfg.arms)
    extra = [name for name, wanted in (("fields", diffusing), ("arms", arms)) if wanted]
    fig = plt.figure(figsize=(11, 14 + 3 * len(extra)))
    grid = fig.add_gridspec(4 + len(extra), 4, height_ratios=[1.7, 2.4, 2.4, 2.4] + [2.4] * len(extra))
    if arms:
        _arm_panels(fig, grid[4 + extra.index("arms"), :], series, arms)
    _slice_panels(fig, grid, opened)
    if diffusing:
        _diffusing_panels(fig, grid[4 + extra.index("fields"), :], opened, series, diffusing)

    ax_cells = fig.add_subplot(grid[1, :])
    plot_populations(ax_cells, series)
    ax_cells.set_title("populations (dotted: infusions)", fontsize=9)

    _antigen_histograms(fig.add_subplot(grid[2, :2]), opened, ANTIGEN_A, TUMOUR, "tumour cells: antigen A")
    if effectors:
        k = effectors[0]
        _antigen_histograms(fig.add_subplot(grid[2, 2:]), opened, ANTIGEN_A, k,
                            f"{KIND_LABELS[k]}: acquired antigen A")

    ax_trog = fig.add_subplot(grid[3, :2])
    for k in effectors:
        name = KIND_NAMES[k]
        alive = series[f"cells_{name}"].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.where(alive > 0, series[f"trog_positive_{name}"] / alive, np.nan)
            exhausted = np.where(alive > 0, series[f"exhausted_{name}"] / alive, np.nan)
        ax_trog.plot(hours, fraction, color=kind_colour(name), lw=2, label=f"{KIND_LABELS[k]} trog+")
        ax_trog.plot(hours, exhausted, color=kind_colour(name), lw=1, ls="--", label=f"{KIND_LABELS[k]} exhausted")
    ax_trog.set_ylim(0, 1.05)
    ax_trog.set_ylabel("fraction of effectors")
    ax_trog.set_xlabel("simulated time (h)")
    ax_antigen = ax_trog.twinx()
    ax_antigen.plot(hours, series["mean_antigen_a_tumour"], color=kind_colour("tumour"), lw=1.5, label="tumour mean antigen A")
    ax_antigen.set_ylabel("mean antigen A per tumour cell", color=kind_colour("tumour"))
    ax_antigen.set_ylim(bottom=0)
    lines = ax_trog.get_legend_handles_labels()
    more = ax_antigen.get_legend_handles_labels()
    ax_trog.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, frameon=False, loc="center right")
    ax_trog.grid(alpha=0.3)
    ax_trog.set_title("trogocytosis-positive effectors and tumour antigen", fontsize=9)

    ax_kills = fig.add_subplot(grid[3, 2:])
    for cause in CAUSE_NAMES:
        cumulative = np.cumsum(series[f"deaths_{cause}"])
        if cumulative[-1] > 0:
            ax_kills.plot(hours, cumulative, lw=1.8, label=cause)
    ax_kills.set_ylabel("deaths, cumulative")
    ax_kills.set_xlabel("simulated time (h)")
    ax_kills.legend(fontsize=7, frameon=False)
    ax_kills.grid(alpha=0.3)
    ax_kills.set_title("deaths by cause", fontsize=9)

    desc = meta.get("description") or ""
    fig.suptitle(f"{Path(store_path).name}\n{desc}", fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
