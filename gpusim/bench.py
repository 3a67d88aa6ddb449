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
import re
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


FASTER = 0.95  # a variant runs a rule faster where it takes at most this share of the reference's time


def _at_size(reports, names, lattice):
    """``{name: its row of the size with lattice edge ``lattice``}`` for those of ``names`` that ran it."""
    found = {name: next((row for row in reports[name] if row["lattice"] == lattice), None) for name in names}
    return {name: row for name, row in found.items() if row is not None}


def compare(reports):
    """Per-rule times of runs of the same scenario side by side: ``reports`` is ``{name: rows of run()}`` (the
    first the reference, e.g. the GPU check's main run, the others its variants), compared size by size (by
    lattice edge). Returns markdown: per size, the median step and every rule's time per step in each, the
    fastest in bold, and per variant the rules it runs at least 5% faster than the reference."""
    names = list(reports)
    reference = names[0]
    lines = []
    for row in reports[reference]:
        edge = row["lattice"]
        same = _at_size(reports, names, edge)
        present = list(same)
        if len(present) < 2:
            continue
        lines += [f"### {row['agents']:,.0f} agents ({edge}³): {', '.join(present)}", "",
                  "| | " + " | ".join(f"{name}: {same[name]['backend']}" for name in present) + " |",
                  "|---|" + "---:|" * len(present)]

        def line(label, values):
            best = min(v for v in values if v is not None)
            return f"| {label} | " + " | ".join(
                "-" if v is None else (f"**{v:.2f}**" if v == best else f"{v:.2f}") for v in values) + " |"

        lines.append(line("median step (ms)", [same[name]["median_step_ms"] for name in present]))
        rules = sorted({rule for name in present for rule in (same[name]["rules_ms"] or {})},
                       key=lambda rule: (-(same[reference]["rules_ms"] or {}).get(rule, 0.0), rule))
        for rule in rules:
            lines.append(line(rule, [(same[name]["rules_ms"] or {}).get(rule) for name in present]))
        lines.append("")
        base = same[reference]["rules_ms"] or {}
        for name in present[1:]:
            theirs = same[name]["rules_ms"] or {}
            faster = [rule for rule in rules if rule in base and rule in theirs and theirs[rule] <= FASTER * base[rule]]
            lines.append(f"{name}: {same[name]['median_step_ms']:.2f} ms a step against {row['median_step_ms']:.2f}; "
                         f"at least 5% faster in {', '.join(faster) or 'no rule'}.")
        lines.append("")
    return "\n".join(lines)


def best_settings(reports, equal, margin=FASTER):
    """The GPU settings that run every rule in the fastest form the GPU check timed: ``reports`` as for
    :func:`compare` (the main run first, rows with the forms each rule ran in), ``equal`` the variants whose
    equality run matched the CPU (no other is chosen).  A rule takes a variant's form (CUDA C, or strided) where
    that variant ran it at least ``1 - margin`` faster than the main run at the same size, the fastest such;
    direct launches where a variant with them took a median step that much shorter.  Returns
    ``{variable: value}`` for GPUSIM_CUDA_C, GPUSIM_CUDA_GRID and GPUSIM_CUDA_DIRECT, each explicit ("0" for
    none), so that the defaults do not add to it."""
    names = list(reports)
    cuda_c, strided, direct = set(), set(), False
    for row in reports[names[0]]:
        cuda_c |= set(row.get("cuda_c", ()))  # the main run's own forms stand unless a variant beats them
        strided |= set(row.get("strided", ()))
        direct |= bool(row.get("direct"))
        same = _at_size(reports, [name for name in names[1:] if name in equal], row["lattice"])
        for rule, main_ms in (row["rules_ms"] or {}).items():
            timed = [(other["rules_ms"][rule], name) for name, other in same.items()
                     if rule in (other["rules_ms"] or {}) and other["rules_ms"][rule] <= margin * main_ms]
            if not timed:
                continue
            fastest = same[min(timed)[1]]
            cuda_c.discard(rule)
            strided.discard(rule)
            if rule in fastest.get("cuda_c", ()):
                cuda_c.add(rule)
            elif rule in fastest.get("strided", ()):
                strided.add(rule)
        direct |= any(other.get("direct") and other["median_step_ms"] <= margin * row["median_step_ms"]
                      for other in same.values())
    return {"GPUSIM_CUDA_C": ",".join(sorted(cuda_c)) or "0", "GPUSIM_CUDA_GRID": ",".join(sorted(strided)) or "0",
            "GPUSIM_CUDA_DIRECT": "1" if direct else "0"}


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
            writer = {"seconds": 0.0}
            write_snapshot = store._write_snapshot

            def timed_write(*args):  # runs on the writer thread: compression and disk
                t0 = time.perf_counter()
                write_snapshot(*args)
                writer["seconds"] += time.perf_counter() - t0

            store._write_snapshot = timed_write
            t = time.perf_counter()
            sim.run(store=store)
            elapsed = time.perf_counter() - t

            def size(sub):
                return sum(f.stat().st_size for f in (folder / "bench.ome.zarr" / sub).rglob("*") if f.is_file())

            sizes = {"fields": sum(size(level.basename) for level in store.image), "labels": size("labels"),
                     "agents": size("agents"), "files": sum(1 for f in folder.rglob("*") if f.is_file()),
                     "writer_s": writer["seconds"]}
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


