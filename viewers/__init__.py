"""The napari plugin for gpusim stores (npe2 manifest ``napari.yaml``; reader in :mod:`gpusim.viewers.reader`)."""
