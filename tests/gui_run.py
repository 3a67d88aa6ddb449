"""Open a store in a real napari window (needs a display, e.g. Xvfb) and report what it showed, as JSON.

Run in a subprocess by tests/test_viewer_gui.py so that Qt never lives inside
the pytest process:

    python tests/gui_run.py STORE OUT_DIR

It switches to 3D, takes canvas screenshots (all layers, and the cell-kind
labels alone), moves the time slider to several snapshots and records what
the dashboard shows at each.
"""

import json
import sys
from pathlib import Path

import numpy as np


def chroma_counts(image, colours):
    """Pixels whose chromaticity (r, g, b)/(r + g + b) lies near each colour's: shading keeps chromaticity."""
    rgb = image[..., :3].reshape(-1, 3).astype(float)
    total = rgb.sum(axis=1)
    lit = total > 60
    chroma = rgb[lit] / total[lit, None]
    counts = {}
    for name, colour in colours.items():
        c = np.asarray(colour[:3], float)
        counts[name] = int((np.abs(chroma - c / c.sum()).max(axis=1) < 0.05).sum())
    return counts


def main(store, out):
    import imageio.v3 as iio

    from gpusim.results import open_run
    from gpusim.store import KIND_COLOURS
    from gpusim.viewers.window import open_viewer, settle

    out = Path(out)
    viewer = open_viewer(store, three_d=True, size=(1600, 1000))
    settle(1.0)
    dashboard = viewer.window._dock_widgets["gpusim run"].widget()
    viewer.dims.set_point(0, float(open_run(store).snapshot_times_min[-1]))
    settle()
    report = {"ndisplay": viewer.dims.ndisplay, "layers": [layer.name for layer in viewer.layers]}
    shot = viewer.screenshot(canvas_only=True, flash=False)
    iio.imwrite(out / "all_layers.png", shot)
    report["all_layers"] = {"shape": list(shot.shape), "lit_fraction": float((shot[..., :3].sum(axis=2) > 60).mean()),
                            "std": float(shot[..., :3].std())}
    for layer in viewer.layers:
        layer.visible = layer.name == "cell kinds"
    settle()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    iio.imwrite(out / "labels.png", shot)
    report["labels_colours"] = chroma_counts(shot, KIND_COLOURS)
    report["labels_lit_fraction"] = float((shot[..., :3].sum(axis=2) > 60).mean())

    run = open_run(store)
    follow = []
    for index in sorted({0, run.snapshots // 2, run.snapshots - 1}):
        viewer.dims.set_point(0, float(run.snapshot_times_min[index]))
        settle()
        follow.append({
            "asked": index,
            "shown": dashboard.snapshot,
            "marker_h": float(dashboard.marker.get_xdata()[0]),
            "histograms": {label: counts.tolist() for label, counts in dashboard.histograms_shown.items()},
            "caption": dashboard.caption.text(),
        })
    report["follow"] = follow
    dashboard.grab().save(str(out / "dashboard.png"))
    viewer.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
