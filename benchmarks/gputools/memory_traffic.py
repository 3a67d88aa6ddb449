"""The device-memory traffic of a step, rule by rule: the floor a GPU's bandwidth puts under the step's time.

A GPU moves device memory in 32-byte sectors.  Running a step's launches as
plain Python on recording arrays (the rules are plain Python functions; see
:mod:`gpusim.kernels.codegen`) gives every sector each index reads or writes,
and from them, per launch:

* the footprint: the distinct sectors read, plus those written (a sector both
  read and written crosses twice).  At the sizes where bandwidth matters the
  agent table and the lattice are gigabytes against an L2 cache of tens of
  megabytes, so every sector of the footprint crosses between the chip and
  its DRAM at least once: footprint / bandwidth is a floor under the launch's
  time that no kernel, numba's or hand-written, can beat;
* the warp sectors: the distinct sectors of each warp of 32 consecutive
  indices, summed (reads plus writes likewise): what the warps ask of the
  memory system when no warp finds another's sectors in a cache.  Where it
  is far above the footprint (the neighbour scans), reuse through the caches
  decides how close a kernel comes to the floor.

Arrays smaller than both the launch's extent and 64 KiB (the parameter
vector, the tables of chances: their size does not grow with the run) are
read by every thread and stay in the caches; they are not counted.  The tally a
tallying rule adds to lives in the block's shared memory on the GPU and is not
counted either; neither are the few whole-table cupy operations of a step
(the prefix sums of births and compaction, the step's ledger).  What the tally
costs instead is counted apart: its adds, each an atomic in shared memory
where the lanes of a warp adding to one counter take turns, and the counters
each warp adds to (what the adds come to when a warp's lanes sum first, as the
CUDA C census does).

Per agent, the footprint of a local rule does not depend on the size of the
run, so the figures of a small run scaled to 1e8 agents give the floor of the
step there, and the ceiling on agent-steps/s that the bandwidth allows for the
step as its rules are written.
"""

import bisect
from collections import defaultdict

import numpy as np

from gpusim.kernels.codegen import ghost_gate
from gpusim.kernels.cpu_launcher import Count
from gpusim.kernels.decorators import Fused, rule_parameters, tally_size

SECTOR_BYTES = 32  # the unit in which a GPU's L2 cache and DRAM exchange data
WARP = 32  # threads of one warp: consecutive indices of a launch
CACHED_BYTES = 64 * 1024  # arrays smaller than this stay in the caches (parameters, tables of chances)
H200_BANDWIDTH = 4.8e12  # bytes/s: an H200's HBM3e, its data sheet's peak


class _Sectors:
    """The sectors read and written by one launch: in total (distinct) and per warp (distinct within each)."""

    def __init__(self):
        self.read, self.written = set(), set()
        self.warp_read, self.warp_written = set(), set()
        self.warp_sectors = 0
        self.tally_adds = 0  # adds to the tally's counters (shared-memory atomics on the GPU)
        self.warp_counters = set()  # the counters the warp now running adds to
        self.warp_tally_adds = 0  # the adds, were each warp's lanes to sum per counter first
        self.arrays = []  # (first sector, sector past the last, parameter name) of every recorded array

    def end_warp(self):
        self.warp_sectors += len(self.warp_read) + len(self.warp_written)
        self.read |= self.warp_read
        self.written |= self.warp_written
        self.warp_read, self.warp_written = set(), set()
        self.warp_tally_adds += len(self.warp_counters)
        self.warp_counters = set()

    @property
    def footprint(self):
        return len(self.read) + len(self.written)

    def footprint_by_array(self):
        """``{parameter name: footprint sectors}``: the footprint split among the arrays the sectors lie in (a
        sector two arrays share counts for the first)."""
        by_array = defaultdict(int)
        arrays = sorted(self.arrays)
        starts = [first for first, _, _ in arrays]
        for sectors in (self.read, self.written):
            for sector in sectors:
                at = bisect.bisect_right(starts, sector) - 1
                if at >= 0 and sector < arrays[at][1]:
                    by_array[arrays[at][2]] += 1
        return dict(by_array)


