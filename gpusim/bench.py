"""Step throughput: agent-steps per second of the whole step at a given number of agents.

The scenario is a tumour ball holding 90% of the agents with CAR-T cells
(the other 10%) infused around it, in a cube with 2.5 voxels per agent, so
every phase has work: migration, division at the rim, apoptosis, compaction,
observables and the periodic sort.  With ``fields`` the run also has oxygen
and chemokine at their default settings (grid, cadence, solver), and the
fields' share of the step time is reported.  Each size is warmed up
(compilation), then every step is timed on its own, waiting for the device
once at its end as a run does; the median is reported.  A few more steps are
then timed phase by phase (waiting for the device around every phase) for the
breakdown.
Timing lives here and in ``benchmarks/``, never in the pass/fail tests.
"""

import datetime
import json
import math
import os
import platform
import statistics
import time

WARMUP_STEPS = 3
PROFILED_STEPS = 10  # steps timed phase by phase after the timed steps (waiting for the device at each phase)
RULES_LISTED = 12  # rules in the table of the slowest (--kernels)


def scenario(agents, steps, fields=False):
    edge = math.ceil((agents * 2.5) ** (1.0 / 3.0))
    edge += edge % 2  # even, so the default field grid (2 voxels per edge) divides it
    tumour = int(agents * 0.9)
    total = steps + WARMUP_STEPS + PROFILED_STEPS
    extra = {"fields": {"settle": 10, "oxygen": {}, "chemokine": {}}} if fields else {}
    return {
        **extra,
        "description": f"throughput benchmark, {agents:.0e} agents",
        "run": {"duration": f"{total} min", "snapshot_every": f"{total} min", "sort_every": "60 min", "seed": 7},
        "lattice": {"shape": [edge, edge, edge]},
        "tumour": {"initial_cells": tumour},
        "dose": [{"time": "0 min", "count": agents - tumour, "placement": "rim"}],
    }


def run(sizes, steps=20, backend_name="cpu", fields=False, kernels=False, echo=print):
    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation, memory_needed, preflight

    backend = backends.select(backend_name)
    configs = [validate(scenario(agents, steps, fields)) for agents in sizes]
    for cfg in configs:  # a size too large for the lattice or the memory is refused before anything runs
        preflight(cfg, backend)
    compile_rules(backend, fields)  # so no size's timed steps compile (compaction is not in every step)
    rows = []
    for cfg in configs:
        t0 = time.perf_counter()
        sim = Simulation(cfg, backend=backend)
        setup_s = time.perf_counter() - t0
        for _ in range(WARMUP_STEPS):
            sim.step()
        backend.synchronize()
        per_step = []
        agent_counts = []
        for _ in range(steps):
            n = sim.cell_count
            t = time.perf_counter()
            sim.step()
            backend.synchronize()
            per_step.append(time.perf_counter() - t)
            agent_counts.append(n)
        sim.profile_phases()  # then a few steps more, the device waited for around every phase, for the breakdown
        profiled = min(steps, PROFILED_STEPS)
        timings = backend.launch.time_rules() if kernels else None
        for _ in range(profiled):
            sim.step()
        backend.launch.time_rules(False)
        median_s = statistics.median(per_step)
        mean_agents = statistics.fmean(agent_counts)
        row = {
            "agents": mean_agents,
            "lattice": cfg.lattice.shape[0],
            "median_step_ms": median_s * 1e3,
            "mean_step_ms": statistics.fmean(per_step) * 1e3,  # with the steps that compact (the median has few)
            "min_step_ms": min(per_step) * 1e3,
            "agent_steps_per_s": mean_agents / median_s,
            "setup_s": setup_s,
            "phases_ms": {name: statistics.median(t) * 1e3 for name, t in sim.phase_seconds.items()},
            "fields_share": sum(sim.phase_seconds["fields"]) / sum(sum(t) for t in sim.phase_seconds.values()),
            "preflight_bytes": memory_needed(cfg),
            "held_bytes": backend.memory_held(),
            "profiled_steps": profiled,
            "rules_ms": {name: seconds * 1e3 / profiled for name, (_launches, seconds) in timings.items()} if kernels
            else None,
            "backend": backend.label,
            "cuda_c": sorted(getattr(backend.launch, "cuda_c", ())),  # the forms the rules ran in (GPU settings)
            "strided": sorted(getattr(backend.launch, "strided", ())),
            "direct": bool(getattr(backend.launch, "direct", False)),
            "fields": fields,
        }
        rows.append(row)
        del sim  # its memory is free for the next size
        backend.release_memory()
        echo(f"  {mean_agents:12,.0f} agents  {row['lattice']}^3 lattice  median step {row['median_step_ms']:8.2f} ms"
             f"  -> {row['agent_steps_per_s']:.3g} agent-steps/s"
             + (f"  (fields {100 * row['fields_share']:.1f}% of the step time)" if fields else ""))
    return rows