# --- every kernel compiled for a GPU, on a machine without one: machine code and what it uses ---------------

# what one multiprocessor of compute capability 9.0 (H100, H200) holds (CUDA C Programming Guide, "Compute
# Capabilities"): 64K 32-bit registers (given out per warp, in units of 256), 64 warps, 32 blocks, 228 KiB of
# shared memory, of which the system reserves 1 KiB per block (included in nvJitLink's count for a block that
# has shared arrays)
SM90 = {"registers": 65536, "register_unit": 256, "warps": 64, "blocks": 32, "shared": 228 * 1024,
        "shared_per_block_reserved": 1024}


def occupancy(registers, shared_bytes, threads_per_block=256, sm=SM90):
    """Share of a multiprocessor's warps a kernel keeps busy at ``threads_per_block``, from its registers a
    thread and shared memory a block (as nvJitLink counts it); and what limits it."""
    from gpusim.kernels import cuda_c

    blocks, limit = cuda_c.blocks_per_multiprocessor(threads_per_block, registers, shared_bytes, sm)
    return blocks * -(-threads_per_block // 32) / sm["warps"], limit


def compile_kernels(signatures, capability=(9, 0), strided=False, machine_code=False):
    """Compile every launch in ``signatures`` for a GPU of compute ``capability``, with no GPU or driver; with
    ``strided``, the kernels' forms that stride over their indices (``GPUSIM_CUDA_GRID``), labelled so.

    ``signatures`` are (rule module, rule name, counted launch, numba types of the arguments), as
    ``tests/trace_run.py`` records them in numba's CUDA simulator.  Each launcher goes to PTX by
    numba-cuda's NVVM, then to the GPU's machine code by nvJitLink (ptxas), which also reports what a
    thread and a block of it use.  Returns (kernels, failures): per kernel its name, PTX size, registers a
    thread, shared memory a block, local memory and spilled bytes a thread; per failure the compiler's
    message.  Run without NUMBA_ENABLE_CUDASIM (the simulator compiles nothing).
    """
    import importlib
    import types

    import numba.cuda.dispatcher as dispatcher
    from numba import cuda
    from numba import types as nbtypes

    from gpusim.kernels.launch import launcher, parameter_bytes, tally_size

    # a kernel's device functions are compiled for the current device's capability; with no device, name one
    current_device = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=capability)
    kernels, failures = [], []
    try:
        for (module, name, counted, argument_types), label in zip(signatures, _labels(signatures)):
            label += " (strided)" if strided else ""
            rule = getattr(importlib.import_module(module), name)
            extent = nbtypes.int64[::1] if counted else nbtypes.int64
            totals = (nbtypes.int64[::1],) if tally_size(rule) else ()
            try:
                ptx, _ = cuda.compile_ptx(launcher(rule, "cuda", counted, strided).py_func,
                                          (extent, *argument_types, *totals), cc=capability)
                kernels.append({"kernel": label, "ptx_bytes": len(ptx),
                                **machine_code_resources(ptx, capability, machine_code),
                                "parameter_bytes": ptx_parameter_bytes(ptx),
                                # 64-bit atomics in shared memory: a compare-and-swap loop on the GPU (sm_90)
                                "shared_atomics_64": len(_SHARED_ATOMIC_64.findall(ptx)),
                                "divisions_64": len(_DIVISION_64.findall(ptx)),
                                "laid_out_bytes": parameter_bytes((extent, *argument_types, *totals))})
            except Exception as error:  # every failure is reported, with the compiler's own message
                failures.append({"kernel": label, "error": f"{type(error).__name__}: {error}"[:3000]})
    finally:
        dispatcher.get_current_device = current_device
    return kernels, failures


