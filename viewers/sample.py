"""napari sample data: a small gpusim run (the ``sample`` preset), made once and kept in the cache.

The store lives under the gpusim cache folder (``GPUSIM_CACHE_DIR``, default
``~/.cache/gpusim``) in ``samples/``, named by the digest of the kernels that
made it, so a changed model makes a fresh sample instead of showing a stale one.
It is written under a temporary name and renamed when complete, so two
viewers opening the sample at once never see half a store.
"""

import os
import shutil
from pathlib import Path

SAMPLE_PRESET = "sample"


def sample_store(preset=SAMPLE_PRESET, folder=None):
    """Path of the complete sample store of ``preset``, running it first if it is not in the cache."""
    from gpusim import config
    from gpusim.engine import Simulation
    from gpusim.kernels.codegen import cache_dir, kernels_digest
    from gpusim.store import RunStore, StoreError, open_store

    folder = Path(folder) if folder else cache_dir().parent / "samples"
    path = folder / f"{preset}-{kernels_digest()[:12]}.ome.zarr"
    try:
        if open_store(path).meta["status"] == "complete":
            return path
    except StoreError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    cfg, raw = config.load(preset)
    sim = Simulation(cfg)
    sim.run(store=RunStore(partial, cfg, raw, sim.backend.label))
    try:
        os.rename(partial, path)
    except OSError:  # another process finished the same sample first
        shutil.rmtree(partial, ignore_errors=True)
    return path


def sample_run():
    """npe2 sample-data command: the layers of the sample store (runs it the first time, about 20 s)."""
    from gpusim.viewers.reader import read_store

    return read_store(sample_store())
