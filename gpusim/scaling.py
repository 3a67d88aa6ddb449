"""Scaling across MPI ranks: ``gpusim bench --ranks 1,2``.

For each number of ranks K, ``mpiexec -n K`` runs the benchmark scenario (gpusim.bench.scenario) split into K
slabs: strongly (the same agents on K ranks) and weakly (K times the agents, as many per rank).  Each rank
takes ``cores // K`` numba threads unless told.  Every step is timed between two barriers; the exchange phase
is timed on its own in a few more steps.  Reported per K: the median step, agent-steps per second in all and per
rank, the bytes a rank sends per step (the most of any rank), the exchange's share of the step, and the
imbalance (the most cells a rank steps over the mean).  Timing belongs here, never in the pass/fail tests.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpusim.bench import WARMUP_STEPS, machine, scenario

PROFILED_STEPS = 5


def rank_worker(agents, steps, out):
    """One rank's part of one measurement (under mpiexec, or alone for K = 1); rank 0 writes the row to ``out``."""
    from gpusim.config import validate
    from gpusim.engine import Simulation
    from gpusim.kernels.cells import GHOST

    comm, domain = None, None
    cfg = validate(scenario(agents, steps + PROFILED_STEPS))
    from gpusim.parallel import launched_ranks

    if launched_ranks() > 1:
        from gpusim.mpi_run import world
        from gpusim.parallel import SlabDomain, plan_slabs

        comm = world(launched_ranks())
        slabs = plan_slabs(cfg.lattice.shape[0], comm.Get_size(), align=cfg.fields.coarsening)
        domain = SlabDomain(comm, cfg.lattice.shape, slabs)
    barrier = comm.Barrier if comm is not None else (lambda: None)
    sim = Simulation(cfg, domain=domain)
    for _ in range(WARMUP_STEPS):
        sim.step()
    per_step, sent, agent_counts = [], [], []
    for _ in range(steps):
        barrier()
        start = time.perf_counter()
        sim.step()
        barrier()
        per_step.append(time.perf_counter() - start)
        sent.append(getattr(sim.domain, "exchanged_bytes", 0))
        agent_counts.append(sim.cell_count)
    sim.profile_phases()
    for _ in range(PROFILED_STEPS):
        sim.step()
    own = int(((sim.backend.to_host(sim.state.view("state")) & GHOST) == 0).sum())
    held = int(sim.state.n)
    gather = (lambda value: comm.gather(value, root=0)) if comm is not None else (lambda value: [value])
    owns, helds, sents = gather(own), gather(held), gather(statistics.median(sent))
    exchange = statistics.median(sim.phase_seconds["exchange"])
    steps_total = sum(statistics.median(t) for t in sim.phase_seconds.values())
    if comm is None or comm.Get_rank() == 0:
        ranks = len(owns)
        median = statistics.median(per_step)
        mean_agents = statistics.fmean(agent_counts)
        row = {
            "ranks": ranks, "agents": mean_agents, "lattice": list(cfg.lattice.shape),
            "threads_per_rank": _threads(), "median_step_ms": median * 1e3,
            "agent_steps_per_s": mean_agents / median, "per_rank_agent_steps_per_s": mean_agents / median / ranks,
            "bytes_sent_per_step": max(sents), "exchange_ms": exchange * 1e3,
            "exchange_share": exchange / steps_total if steps_total else 0.0,
            "imbalance": max(owns) / statistics.fmean(owns) if sum(owns) else 1.0,
            "cells_held": helds, "cells_stepped": owns,
        }
        Path(out).write_text(json.dumps(row))


def _threads():
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def run(ranks_list, agents, steps=10, threads=None, weak=True, echo=print):
    """Measure every K of ``ranks_list`` at ``agents`` (strong) and, with ``weak``, at ``agents`` x K; returns the
    rows (dicts, ``mode`` "strong" or "weak").  Each measurement is a fresh ``mpiexec -n K`` (the one beside
    this Python, from ``pip install 'gpusim[mpi]'``, else the one on PATH)."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else "mpiexec"
    cores = os.cpu_count() or 1
    rows = []
    plan = [("strong", k, agents) for k in ranks_list]
    if weak:
        plan += [("weak", k, agents * k) for k in ranks_list if k > 1]
    for mode, ranks, count in plan:
        per_rank = threads or max(cores // ranks, 1)
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "row.json"
            command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "gpusim.scaling", str(count), str(steps), str(out)]
            env = {**os.environ, "NUMBA_NUM_THREADS": str(per_rank)}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0 or not out.exists():
                raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}): "
                                   f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no message'}")
            row = {**json.loads(out.read_text()), "mode": mode}
        rows.append(row)
        echo(f"  {mode:6} {ranks} rank(s) x {per_rank} thread(s)  {row['agents']:12,.0f} agents  median step "
             f"{row['median_step_ms']:8.2f} ms  -> {row['agent_steps_per_s']:.3g} agent-steps/s  exchange "
             f"{100 * row['exchange_share']:.1f}%  imbalance {row['imbalance']:.2f}")
    return rows


def markdown(rows, command):
    """The scaling table (and the strong-scaling efficiency against 1 rank)."""
    import datetime

    base = next((r for r in rows if r["mode"] == "strong" and r["ranks"] == 1), None)
    lines = [
        f"### Scaling across MPI ranks, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `{command}`; median of single-step timings between barriers after {WARMUP_STEPS} warm-up steps; "
        f"the exchange timed in {PROFILED_STEPS} more steps.",
        "",
        "| mode | ranks x threads | agents | median step (ms) | agent-steps/s | per rank | vs 1 rank | bytes sent per "
        "step | exchange (ms) | exchange share | imbalance |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        versus = f"{r['agent_steps_per_s'] / base['agent_steps_per_s']:.2f}" if base and r["mode"] == "strong" else "-"
        lines.append(
            f"| {r['mode']} | {r['ranks']} x {r['threads_per_rank']} | {r['agents']:,.0f} | {r['median_step_ms']:.2f} "
            f"| {r['agent_steps_per_s']:.3g} | {r['per_rank_agent_steps_per_s']:.3g} | {versus} "
            f"| {r['bytes_sent_per_step'] / 2**20:.1f} MiB | {r['exchange_ms']:.2f} | {100 * r['exchange_share']:.1f}% "
            f"| {r['imbalance']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    """Agent-steps per second against ranks, strong and weak, beside one rank with every core (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 4))
    base = next((r for r in rows if r["mode"] == "strong" and r["ranks"] == 1), None)
    for mode, marker in (("strong", "o"), ("weak", "s")):
        chosen = sorted(([base] if base and mode == "weak" else []) + [r for r in rows if r["mode"] == mode],
                        key=lambda r: r["ranks"])
        if chosen:
            axes.plot([r["ranks"] for r in chosen], [r["agent_steps_per_s"] for r in chosen], marker=marker,
                      label=f"{mode} scaling")
    if base:  # the ranks share the cores one rank had: splitting pays where it beats that rank
        axes.axhline(base["agent_steps_per_s"], color="k", linestyle=":",
                     label=f"1 rank x {base['threads_per_rank']} threads")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("MPI ranks")
    axes.set_ylabel("agent-steps per second")
    axes.set_xticks(sorted({r["ranks"] for r in rows}))
    axes.legend()
    axes.set_title("gpusim across MPI ranks")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    rank_worker(int(float(sys.argv[1])), int(sys.argv[2]), sys.argv[3])
