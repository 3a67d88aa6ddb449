"""The napari plugin for gpusim stores (reader, widgets, sample data).

Until the plugin lands, a store's cell-kind map opens in napari through any
OME-Zarr reader (``labels/cells`` is an OME-NGFF 0.5 label image).
"""
