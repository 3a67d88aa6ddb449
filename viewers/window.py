"""A napari window on a gpusim store: its layers, the dashboard docked, optionally 3D at a chosen time.

``gpusim view STORE`` uses this; so can a notebook::

    from gpusim.viewers.window import open_viewer
    viewer = open_viewer("demo.ome.zarr", three_d=True, hours=24)
"""


def settle(seconds=0.5):
    """Let Qt lay out and paint the window (before a screenshot): process its events for a while."""
    import time

    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while True:
        QApplication.processEvents()
        if time.perf_counter() > end:
            return
        time.sleep(0.01)


def open_viewer(path, three_d=False, hours=None, show=True, size=None):
    """A napari Viewer showing the store at ``path`` with the run dashboard docked on the right.

    ``size`` (width, height in pixels) fixes the window's size; otherwise napari restores the last one.
    """
    import napari

    from gpusim.viewers.dashboard import RunDashboard

    viewer = napari.Viewer(title=f"gpusim: {path}", show=show)
    viewer.open(str(path), plugin="gpusim")
    if size is not None:
        viewer.window._qt_window.resize(*size)
    dashboard = RunDashboard(viewer)
    viewer.window.add_dock_widget(dashboard, name="gpusim run", area="right")
    if three_d:
        viewer.dims.ndisplay = 3
        viewer.camera.angles = (0.0, 30.0, 60.0)  # an oblique view shows the tumour's depth
    if hours is not None:
        viewer.dims.set_point(0, float(hours) * 60.0)  # world coordinates of the time axis are minutes
    settle()
    return viewer
