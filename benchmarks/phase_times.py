"""Set-up time and per-phase step times of the throughput scenario, for comparing two versions of gpusim.

    python benchmarks/phase_times.py [--agents 1e6] [--steps 20] [--label NAME]

Runs gpusim.bench.scenario at ``--agents`` on the CPU backend: times the
set-up, then 3 warm-up steps and ``--steps`` steps phase by phase, and prints
one line: the median step and the median of every phase that takes time (ms),
and the kernel launches per step (counted over 5 more steps).
Run it alternately with two installations (e.g. PYTHONPATH pointing at an older
checkout) in one sitting, since this shared machine's speed drifts.
"""

import argparse
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=float, default=1e6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--label", default="gpusim")
    args = parser.parse_args()
    from gpusim import bench
    from gpusim.config import validate
    from gpusim.engine import Simulation

    bench.compile_rules()
    cfg = validate(bench.scenario(int(args.agents), args.steps + 8))
    start = time.perf_counter()
    sim = Simulation(cfg)
    setup = time.perf_counter() - start
    for _ in range(3):
        sim.step()
    sim.profile_phases()
    steps = []
    for _ in range(args.steps):
        start = time.perf_counter()
        sim.step()
        steps.append(time.perf_counter() - start)
    record = sim.backend.launch.time_rules()  # every launch: the engine's, the state's and the fields'
    for _ in range(5):
        sim.step()
    launches = sum(count for count, _seconds in record.values())
    phases = " ".join(f"{name} {1e3 * statistics.median(t):.1f}" for name, t in sim.phase_seconds.items()
                      if statistics.median(t) > 1e-3)
    print(f"{args.label}: set-up {setup:.2f} s, step {1e3 * statistics.median(steps):.1f} ms; {phases}; "
          f"{launches / 5:.1f} launches per step")


if __name__ == "__main__":
    main()
