"""A napari window on a gpusim store: its layers, the dashboard docked, optionally 3D at a chosen time.

``gpusim view STORE`` uses this; so can a notebook::

    from gpusim.viewers.window import open_viewer
    viewer = open_viewer("demo.ome.zarr", three_d=True, hours=24)
"""


def open_viewer(path, three_d=False, hours=None, show=True):
    """A napari Viewer showing the store at ``path`` with the run dashboard docked on the right."""
    import napari

    from gpusim.viewers.dashboard import RunDashboard

    viewer = napari.Viewer(title=f"gpusim: {path}", show=show)
    viewer.open(str(path), plugin="gpusim")
    dashboard = RunDashboard(viewer)
    viewer.window.add_dock_widget(dashboard, name="gpusim run", area="right")
    if three_d:
        viewer.dims.ndisplay = 3
        viewer.camera.angles = (0.0, 30.0, 60.0)  # an oblique view shows the tumour's depth
    if hours is not None:
        viewer.dims.set_point(0, float(hours) * 60.0)  # world coordinates of the time axis are minutes
    return viewer