def compile_rules(backend=None, fields=False):
    """Set up, step, compact and sort a small benchmark scenario, so that every rule of the set-up, the step,
    compaction and the sort is compiled (or loaded from numba's cache) before something is measured: compiling
    holds memory and takes seconds."""
    from gpusim.config import validate
    from gpusim.engine import Simulation

    sim = Simulation(validate(scenario(1000, 2, fields)), backend=backend)
    for _ in range(2):
        sim.step()
    sim.state.compact()
    sim.state.sort_by_voxel()


def traced_memory(cfg, steps):
    """Run ``cfg`` on the CPU backend under tracemalloc, which sees every array there (host memory): set-up
    (cells placed), ``steps`` steps, then a sort by voxel.  Returns the simulation and, in bytes, the peak
    during set-up, the peak over everything and what the run holds after.  Compile the rules first
    (:func:`compile_rules`), or the compiler's memory counts too."""
    import tracemalloc

    from gpusim.engine import Simulation

    tracemalloc.start()
    try:
        sim = Simulation(cfg)
        setup_peak = tracemalloc.get_traced_memory()[1]
        for _ in range(steps):
            sim.step()
        sim.state.sort_by_voxel()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sim, setup_peak, peak, held


def gpu_name():
    """The CUDA device's name, or None without a usable GPU."""
    try:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return None


def machine(backend_label="cpu"):
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

    host = f"{cpu}, {os.cpu_count()} cores, numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), Python {platform.python_version()}"
    if backend_label.startswith("cuda"):
        return f"backend {backend_label} on {gpu_name() or 'no GPU'}; host {host}"
    return host


