"""tests/test_parallel.py's check that GHOST cells add nothing to a step's tallies, on the backend GPUSIM_BACKEND
names (the CPU, or the CUDA simulator with NUMBA_ENABLE_CUDASIM=1).

A busy scenario is checkpointed, then its next steps are run three times from the checkpoint: with no cell
marked GHOST, with half of the cells marked, and with the other half marked.  Marking changes what is
counted and nothing else, so each step's ledger and census with no cell marked must be the sums of the two
halves', and neither half's may equal the whole.  Prints one JSON line.
"""

import json
import sys

import numpy as np


def tallies(sim, steps):
    """Each step's census and ledger (host int64 vectors, joined), as the engine records them."""
    seen = []
    record = sim.timeseries.record

    def keep(clock, dt_min, counts, ledger, dosed, infused):
        seen.append(np.concatenate([np.asarray(counts, dtype=np.int64), np.asarray(ledger, dtype=np.int64)]))
        record(clock, dt_min, counts, ledger, dosed, infused)

    sim.timeseries.record = keep
    for _ in range(steps):
        sim.step()
    return np.array(seen)


def main():
    from gpusim.engine import Simulation
    from gpusim.kernels.cells import GHOST, N_CAUSES, N_KINDS
    from gpusim.kernels.census import CENSUS_SIZE
    from gpusim.kernels.tally import BIRTHS, DEATHS, ENGAGEMENTS

    sys.path.insert(0, sys.argv[1])  # tests/, for helpers
    from helpers import small_config

    steps = 3
    cfg, _ = small_config(run={"duration": "4 h"}, dose=[{"time": "0 min", "count": 150, "placement": "uniform"}])
    sim = Simulation(cfg)
    sim.run(12)
    checkpoint, rows = sim.checkpoint(), {name: np.array(values) for name, values in sim.timeseries.rows.items()}
    ids = checkpoint["columns"]["agent_id"]
    halves = {"none": np.zeros(ids.size, dtype=bool), "even": ids % 2 == 0, "odd": ids % 2 == 1}
    runs = {}
    for name, marked in halves.items():
        again = Simulation.restore(cfg, checkpoint, rows)
        flags = again.backend.to_host(again.state["state"][: again.state.n]).copy()
        flags[marked] |= GHOST
        again.state["state"][: again.state.n] = again.backend.to_device(flags)
        runs[name] = tallies(again, steps)
    whole, even, odd = runs["none"], runs["even"], runs["odd"]
    print(json.dumps({
        "sums_equal": bool(np.array_equal(whole, even + odd)),
        "halves_differ": bool(not np.array_equal(whole, even) and not np.array_equal(whole, odd)),
        "births": int(whole[:, CENSUS_SIZE + BIRTHS : CENSUS_SIZE + BIRTHS + N_KINDS].sum()),
        "engagements": int(whole[:, CENSUS_SIZE + ENGAGEMENTS].sum()),
        "deaths": int(whole[:, CENSUS_SIZE + DEATHS : CENSUS_SIZE + DEATHS + N_CAUSES * N_KINDS].sum()),
        "backend": sim.backend.label,
    }))


if __name__ == "__main__":
    main()