class RecordedArray:
    """A copy of ``array`` that notes into ``sectors`` the 32-byte sector of every element read or written, at
    the address ``array`` itself has: the sectors the launch would touch on the device, the array given left
    as it was."""

    __slots__ = ("array", "address", "strides", "shape", "sectors")

    def __init__(self, array, sectors, name=None):
        self.array = array.copy()
        self.address = array.__array_interface__["data"][0]
        self.strides = array.strides
        self.shape = array.shape
        self.sectors = sectors
        if name is not None and array.size:
            reach = [(extent - 1) * stride for extent, stride in zip(array.shape, array.strides)]  # negative strides
            low = self.address + sum(min(0, offset) for offset in reach)
            high = self.address + sum(max(0, offset) for offset in reach)
            sectors.arrays.append((low // SECTOR_BYTES, (high + array.itemsize - 1) // SECTOR_BYTES + 1, name))

    def _sector(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        offset = 0
        for index, stride, extent in zip(key, self.strides, self.shape):
            index = int(index)
            offset += (index + extent if index < 0 else index) * stride
        return (self.address + offset) // SECTOR_BYTES

    def __getitem__(self, key):
        self.sectors.warp_read.add(self._sector(key))
        return self.array[key]

    def __setitem__(self, key, value):
        self.sectors.warp_written.add(self._sector(key))
        self.array[key] = value

    def __len__(self):
        return len(self.array)

    def __getattr__(self, name):  # dtype, ndim, ...
        return getattr(self.array, name)


class RecordedTally:
    """A tally (int64 counters) that notes into ``sectors`` every add to it and the counters each warp adds to."""

    __slots__ = ("counters", "sectors")

    def __init__(self, size, sectors):
        self.counters = np.zeros(size, dtype=np.int64)
        self.sectors = sectors

    def __getitem__(self, slot):
        return self.counters[slot]

    def __setitem__(self, slot, value):  # tally_add's `tally[slot] += amount`
        self.sectors.tally_adds += 1
        self.sectors.warp_counters.add(int(slot))
        self.counters[slot] = value

    def __len__(self):
        return len(self.counters)


def launch_sectors(fn, n, args, ghosts=None):
    """Run launch ``fn`` (a rule or a fused launch) over ``n`` indices (an int or a Count) as plain Python on
    copies of ``args``; returns its :class:`_Sectors`.  The arrays given are left as they were.  With
    ``ghosts`` (the launchers' argument, kernels.cpu_launcher), a tallying launch also reads each index's GHOST
    flag before the rule runs, as its kernel does."""
    extent = min(n.bound, int(n.live[0])) if isinstance(n, Count) else int(n)
    sectors = _Sectors()
    recorded = []
    for name, value in zip(rule_parameters(fn), args):
        if isinstance(value, np.ndarray) and (value.size >= extent or value.nbytes >= CACHED_BYTES):
            value = RecordedArray(value, sectors, name)
        elif isinstance(value, np.ndarray):
            value = value.copy()
        recorded.append(value)
    rules = fn.rules if isinstance(fn, Fused) else (fn,)
    given = dict(zip(rule_parameters(fn), recorded))
    calls = []
    for r in rules:
        arguments = [given[p] for p in rule_parameters(r)]
        if tally_size(r):
            arguments.append(RecordedTally(tally_size(r), sectors))  # shared memory on the GPU: apart
        calls.append((r, arguments))
    gate, offset = None, 0
    if ghosts is not None and tally_size(fn):
        flags, offset = ghosts
        gate = given["state"] if ghost_gate(fn) == "state" else RecordedArray(flags, sectors, "ghost_flags")
    with np.errstate(over="ignore"):  # the hash's uint64 arithmetic wraps by design (silent on the devices)
        for i in range(extent):
            if gate is not None:
                gate[offset + i]  # noqa: B018 - a read the model records
            for r, arguments in calls:
                r(i, *arguments)
            if i % WARP == WARP - 1:
                sectors.end_warp()
    sectors.end_warp()
    return sectors


def step_traffic(sim, steps=1, echo=print):
    """Run ``steps`` steps of ``sim`` (a CPU simulation), recording the sectors of every launch as it is made
    (the run itself goes on exactly as without); returns ``{launch name: [launches, footprint sectors, warp
    sectors, tally adds, tally adds summed per warp, {parameter name: footprint sectors}]}`` summed over the
    steps."""
    if sim.backend.xp is not np:
        raise ValueError("the traffic of a step is recorded on the CPU backend (its arrays are host memory)")
    totals = defaultdict(lambda: [0, 0, 0, 0, 0, defaultdict(int)])
    launch = sim.launch

    def recording_launch(fn, n, *args, **options):
        sectors = launch_sectors(fn, n, args, options.get("ghosts"))
        row = totals[fn.__name__]
        row[0] += 1
        row[1] += sectors.footprint
        row[2] += sectors.warp_sectors
        row[3] += sectors.tally_adds
        row[4] += sectors.warp_tally_adds
        for name, count in sectors.footprint_by_array().items():
            row[5][name] += count
        return launch(fn, n, *args, **options)

    sim.launch = sim.backend.launch = recording_launch  # the engine's launches, and the table's own
    try:
        for step in range(steps):
            sim.step()
            echo(f"  recorded step {step + 1} of {steps} ({sim.state.n:,} cells)")
    finally:
        sim.launch = sim.backend.launch = launch
    return dict(totals)


def traffic_table(totals, agents, steps, scale_to=1e8, bandwidth=H200_BANDWIDTH):
    """Rows of the traffic per step, largest footprint first: bytes per agent (footprint, warp sectors), the
    floor in ms at ``scale_to`` agents moving the footprint at ``bandwidth`` bytes/s, and tally adds per agent
    (as written, and with each warp's lanes summing per counter first); and the step's."""
    rows = []
    for name, (launches, footprint, warp, adds, warp_adds, _by_array) in totals.items():
        footprint_bytes = footprint * SECTOR_BYTES / agents / steps
        warp_bytes = warp * SECTOR_BYTES / agents / steps
        rows.append({
            "launch": name, "launches": launches / steps, "footprint_bytes": footprint_bytes,
            "warp_bytes": warp_bytes, "floor_ms": footprint_bytes * scale_to / bandwidth * 1e3,
            "tally_adds": adds / agents / steps, "warp_tally_adds": warp_adds / agents / steps,
        })
    rows.sort(key=lambda row: -row["footprint_bytes"])
    step = {key: sum(row[key] for row in rows)
            for key in ("launches", "footprint_bytes", "warp_bytes", "floor_ms", "tally_adds", "warp_tally_adds")}
    step["agent_steps_per_s"] = scale_to / (step["floor_ms"] / 1e3)
    return rows, step


def array_table(totals, agents, steps):
    """Rows of the footprint per step by the array it lies in (the rules' parameter names: a column, a scratch
    array, the occupancy grid), largest first: bytes per agent, and the launches that move it, largest first."""
    by_array = defaultdict(dict)
    for launch, row in totals.items():
        for name, sectors in row[5].items():
            by_array[name][launch] = sectors * SECTOR_BYTES / agents / steps
    rows = [{"array": name, "bytes": sum(launches.values()),
             "launches": sorted(launches.items(), key=lambda item: (-item[1], item[0]))}
            for name, launches in by_array.items()]
    rows.sort(key=lambda row: (-row["bytes"], row["array"]))
    return rows


def array_markdown(rows):
    lines = ["| array | footprint (bytes/agent) | launches moving it (bytes/agent) |", "|---|---:|---|"]
    for row in rows:
        launches = ", ".join(f"{launch} {amount:.1f}" for launch, amount in row["launches"] if amount >= 0.05)
        lines.append(f"| {row['array']} | {row['bytes']:.1f} | {launches} |")
    return "\n".join(lines)


def markdown(rows, step, agents, scale_to=1e8, bandwidth=H200_BANDWIDTH):
    lines = [
        f"| launch | launches a step | footprint (bytes/agent) | warp sectors (bytes/agent) | floor at "
        f"{scale_to:.0e} agents (ms) | tally adds (per agent) | summed per warp first |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [*rows, {**step, "launch": "**the step**"}]:
        lines.append(f"| {row['launch']} | {row['launches']:g} | {row['footprint_bytes']:.1f} | "
                     f"{row['warp_bytes']:.1f} | {row['floor_ms']:.2f} | {row['tally_adds']:.3f} | "
                     f"{row['warp_tally_adds']:.3f} |")
    lines.append("")
    lines.append(f"Recorded on {agents:,} agents; the floor moves the footprint at {bandwidth / 1e12:.1f} TB/s. "
                 f"Ceiling for the step as written: {step['agent_steps_per_s']:.2e} agent-steps/s at "
                 f"{scale_to:.0e} agents.")
    return "\n".join(lines)
