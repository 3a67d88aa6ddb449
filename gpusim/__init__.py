"""gpusim: cell-by-cell simulation of CAR immune-cell therapy against a 3D tumour.

Python use::

    import gpusim
    cfg, raw = gpusim.load_config("demo", overrides=["run.duration=6 h"])
    sim = gpusim.Simulation(cfg).run()
    print(sim.timeseries.last())
"""

__version__ = "0.1.0"

from gpusim.config import ConfigError, load as load_config  # noqa: E402
from gpusim.engine import Simulation  # noqa: E402
from gpusim.results import open_run  # noqa: E402

__all__ = ["ConfigError", "Simulation", "__version__", "load_config", "open_run"]
