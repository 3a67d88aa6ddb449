"""gpusim bench: what its table reports (the timings themselves belong in benchmarks/, not here)."""

from gpusim import bench


def test_bench_reports_throughput_memory_and_the_slowest_rules():
    rows = bench.run([3000], steps=2, kernels=True, echo=lambda *_: None)
    row = rows[0]
    assert row["agent_steps_per_s"] > 0 and row["held_bytes"] is None  # no device memory pool on the CPU
    assert row["mean_step_ms"] >= row["min_step_ms"] > 0
    assert 100 < row["preflight_bytes"] / row["agents"] < 2000
    rules = row["rules_ms"]
    assert {"choose_partner", "synapse_exchange", "census", "express_and_recover", "die"} <= set(rules)
    assert all(ms >= 0 for ms in rules.values())
    table = bench.markdown(rows)
    assert "| preflight (bytes/agent) |" in table
    slowest = max(rules, key=rules.get)  # which rule that is depends on the machine's load; the table lists it
    assert "slowest rules" in table and f"| {slowest} |" in table
