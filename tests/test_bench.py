"""gpusim bench: what its table reports (the timings themselves belong in benchmarks/, not here)."""

import copy
import json

import pytest

from gpusim import bench

from conftest import run_script


@pytest.fixture(scope="module")
def rows():
    return bench.run([3000], steps=2, kernels=True, echo=lambda *_: None)


def test_bench_reports_throughput_memory_and_the_slowest_rules(rows):
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


def test_the_gpu_checks_variants_are_set_beside_its_main_run_rule_by_rule(rows, tmp_path):
    """benchmarks/compare_variants.py on what gpu_check.sh leaves: the main run's JSON (gpusim bench --json) and a
    variant's, one rule twice as fast and one half as fast; an equality report on its way is not a variant."""
    bench.write_json(tmp_path / "bench-3000.json", rows)
    variant = copy.deepcopy(rows)
    variant[0]["backend"] = "cpu (as a variant)"
    variant[0]["rules_ms"]["census"] = rows[0]["rules_ms"]["census"] / 2
    variant[0]["rules_ms"]["die"] = rows[0]["rules_ms"]["die"] * 2 + 1
    variant[0]["median_step_ms"] = rows[0]["median_step_ms"] + 1
    bench.write_json(tmp_path / "variant-GPUSIM_CUDA_GRID-all.json", variant)
    (tmp_path / "variant-GPUSIM_CUDA_GRID-all.md.json").write_text("{}")
    out = tmp_path / "variants.md"
    result = run_script("../benchmarks/compare_variants.py", tmp_path, "--record", out)
    assert result.returncode == 0, result.stderr[-2000:]
    table = out.read_text()
    assert table.strip() == result.stdout.strip()
    assert json.loads((tmp_path / "bench-3000.json").read_text())["rows"][0]["rules_ms"] == rows[0]["rules_ms"]
    assert f"| main: {rows[0]['backend']} | GPUSIM_CUDA_GRID-all: cpu (as a variant) |" in table
    census = rows[0]["rules_ms"]["census"]
    assert f"| census | {census:.2f} | **{census / 2:.2f}** |" in table
    die = rows[0]["rules_ms"]["die"]
    assert f"| die | **{die:.2f}** | {die * 2 + 1:.2f} |" in table
    faster = table.split("at least 5% faster in ")[1].split(".\n")[0].split(", ")
    assert "census" in faster and "die" not in faster
    assert f"| median step (ms) | **{rows[0]['median_step_ms']:.2f}** |" in table
    alone = tmp_path / "alone"
    alone.mkdir()
    bench.write_json(alone / "bench-3000.json", rows)
    refused = run_script("../benchmarks/compare_variants.py", alone)
    assert refused.returncode != 0 and "no variant" in refused.stderr
