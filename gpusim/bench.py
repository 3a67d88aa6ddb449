"""Step throughput: agent-steps per second of the whole step at a given number of agents.

The scenario is a tumour ball holding 90% of the agents with CAR-T cells
(the other 10%) infused around it, in a cube with 2.5 voxels per agent, so
every phase has work: migration, division at the rim, apoptosis, compaction,
observables and the periodic sort.  Each size is warmed up (compilation), then
every step is timed on its own; the median is reported.  Timing lives here
and in ``benchmarks/``, never in the pass/fail tests.
"""

import datetime
import math
import os
import platform
import statistics
import time

WARMUP_STEPS = 3


def scenario(agents, steps):
    edge = math.ceil((agents * 2.5) ** (1.0 / 3.0))
    tumour = int(agents * 0.9)
    total = steps + WARMUP_STEPS
    return {
        "description": f"throughput benchmark, {agents:.0e} agents",
        "run": {"duration": f"{total} min", "snapshot_every": f"{total} min", "sort_every": "60 min", "seed": 7},
        "lattice": {"shape": [edge, edge, edge]},
        "tumour": {"initial_cells": tumour},
        "dose": [{"time": "0 min", "count": agents - tumour, "placement": "rim"}],
    }


def run(sizes, steps=20, backend_name="cpu", echo=print):
    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation

    backend = backends.select(backend_name)
    rows = []
    for agents in sizes:
        cfg = validate(scenario(agents, steps))
        t0 = time.perf_counter()
        sim = Simulation(cfg, backend=backend)
        setup_s = time.perf_counter() - t0
        for _ in range(WARMUP_STEPS):
            sim.step()
        backend.synchronize()
        sim.profile_phases()
        per_step = []
        agent_counts = []
        for _ in range(steps):
            n = sim.state.n
            t = time.perf_counter()
            sim.step()
            backend.synchronize()
            per_step.append(time.perf_counter() - t)
            agent_counts.append(n)
        median_s = statistics.median(per_step)
        mean_agents = statistics.fmean(agent_counts)
        row = {
            "agents": mean_agents,
            "lattice": cfg.lattice.shape[0],
            "median_step_ms": median_s * 1e3,
            "min_step_ms": min(per_step) * 1e3,
            "agent_steps_per_s": mean_agents / median_s,
            "setup_s": setup_s,
            "phases_ms": {name: statistics.median(t) * 1e3 for name, t in sim.phase_seconds.items()},
        }
        rows.append(row)
        echo(f"  {mean_agents:12,.0f} agents  {row['lattice']}^3 lattice  median step {row['median_step_ms']:8.2f} ms"
             f"  -> {row['agent_steps_per_s']:.3g} agent-steps/s")
    return rows


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    return f"{cpu}, {os.cpu_count()} cores, numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), Python {platform.python_version()}"


def markdown(rows, args=None):
    steps = getattr(args, "steps", None)
    lines = [
        f"### Step throughput, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `gpusim bench --agents {getattr(args, 'agents', '')} --steps {steps}`; median of {steps} single-step timings after {WARMUP_STEPS} warm-up steps.",
        "",
        "| agents | lattice | median step (ms) | fastest step (ms) | agent-steps/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['agents']:,.0f} | {r['lattice']}³ | {r['median_step_ms']:.2f} | {r['min_step_ms']:.2f} "
                     f"| {r['agent_steps_per_s']:.3g} |")
    phases = list(rows[0]["phases_ms"]) if rows else []
    lines += [
        "",
        "Median wall time per phase (ms; the sort runs every 60 steps, so its median is ~0):",
        "",
        "| agents | " + " | ".join(phases) + " |",
        "|---:|" + "---:|" * len(phases),
    ]
    for r in rows:
        lines.append(f"| {r['agents']:,.0f} | " + " | ".join(f"{r['phases_ms'][p]:.2f}" for p in phases) + " |")
    return "\n".join(lines) + "\n"


def record(path, table):
    with open(path, "a") as f:
        f.write("\n" + table)