def compile_cuda_c_kernels(capability=(9, 0), machine_code=False):
    """The hand-written CUDA C kernels (kernels/*.cu) compiled by NVRTC for ``capability``, no GPU needed; the
    same entries and failures as :func:`compile_kernels`."""
    from gpusim.kernels import cuda_c

    kernels, failures = [], []
    for name, fn in sorted(cuda_c.rules_with_cuda_c().items()):
        label = f"{fn.__module__}.{name} (CUDA C)"
        try:
            cubin, log = cuda_c.compile_program(fn, capability)
            kernels.append({"kernel": label, "cubin_bytes": len(cubin), **cuda_c.ptxas_resources(log, name),
                            **({"cubin": bytes(cubin)} if machine_code else {})})
        except Exception as error:  # reported with the compiler's own message
            failures.append({"kernel": label, "error": f"{type(error).__name__}: {error}"[:3000]})
    return kernels, failures


_SHARED_ATOMIC_64 = re.compile(r"\batom\.shared\S*\.[a-z]+\.[usbf]64\b")
_DIVISION_64 = re.compile(r"\b(?:div|rem)\.[su]64\b")  # a library routine of dozens of instructions on the GPU
_PTX_PARAMETER = re.compile(r"\.param\s+(?:\.align\s+\d+\s+)?\.[a-z]+?(\d+)\s+[\w$]+(?:\[(\d+)\])?")


