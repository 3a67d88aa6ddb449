"""One step of the benchmark scenario under Nsight Compute: what each kernel achieves on the GPU's counters.

    ncu --profile-from-start off --clock-control none --print-units base --csv --page details \
        --metrics "$(python benchmarks/profile_step.py --metrics)" \
        python benchmarks/profile_step.py [--agents 1e7] > step.csv
    python benchmarks/profile_step.py --summarize step.csv [--record FILE]

The first form sets up gpusim.bench.scenario at ``--agents`` on the CUDA
backend, runs ``--warmup`` steps (default 3) and then one more between
cudaProfilerStart and cudaProfilerStop, so that ncu (told not to profile from
the start) measures exactly the kernels of one steady step: numba's, the CUDA
C forms a ``GPUSIM_CUDA_C`` setting asks for, and cupy's.  The second reads
ncu's CSV and prints one row per kernel, longest first: the rule it runs,
its time, how much of the DRAM bandwidth and of the multiprocessors' issue
capacity it used, the warps it kept resident against the most its registers
and shared memory allow, and its registers a thread (``gputools.ncu.ncu_table``).
That says, per rule, whether the time goes to moving memory, to computing,
or to waiting (latency, atomics), which the bandwidth floor of
benchmarks/memory_traffic.py cannot.  benchmarks/gpu_check.sh runs both where
ncu can read the counters (on the device tool's Firecracker machines; on gVisor
ncu fails at once and the stage says so).  Under NUMBA_ENABLE_CUDASIM=1 the
first form runs the step with no profiler, as a rehearsal.
"""

import argparse
import sys


def profile(agents, warmup):
    from gpusim import bench
    from gpusim.backend import select
    from gpusim.config import validate
    from gpusim.engine import Simulation

    backend = select("cuda")
    sim = Simulation(validate(bench.scenario(int(float(agents)), warmup + 2)), backend=backend)
    for _ in range(warmup):
        sim.step()
    backend.synchronize()
    runtime = None if backend.simulated else backend.xp.cuda.runtime  # cudaProfilerStart and Stop
    if runtime is not None:
        runtime.profilerStart()
    sim.step()
    backend.synchronize()
    if runtime is not None:
        runtime.profilerStop()
    print(f"profiled one step of {sim.state.n:,} agents on {backend.label}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1e7")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--summarize", help="ncu's CSV (--csv --page details) to summarise instead")
    parser.add_argument("--record", help="with --summarize, also append the table to this Markdown file")
    parser.add_argument("--metrics", action="store_true", help="print the metrics to ask ncu for, and stop")
    args = parser.parse_args(argv)
    if args.metrics:
        from gputools.ncu import NCU_METRICS

        print(",".join(NCU_METRICS))
        return 0
    if not args.summarize:
        profile(args.agents, args.warmup)
        return 0
    from gputools import ncu

    from gpusim import bench

    with open(args.summarize) as f:
        table = ncu.ncu_table(f.read())
    if not table:
        print(f"{args.summarize}: no kernel measured (ncu could not read the counters?)", file=sys.stderr)
        return 1
    print(table)
    if args.record:
        bench.record(args.record, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
