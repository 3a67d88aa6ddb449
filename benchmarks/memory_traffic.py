"""The device-memory traffic of the throughput scenario's step, rule by rule, and the floor it puts under a GPU step.

    python benchmarks/memory_traffic.py [--agents 1e5] [--warmup 3] [--steps 1] [--scale-to 1e8]
                                        [--bandwidth 4.8e12]

Runs gpusim.bench.scenario at ``--agents`` on the CPU backend, ``--warmup``
steps as usual, then ``--steps`` steps whose every launch is also run as plain
Python on recording arrays (benchmarks/gputools/memory_traffic.py): the 32-byte sectors each
launch reads and writes.  Prints a markdown table: per launch, its footprint
(distinct sectors, bytes per agent), what its warps ask for when no cache
helps, and the time the footprint takes at ``--bandwidth`` (default an H200's
4.8 TB/s) with ``--scale-to`` agents; then the step's, and the ceiling on
agent-steps/s that bandwidth allows for the step as its rules are written; then
the footprint by the array it lies in (a column, a scratch array, the
occupancy grid) and the launches that move it.
Needs no GPU and no timing: the figures are the same on every machine.  Python
is slow: about 10 s a step at 1e5 agents.
"""

import argparse
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=float, default=1e5)
    parser.add_argument("--warmup", type=int, default=3, help="steps run before recording (default 3)")
    parser.add_argument("--steps", type=int, default=1, help="steps recorded (default 1)")
    parser.add_argument("--scale-to", type=float, default=1e8, help="agents the floor is given for (default 1e8)")
    parser.add_argument("--bandwidth", type=float, default=None, help="device bytes/s (default an H200's)")
    args = parser.parse_args()
    from gpusim import bench
    from gputools import memory_traffic
    from gpusim.backend import select
    from gpusim.config import validate
    from gpusim.engine import Simulation

    bandwidth = args.bandwidth or memory_traffic.H200_BANDWIDTH
    sim = Simulation(validate(bench.scenario(int(args.agents), args.warmup + args.steps)), backend=select("cpu"))
    for _ in range(args.warmup):
        sim.step()
    started = time.perf_counter()
    agents = sim.state.n
    totals = memory_traffic.step_traffic(sim, args.steps)
    rows, step = memory_traffic.traffic_table(totals, agents, args.steps, args.scale_to, bandwidth)
    print(f"\nThe throughput scenario at {agents:,} agents, step {args.warmup + 1}"
          f"{f' to {args.warmup + args.steps}' if args.steps > 1 else ''} "
          f"(recorded in {time.perf_counter() - started:.0f} s):\n")
    print(memory_traffic.markdown(rows, step, agents, args.scale_to, bandwidth))
    print("\nThe same footprint by the array it lies in (the rules' parameter names):\n")
    print(memory_traffic.array_markdown(memory_traffic.array_table(totals, agents, args.steps)))


if __name__ == "__main__":
    main()