def ptx_parameter_bytes(ptx):
    """The size in bytes of each parameter of the first kernel (``.entry``) in ``ptx``, in order."""
    start = ptx.index(".entry")
    declared = ptx[ptx.index("(", start) : ptx.index(")", start)]
    return [int(bits) // 8 * int(count or 1) for bits, count in _PTX_PARAMETER.findall(declared)]


def _labels(signatures):
    """A name for each launch: the rule (counted or not), and where a rule is launched with arguments of
    different types (a gather of each column dtype), the first argument type in which they differ."""
    labels = [f"{module}.{name}{' (counted)' if counted else ''}" for module, name, counted, _ in signatures]
    for label in set(labels):
        same = [k for k, other in enumerate(labels) if other == label]
        if len(same) > 1:
            types = [signatures[k][3] for k in same]
            where = next(a for a in range(len(types[0])) if len({str(t[a]) for t in types}) > 1)
            for k, argument_types in zip(same, types):
                labels[k] = f"{label} [{argument_types[where]}]"
    return labels


def machine_code_resources(ptx, capability, machine_code=False):
    """Link ``ptx`` into machine code for ``capability`` with nvJitLink; what ptxas reports a kernel uses (and with
    ``machine_code``, the machine code itself, ``cubin``)."""
    from cuda.bindings import nvjitlink

    from gpusim.kernels.cuda_c import ptxas_resources

    handle = nvjitlink.create(2, [f"-arch=sm_{capability[0]}{capability[1]}", "-verbose"])
    try:
        data = ptx.encode()
        try:
            nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel")
            nvjitlink.complete(handle)
        except nvjitlink.nvJitLinkError as error:
            log = bytearray(nvjitlink.get_error_log_size(handle))
            nvjitlink.get_error_log(handle, log)
            raise RuntimeError(f"nvJitLink: {error}: {log.decode(errors='replace')}") from None
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
        cubin_bytes = nvjitlink.get_linked_cubin_size(handle)
        kept = {}
        if machine_code:
            cubin = bytearray(cubin_bytes)
            nvjitlink.get_linked_cubin(handle, cubin)
            kept["cubin"] = bytes(cubin)
    finally:
        nvjitlink.destroy(handle)
    return {"cubin_bytes": cubin_bytes, **ptxas_resources(log.decode(errors="replace")), **kept}


def disassemble(cubin):
    """The machine code (SASS) of ``cubin`` as text, by ``cuobjdump -sass`` (CUDA's, or Triton's wheel's; it needs
    ``nvdisasm`` beside it): RuntimeError naming what is missing."""
    import shutil
    import subprocess
    import tempfile

    tool = shutil.which("cuobjdump")
    if tool is None:
        raise RuntimeError("no cuobjdump on the PATH (the CUDA toolkit's, or triton/backends/nvidia/bin from "
                           "Triton's wheel, with nvdisasm beside it)")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        done = subprocess.run([tool, "-sass", f.name], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump -sass failed: {done.stderr.strip()[-500:]}")
    return done.stdout


# an instruction of cuobjdump's listing: its address, then its predicate if it has one (@P0, @!UP1), then its name
_SASS_INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w*\s+)?(\S+)", re.MULTILINE)


def sass_summary(sass):
    """What a kernel's machine code (``cuobjdump -sass``) does that costs more than it reads: its instructions,
    compare-and-swap loops (a 64-bit atomic in shared memory: ``ATOMS.CAST``, ``ATOMS.CAS``), the library
    routines it calls (64-bit integer division, double division and square root), and its local-memory
    loads and stores (spilled or stacked values)."""
    operations = _SASS_INSTRUCTION.findall(sass)
    return {
        "instructions": len(operations),
        "cas_loops": sum(1 for name in operations if name.startswith("ATOMS.CAS")),
        "routines": sorted(set(re.findall(r"Function : (__cuda_\w+)", sass))),
        "local_accesses": sum(1 for name in operations if name.split(".")[0] in ("LDL", "STL")),
    }


def resources_markdown(kernels, capability, threads_per_block):
    """The table of :func:`compile_kernels`' kernels, fewest warps busy first."""
    known = tuple(capability) == (9, 0)
    rows = []
    for entry in kernels:
        share, limit = occupancy(entry["registers"], entry["shared_bytes"], threads_per_block) if known else (None, "")
        rows.append((share if share is not None else 1.0, entry["kernel"], entry, limit))
    machine = any("sass" in entry for entry in kernels)
    lines = [
        f"### Kernel resources, {datetime.date.today().isoformat()}",
        "",
        f"Compiled for compute capability {capability[0]}.{capability[1]} with no GPU (numba-cuda "
        f"{_numba_cuda_version()} NVVM, then nvJitLink); occupancy at {threads_per_block} threads a block"
        f"{'' if known else ' (limits known for 9.0 only)'}.  Command: `python benchmarks/kernel_resources.py"
        f"{' --strided' if any(entry['kernel'].endswith('(strided)') for entry in kernels) else ''}"
        f"{' --sass' if machine else ''}`.",
        "",
        "| kernel | registers a thread | shared memory a block (bytes) | spilled (bytes a thread) | stack frame (bytes "
        "a thread) | occupancy | limited by |"
        + (" machine instructions | compare-and-swap loops | routines called | local loads and stores |" if machine
           else ""),
        "|---|---:|---:|---:|---:|---:|---|" + ("---:|---:|---|---:|" if machine else ""),
    ]
    for share, label, entry, limit in sorted(rows, key=lambda row: (row[0], row[1])):
        shown = f"{share:.0%}" if known else "-"
        line = (f"| {label} | {entry['registers']} | {entry['shared_bytes']} | {entry['spill_bytes']} | "
                f"{entry.get('stack_bytes', 0)} | {shown} | {limit} |")
        if machine:
            code = entry.get("sass") or {}
            line += (f" {code.get('instructions', '-')} | {code.get('cas_loops', '-')} | "
                     f"{', '.join(code.get('routines', ())) or '-'} | {code.get('local_accesses', '-')} |")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _numba_cuda_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba-cuda")
    except PackageNotFoundError:
        return "?"


# what benchmarks/profile_step.py asks Nsight Compute for, per kernel launch
NCU_METRICS = {
    "gpu__time_duration.sum": "time",
    "dram__bytes.sum": "dram_bytes",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "dram_pct",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "sm_pct",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "occupancy_pct",
    "sm__maximum_warps_per_active_cycle_pct": "theoretical_pct",
    "launch__registers_per_thread": "registers",
}
_SECONDS = {"ns": 1e-9, "nsecond": 1e-9, "us": 1e-6, "usecond": 1e-6, "ms": 1e-3, "msecond": 1e-3, "s": 1.0,
            "second": 1.0}
_NUMBA_KERNEL = re.compile(r"_gpusim_launch_cuda_(\w+?)_[0-9a-f]{16}")


def kernel_rule(name, rules=None):
    """The rule a kernel of ncu's report runs: a numba launcher's (``_gpusim_launch_cuda_<module>_<rule>...``,
    strided ones marked), a CUDA C kernel's own name (marked), or a cupy kernel's name as it is."""
    if rules is None:
        from gpusim.kernels.launch import launched_rules

        rules = launched_rules()
    found = _NUMBA_KERNEL.search(name)
    if found:
        stem = found.group(1)
        strided = stem.endswith("_strided")
        stem = stem.removesuffix("_strided").removesuffix("_counted")
        rule = max((r for r in rules if stem.endswith("_" + r)), key=len, default=stem)
        return rule + (" (strided)" if strided else "")
    base = name.split("(")[0].strip()
    return f"{base} (CUDA C)" if base in rules else base[:48]


def ncu_table(csv_text, rules=None):
    """Markdown: Nsight Compute's CSV (``--csv --page details`` with :data:`NCU_METRICS`, one row per metric of
    each launch; whatever the profiled program printed before it is skipped) summed per rule, longest first.
    Percentages are averaged over the rule's launches weighted by their time; '' where ncu gave none."""
    import csv
    import io

    lines = csv_text.splitlines()
    start = next((k for k, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return ""
    launches = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        field = NCU_METRICS.get(row.get("Metric Name", ""))
        text = (row.get("Metric Value") or "").replace(",", "")
        if field is None or not text or text == "n/a":
            continue
        value = float(text)
        if field == "time":
            value *= _SECONDS.get((row.get("Metric Unit") or "ns").strip(), 1e-9)
        launch = launches.setdefault(row["ID"], {"rule": kernel_rule(row["Kernel Name"], rules)})
        launch[field] = value
    per_rule = {}
    for launch in launches.values():
        entry = per_rule.setdefault(launch["rule"], {"launches": 0, "time": 0.0, "dram_bytes": 0.0, "weighted": {},
                                                     "registers": set()})
        entry["launches"] += 1
        seconds = launch.get("time", 0.0)
        entry["time"] += seconds
        entry["dram_bytes"] += launch.get("dram_bytes", 0.0)
        for field in ("dram_pct", "sm_pct", "occupancy_pct", "theoretical_pct"):
            if field in launch:
                weighted = entry["weighted"].setdefault(field, [0.0, 0.0])
                weighted[0] += launch[field] * seconds
                weighted[1] += seconds
        if "registers" in launch:
            entry["registers"].add(int(launch["registers"]))
    if not per_rule:
        return ""

    def percent(entry, field):
        total, seconds = entry["weighted"].get(field, (0.0, 0.0))
        return f"{total / seconds:.0f}" if seconds > 0 else ""

    total = sum(entry["time"] for entry in per_rule.values())
    lines = [
        "| kernel | launches | time (us) | share of the step | DRAM moved (MB) | DRAM bandwidth used (%) | "
        "SM issue used (%) | warps resident (%) | most its resources allow (%) | registers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rule, entry in sorted(per_rule.items(), key=lambda item: (-item[1]["time"], item[0])):
        lines.append(
            f"| {rule} | {entry['launches']} | {entry['time'] * 1e6:.1f} | "
            f"{entry['time'] / total * 100 if total else 0:.1f}% | {entry['dram_bytes'] / 1e6:.1f} | "
            f"{percent(entry, 'dram_pct')} | {percent(entry, 'sm_pct')} | {percent(entry, 'occupancy_pct')} | "
            f"{percent(entry, 'theoretical_pct')} | {', '.join(map(str, sorted(entry['registers'])))} |")
    lines.append("")
    lines.append(f"{len(launches)} launches, {total * 1e3:.2f} ms of kernel time in the step (ncu serialises "
                 "launches and times each alone).")
    return "\n".join(lines)
