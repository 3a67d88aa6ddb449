"""What a rule's launch costs the host on the CUDA backend, beside the device's own work.

    python benchmarks/launch_overhead.py [--agents 1e6] [--launches 200] [--json OUT.json]

On the H200 a step of the benchmark scenario took 8.0 ms at 1e6 agents and 52 ms at 1e8: 100 times the
cells for 6.5 times the time, so at the sizes most runs have the device mostly waits for Python to
launch its ~40 kernels.  This sets up the benchmark scenario and launches three rules of the step back to
back, without waiting, ``--launches`` times each: ``claim_own_voxel`` (2 arrays), ``mark_survivor`` (3)
and ``census`` (10 arrays, the parameter vector among them, and a tally).  For each it reports the host's time per
launch (the loop alone) and the time per launch until the device is done; then the same with every
array argument handed over as numba's own device array, made once (``numba.cuda.as_cuda_array``),
instead of a cupy array that numba converts at every launch; and with cupy arrays launched directly through
cuda.core after numba's first launch (``GPUSIM_CUDA_DIRECT=1``, kernels.gpu_launcher.CUDALauncher).  The rules
rewrite what they read, so the state is the same after.  Prints a table and, with ``--json``, writes the figures.  In numba's CUDA
simulator (NUMBA_ENABLE_CUDASIM=1, small ``--agents``) it runs as a rehearsal, with the first form alone.
"""

import argparse
import json
import statistics
import sys
import time


def _time_launches(backend, fn, extent, args, launches):
    """Seconds per launch: (host loop alone, until the device is done); best of three rounds."""
    rounds = []
    for _ in range(3):
        backend.synchronize()
        start = time.perf_counter()
        for _ in range(launches):
            backend.launch(fn, extent, *args)
        host = time.perf_counter() - start
        backend.synchronize()
        rounds.append((host / launches, (time.perf_counter() - start) / launches))
    return min(rounds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1e6")
    parser.add_argument("--launches", type=int, default=200)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    from gpusim import bench
    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation
    from gpusim.kernels.census import census
    from gpusim.kernels.cpu_launcher import Count
    from gpusim.kernels.occupancy import claim_own_voxel, mark_survivor

    backend = backends.select("cuda")
    sim = Simulation(validate(bench.scenario(int(float(args.agents)), 10)), backend=backend)
    sim.step()
    s = sim.state
    cells = Count(s.n, s.counters[0:1])  # as mid-step: the device holds the count, the host a bound
    launches = {
        "claim_own_voxel": (claim_own_voxel, cells, (s["voxel"], s.occ)),
        "mark_survivor": (mark_survivor, s.n, (s.counters[0:1], s["state"], s["rank"])),
        "census": (census, cells, (s["kind"], s["state"], s["voxel"], s["partner"], s["cycle_timer"],
                                     s["divisions_left"], s["stimulation"], s["pools"], s.occ, sim.params,
                                     sim.detection)),
    }
    same = lambda a: a  # noqa: E731
    forms = {"cupy arrays": (same, False)}
    if not backend.simulated:
        from numba import cuda

        forms["numba device arrays"] = (
            lambda a: cuda.as_cuda_array(a) if hasattr(a, "__cuda_array_interface__") else a, False)
        forms["cupy arrays, direct (GPUSIM_CUDA_DIRECT=1)"] = (same, True)

    rows = []
    configured = backend.launch.direct
    try:
        for name, (fn, extent, arguments) in launches.items():
            backend.launch(fn, extent, *arguments)  # compiled before timing
            for form, (convert, direct) in forms.items():
                backend.launch.direct = direct
                converted = tuple(convert(a) for a in arguments)
                bound = Count(extent.bound, convert(extent.live)) if isinstance(extent, Count) else extent
                backend.launch(fn, bound, *converted)
                host, total = _time_launches(backend, fn, bound, converted, args.launches)
                rows.append({"rule": name, "arrays": sum(hasattr(a, "shape") for a in arguments), "form": form,
                             "host_us": host * 1e6, "total_us": total * 1e6})
    finally:
        backend.launch.direct = configured
    report = {"agents": int(s.n), "backend": backend.label, "launches": args.launches, "rows": rows,
              "median_host_us": statistics.median(r["host_us"] for r in rows if r["form"] == "cupy arrays")}
    print(f"{report['agents']:,} agents, {backend.label}, {args.launches} launches back to back, best of 3")
    print("| rule | arrays | arguments as | host per launch (us) | until done, per launch (us) |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['rule']} | {r['arrays']} | {r['form']} | {r['host_us']:.1f} | {r['total_us']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
