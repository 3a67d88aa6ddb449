"""Nsight Compute's per-launch report summed per rule (benchmarks/profile_step.py, run under ncu by the GPU
check)."""

import re

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
        from gpusim.kernels.decorators import launched_rules

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
