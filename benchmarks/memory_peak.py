"""What a run really allocates, against the memory preflight, on the CPU backend.

    python benchmarks/memory_peak.py [--agents 1e5,1e6] [--steps 5]
    python benchmarks/memory_peak.py --preflight-only --agents 1e6,1e7,1e8,1e9

For each size of the throughput benchmark's scenario (gpusim.bench.scenario:
a tumour ball, a rim infusion, 2.5 voxels per agent) this prints, in bytes per
agent: the preflight's figure (gpusim.engine.memory_needed), the peak while the
run is set up (tumour and infusion placed), the peak through ``--steps`` steps
and a sort by voxel, and what the run holds after.  On the CPU backend every
array is host memory that tracemalloc sees, so the peak is the run's own.
1e8 agents need about 12 GB of RAM and two minutes on two cores.  With
``--preflight-only`` it prints the preflight's figure alone (any size, nothing
allocated).
"""

import argparse


def measure(agents, steps):
    from gpusim import bench
    from gpusim.config import validate
    from gpusim.engine import memory_needed

    cfg = validate(bench.scenario(agents, steps))
    _, setup_peak, peak, held = bench.traced_memory(cfg, steps)
    return {"agents": agents, "preflight": memory_needed(cfg) / agents, "setup_peak": setup_peak / agents,
            "peak": peak / agents, "held": held / agents}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1e5,1e6", help="comma-separated agent counts")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--preflight-only", action="store_true", help="only the preflight's figure; allocate nothing")
    args = parser.parse_args()
    from gpusim import bench
    from gpusim.config import validate
    from gpusim.engine import memory_needed

    sizes = [int(float(a)) for a in args.agents.split(",")]
    if args.preflight_only:
        print("| agents | lattice | preflight (bytes/agent) | preflight (GiB) |")
        print("|---:|---:|---:|---:|")
        for agents in sizes:
            cfg = validate(bench.scenario(agents, args.steps))
            needed = memory_needed(cfg)
            print(f"| {agents:.0e} | {cfg.lattice.shape[0]}³ | {needed / agents:.1f} | {needed / 2**30:.2f} |")
        return

    bench.compile_rules()
    print("| agents | preflight | set-up peak | peak through steps and a sort | held after |")
    print("|---:|---:|---:|---:|---:|")
    for agents in sizes:
        r = measure(agents, args.steps)
        print(f"| {agents:.0e} | {r['preflight']:.1f} | {r['setup_peak']:.1f} | {r['peak']:.1f} | {r['held']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