def markdown(rows, args=None):
    steps = getattr(args, "steps", None)
    lines = [
        f"### Step throughput, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine(rows[0]['backend'] if rows else 'cpu')}.  ",
        f"Command: `gpusim bench --agents {agents_text(args)} --steps {steps}"
        f"{' --fields' if getattr(args, 'fields', False) else ''}"
        f"{' --kernels' if getattr(args, 'kernels', False) else ''}"
        f"{' --backend ' + args.backend if getattr(args, 'backend', 'cpu') != 'cpu' else ''}`; median of {steps} single-step timings after "
        f"{WARMUP_STEPS} warm-up steps (agent-steps/s from the median; the mean includes the steps that compact the "
        "table, in this scenario about one in twenty).",
        "",
        "| agents | lattice | median step (ms) | mean step (ms) | fastest step (ms) | agent-steps/s "
        "| preflight (bytes/agent) | device memory held (bytes/agent) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        held = "-" if r["held_bytes"] is None else f"{r['held_bytes'] / r['agents']:.0f}"
        lines.append(f"| {r['agents']:,.0f} | {r['lattice']}³ | {r['median_step_ms']:.2f} | {r['mean_step_ms']:.2f} "
                     f"| {r['min_step_ms']:.2f} "
                     f"| {r['agent_steps_per_s']:.3g} | {r['preflight_bytes'] / r['agents']:.0f} | {held} |")
    phases = list(rows[0]["phases_ms"]) if rows else []
    lines += [
        "",
        f"Median wall time per phase over {rows[0]['profiled_steps'] if rows else 0} more steps, the device waited "
        "for around every phase (ms; the sort runs every 60 steps, so its median is ~0):",
        "",
        "| agents | " + " | ".join(phases) + " |",
        "|---:|" + "---:|" * len(phases),
    ]
    for r in rows:
        lines.append(f"| {r['agents']:,.0f} | " + " | ".join(f"{r['phases_ms'][p]:.2f}" for p in phases) + " |")
    if rows and rows[0]["rules_ms"] is not None:
        largest = max(rows, key=lambda r: r["agents"])
        slowest = sorted(largest["rules_ms"], key=largest["rules_ms"].get, reverse=True)[:RULES_LISTED]
        lines += [
            "",
            f"Wall time per step of the {len(slowest)} slowest rules at {largest['agents']:,.0f} agents (ms; every "
            "launch timed on its own, the device waited for around it, summed over a step):",
            "",
            "| rule | " + " | ".join(f"{r['agents']:,.0f} agents" for r in rows) + " |",
            "|---|" + "---:|" * len(rows),
        ]
        for name in slowest:
            lines.append(f"| {name} | " + " | ".join(f"{r['rules_ms'].get(name, 0.0):.2f}" for r in rows) + " |")
    if rows and rows[0]["fields"]:
        lines += ["", "Share of the step time spent on the fields (oxygen quasi-steady, chemokine stepped; both at "
                  "their default grid and cadence; total over the steps timed phase by phase): "
                  + ", ".join(f"{100 * r['fields_share']:.1f}% at {r['agents']:,.0f} agents" for r in rows) + "."]
    return "\n".join(lines) + "\n"


def write_json(path, rows):
    """``rows`` of :func:`run` as JSON, with the machine they ran on."""
    with open(path, "w") as f:
        json.dump({"machine": machine(rows[0]["backend"] if rows else "cpu"), "rows": rows}, f, indent=1)


CURRENT_BEGIN = "<!-- current table: `make bench` rewrites the rows of its backend and sizes -->"
CURRENT_END = "<!-- end of the current table -->"
CURRENT_HEADER = ("| backend | agents | median step (ms) | agent-steps/s | bytes per agent | machine | commit | date | command |\n"
                  "|---|---:|---:|---:|---:|---|---|---|---|")


def agents_text(args):
    """``--agents`` as written on a command line: 1e5,1e6 (the parsed counts of ``args``, or its text)."""
    agents = getattr(args, "agents", "")
    if isinstance(agents, (list, tuple)):
        return ",".join(f"{a:.0e}".replace("e+0", "e") if a >= 1000 else str(a) for a in agents)
    return str(agents)


def current_rows(rows, args, commit, date):
    """The rows of the current table for a benchmark's ``rows``: one per size, keyed by backend and agents."""
    command = (f"gpusim bench --agents {agents_text(args)} --steps {getattr(args, 'steps', '')}"
               + (" --fields" if getattr(args, "fields", False) else ""))
    out = {}
    for r in rows:
        key = (r["backend"], f"{r['agents']:.0e}".replace("e+0", "e"))
        out[key] = (f"| {r['backend']} | {r['agents']:,.0f} | {r['median_step_ms']:.2f} | {r['agent_steps_per_s']:.3g} "
                    f"| {r['preflight_bytes'] / r['agents']:.0f} | {machine(r['backend'])} | {commit} | {date} "
                    f"| `{command}` |")
    return out


def record(path, table, rows=None, args=None):
    """Record a benchmark: the current table at the top of ``path`` keeps one row per backend and size (this
    run's rows replace those of its backend and sizes), and the whole table, phases and all, is appended to
    JOURNAL.md beside it."""
    from pathlib import Path

    path = Path(path)
    journal = path.with_name("JOURNAL.md")
    with open(journal, "a") as f:
        f.write("\n" + table)
    if rows is None:
        return
    text = path.read_text() if path.exists() else "# Benchmark results\n\n" + CURRENT_BEGIN + "\n" + CURRENT_END + "\n"
    if CURRENT_BEGIN not in text or CURRENT_END not in text:
        text = text.rstrip("\n") + "\n\n" + CURRENT_BEGIN + "\n" + CURRENT_END + "\n"
    head, rest = text.split(CURRENT_BEGIN, 1)
    body, tail = rest.split(CURRENT_END, 1)
    existing = {}
    for line in body.strip().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 9 and cells[1].replace(",", "").isdigit():
            existing[(cells[0], f"{float(cells[1].replace(',', '')):.0e}".replace("e+0", "e"))] = line
    from gpusim.store import source_revision

    existing.update(current_rows(rows, args, source_revision()[:12], datetime.date.today().isoformat()))
    ordered = sorted(existing.items(), key=lambda item: (item[0][0], float(item[0][1])))
    body = "\n" + CURRENT_HEADER + "\n" + "\n".join(line for _key, line in ordered) + "\n"
    path.write_text(head + CURRENT_BEGIN + body + CURRENT_END + tail)


def snapshot_cost(agents, every_min=60, snapshots=2, repeats=1, echo=print):
    """Cost of writing snapshots: the same run with and without a store, and the bytes the fields take.

    Runs ``snapshots * every_min`` steps of the benchmark scenario without a
    store and writing a snapshot every ``every_min`` minutes (cell-kind labels,
    the three molecule fields, agent tables, histograms; checkpoints only at the
    start and the end, timed apart), alternating the two ``repeats`` times so
    that drifts of a shared machine hit both alike.  Returns a dict of median
    timings, every pair's extra time, and sizes.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from gpusim import backend as backends
    from gpusim.config import validate
    from gpusim.engine import Simulation
    from gpusim.store import RunStore

    steps = every_min * snapshots
    raw = scenario(agents, steps - WARMUP_STEPS)
    raw["run"].update({"duration": f"{steps} min", "snapshot_every": f"{every_min} min",
                       "checkpoint_every": f"{steps} min"})
    cfg = validate(raw)
    backend = backends.select("cpu")

    def plain_run():
        sim = Simulation(cfg, backend=backend)
        sim.step()  # compile
        t = time.perf_counter()
        sim.run()
        return time.perf_counter() - t

    def stored_run():
        folder = Path(tempfile.mkdtemp(prefix="gpusim-bench-"))
        try:
            sim = Simulation(cfg, backend=backend)
            sim.step()
            store = RunStore(folder / "bench.ome.zarr", cfg, raw, backend.label)
            spent = {"snapshot": 0.0, "checkpoint": 0.0}
            for name in spent:
                original = getattr(store, name)

                def timed(s, original=original, name=name):
                    t0 = time.perf_counter()
                    original(s)
                    spent[name] += time.perf_counter() - t0

                setattr(store, name, timed)
            t = time.perf_counter()
            sim.run(store=store)
            elapsed = time.perf_counter() - t

            def size(sub):
                return sum(f.stat().st_size for f in (folder / "bench.ome.zarr" / sub).rglob("*") if f.is_file())

            sizes = {"fields": sum(size(level.basename) for level in store.image), "labels": size("labels"),
                     "agents": size("agents"), "files": sum(1 for f in folder.rglob("*") if f.is_file()),
                     "writer_s": store.writer_seconds}
            return elapsed, spent, sizes, sim, store.meta["snapshots_written"]
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    pairs = []
    for repeat in range(repeats):
        plain_s = plain_run()
        stored_s, spent, sizes, sim, written = stored_run()
        pairs.append((plain_s, stored_s, spent))
        echo(f"  pair {repeat + 1}/{repeats}: {plain_s:.1f} s without store, {stored_s:.1f} s with it "
             f"({100 * (stored_s - plain_s) / plain_s:+.1f}%)")
    mean_agents = statistics.fmean(sim.timeseries.rows["cells_tumour"]) + statistics.fmean(sim.timeseries.rows["cells_car_t"])
    per = written * mean_agents
    plain_s = statistics.median(p[0] for p in pairs)
    stored_s = statistics.median(p[1] for p in pairs)
    row = {
        "requested": agents,
        "agents": mean_agents,
        "steps": steps,
        "snapshots": written,
        "repeats": repeats,
        "plain_s": plain_s,
        "stored_s": stored_s,
        "pair_shares": [(b - a) / a for a, b, _ in pairs],
        "snapshot_s": statistics.median(p[2]["snapshot"] for p in pairs),
        "checkpoint_s": statistics.median(p[2]["checkpoint"] for p in pairs),
        "snapshot_share": (stored_s - plain_s) / plain_s,
        "field_bytes_per_agent": sizes["fields"] / per,
        "label_bytes_per_agent": sizes["labels"] / per,
        "agent_table_bytes_per_agent": sizes["agents"] / per,
        "files": sizes["files"],
        "writer_s": sizes["writer_s"],
        "writer_mb_per_s": (sizes["fields"] + sizes["labels"] + sizes["agents"]) / 2**20 / max(sizes["writer_s"], 1e-9),
    }
    echo(f"  {mean_agents:,.0f} agents, {steps} steps, {written} snapshots: median run {plain_s:.1f} s without store, "
         f"{stored_s:.1f} s with it ({100 * row['snapshot_share']:+.1f}%; the step waited {row['snapshot_s']:.2f} s "
         f"handing over snapshots, {row['checkpoint_s']:.2f} s checkpoints); fields {row['field_bytes_per_agent']:.2f} "
         f"B/agent/snapshot; {sizes['files']} files")
    return row


def snapshot_markdown(row, every_min):
    pairs = ", ".join(f"{100 * share:+.1f}%" for share in row["pair_shares"])
    return "\n".join([
        f"### Snapshot cost, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `gpusim bench --snapshot-cost --agents {row['requested']:.0e} --snapshot-every {every_min} "
        f"--snapshots {row['snapshots'] - 1} --repeats {row['repeats']}`.",
        "",
        "| agents | steps | snapshots | run without store (s) | with store (s) | extra time (medians) | each pair | step waits on snapshot hand-over (s) | on checkpoints (s) | fields B/agent/snapshot | labels B/agent/snapshot | agent tables B/agent/snapshot | files in store | writer busy (s) | writer throughput (MiB/s on disk) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {row['agents']:,.0f} | {row['steps']} | {row['snapshots']} | {row['plain_s']:.1f} | {row['stored_s']:.1f} | "
        f"{100 * row['snapshot_share']:+.1f}% | {pairs} | {row['snapshot_s']:.2f} | {row['checkpoint_s']:.2f} | "
        f"{row['field_bytes_per_agent']:.2f} | {row['label_bytes_per_agent']:.2f} | {row['agent_table_bytes_per_agent']:.2f} | "
        f"{row['files']} | {row['writer_s']:.2f} | {row['writer_mb_per_s']:.1f} |",
        "",
        "Runs without and with a store alternate; times are medians.  A background thread compresses and writes; the "
        "step only copies to the host.  Extra time is the whole run's (final drain, the checkpoints at start and end, "
        "and the writer competing for the same 2 cores).  Writer busy: the writer thread's time on the snapshots "
        "(compressing and writing fields, labels, agent tables, histograms) in the last stored run; throughput: their "
        "bytes on disk over that time.",
        "",
    ])
