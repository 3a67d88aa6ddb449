"""gpusim bench: what its table reports (the timings themselves belong in benchmarks/, not here)."""

import copy
import json

import pytest

from gputools import compiled, ncu, variants

from gpusim import bench

from helpers import run_gpusim, run_script


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


def test_a_size_the_lattice_cannot_hold_is_refused_before_any_size_runs():
    result = run_gpusim("bench", "--agents", "1e5,2e9", "--steps", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "lattice.shape: 1710 x 1710 x 1710 is 5,000,211,000 voxels; a lattice holds at most" in lines[0]
    assert "agent-steps" not in result.stdout  # not even the small size ran


def test_a_size_the_memory_cannot_hold_is_refused_before_any_size_runs(monkeypatch):
    """The memory preflight of every size comes before the first is set up (or a kernel compiled)."""
    from gpusim import backend as backends
    from gpusim.config import ConfigError

    monkeypatch.setattr(backends.Backend, "memory_available", lambda self: 2**30)  # a machine of 1 GiB
    monkeypatch.setattr(bench, "compile_rules", lambda *a, **k: pytest.fail("compiled before refusing"))
    with pytest.raises(ConfigError, match="GiB, but cpu .*has 1.0 GiB available"):
        bench.run([1000, 10**7], steps=1, echo=lambda *_: None)


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


def _timed(lattice, median, rules, cuda_c=(), strided=(), direct=False):
    return {"lattice": lattice, "agents": lattice**3 / 2, "median_step_ms": median, "rules_ms": rules,
            "backend": "cuda", "cuda_c": list(cuda_c), "strided": list(strided), "direct": direct}


def test_the_fastest_form_of_every_rule_is_chosen_among_the_variants_equal_to_the_cpu(tmp_path):
    """compare_variants.py --best (gpu_check.sh times what it prints as the variant 'best'): a rule takes the form
    that ran it fastest in a variant whose equality run matched the CPU, where at least 5% faster than the main
    run; direct launches where their variant's step was; a variant that differed from the CPU is never chosen."""
    rules = {"census": 20.0, "choose_partner": 6.0, "die": 1.6, "commit_step": 1.5}
    reports = {
        "main": [_timed(136, 8.0, dict(rules)), _timed(630, 52.0, dict(rules))],
        "c": [_timed(630, 40.0, {**rules, "census": 2.0, "choose_partner": 7.0},
                     cuda_c=("census", "choose_partner"))],
        "grid": [_timed(630, 48.0, {**rules, "census": 15.0, "die": 0.5, "commit_step": 1.45}, strided=list(rules))],
        "direct": [_timed(136, 2.0, dict(rules), direct=True)],
        "wrong": [_timed(630, 1.0, {name: 0.1 for name in rules}, cuda_c=list(rules))],
    }
    equal = {"c", "grid", "direct"}
    assert variants.best_settings(reports, equal) == {
        "GPUSIM_CUDA_C": "census", "GPUSIM_CUDA_GRID": "die", "GPUSIM_CUDA_DIRECT": "1"}
    # the main run's own forms stand where no variant beats them
    reports["main"][1].update(cuda_c=["choose_partner"], strided=["commit_step"])
    assert variants.best_settings(reports, {"grid"}) == {
        "GPUSIM_CUDA_C": "choose_partner", "GPUSIM_CUDA_GRID": "census,commit_step,die", "GPUSIM_CUDA_DIRECT": "0"}
    # the script, on what gpu_check.sh leaves: the equality of each variant beside its timing
    reports["main"][1].update(cuda_c=[], strided=[])
    bench.write_json(tmp_path / "bench-1e6.json", reports["main"][:1])
    bench.write_json(tmp_path / "bench-1e8.json", reports["main"][1:])
    for name in ("c", "grid", "direct", "wrong"):
        bench.write_json(tmp_path / f"variant-{name}.json", reports[name])
        (tmp_path / f"equality-{name}.json").write_text(json.dumps({"equal": name in equal}))
    (tmp_path / "equality-grid.json").write_text('{"equal": tr')  # cut short: not equal
    result = run_script("../benchmarks/compare_variants.py", tmp_path, "--best")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "GPUSIM_CUDA_C=census+GPUSIM_CUDA_GRID=0+GPUSIM_CUDA_DIRECT=1"
    for name in ("c", "direct"):
        (tmp_path / f"equality-{name}.json").write_text(json.dumps({"equal": False}))
    nothing = run_script("../benchmarks/compare_variants.py", tmp_path, "--best")
    assert nothing.returncode == 0 and nothing.stdout == ""  # nothing beats the main run: no variant 'best'


NCU_HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
              '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')


def _ncu_rows(launch, kernel, metrics):
    return [f'"{launch}","7","python3","h","{kernel}","1","7","(256, 1, 1)","(400, 1, 1)","0","9.0",'
            f'"Command line profiler metrics","{name}","{unit}","{value}"' for name, unit, value in metrics]


def test_nsight_computes_report_is_summed_per_rule():
    """benchmarks/profile_step.py --summarize: ncu's CSV (after whatever the program printed) becomes one row per
    rule: numba launchers by the rule in their module's name (strided ones apart), CUDA C kernels by their own,
    cupy's as named; times summed in any unit, percentages weighted by time, 'n/a' left out."""
    numba_kernel = ("_gpusim_launch_cuda_claims_resolve_claim_0123456789abcdef::launch[abi:v1](long long, "
                    "Array<long long, 1, C, mutable, aligned>)")
    strided = "_ZN70_gpusim_launch_cuda_death_die_counted_strided_fedcba98765432106launchB2v1E5Array"
    lines = ["==PROF== Connected to process 7", "profiled one step", NCU_HEADER]
    for launch, kernel, time, dram in ((0, numba_kernel, "1,500", "80"), (1, numba_kernel, "500", "40"),
                                       (2, strided, "2,000", "n/a"), (3, "census", "1", "10"),
                                       (4, "cupy_cumsum__int64_int64", "250", "5")):
        unit = "msecond" if kernel == "census" else "nsecond"
        lines += _ncu_rows(launch, kernel, [("gpu__time_duration.sum", unit, time), ("dram__bytes.sum", "byte", "1,000,000"),
                                            ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "%", dram),
                                            ("launch__registers_per_thread", "register/thread", "40")])
    table = ncu.ncu_table("\n".join(lines), rules={"resolve_claim", "die", "census", "claim_own_voxel"})
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()[2:6]}
    assert list(rows) == ["census (CUDA C)", "die (strided)", "resolve_claim", "cupy_cumsum__int64_int64"]
    assert rows["census (CUDA C)"][2] == "1000.0" and rows["resolve_claim"][1:3] == ["2", "2.0"]
    assert rows["resolve_claim"][5] == "70"  # (80 * 1500 + 40 * 500) / 2000
    assert rows["die (strided)"][5] == "" and rows["resolve_claim"][4] == "2.0"  # MB of DRAM, both launches
    assert "5 launches, 1.00 ms" in table
    assert ncu.ncu_table("==ERROR== Failed to initialize the profiler") == ""


SASS = """
        Function : __cuda_sm20_div_s64
        /*0000*/                   IABS R4, R2 ;
        Function : _ZN6launch
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   ATOMS.CAST.SPIN.64 P0, [R2], R4, R6 ;
        /*0020*/              @!P0 BRA 0x10 ;
        /*0030*/                   STL [R1], R5 ;
        /*0040*/                   LDL R7, [R1+0x4] ;
        /*0050*/               @P1 ATOMS.ADD R3, [R2], R4 ;
        /*0060*/                   CALL.ABS.NOINC 0x0 ;
        /*0070*/                   EXIT ;
"""


def test_a_kernels_machine_code_is_summarised_for_what_costs_more_than_its_loads():
    """kernel_resources.py --sass: instructions (predicated ones too), compare-and-swap loops, the library
    routines called, local-memory accesses; and the resources table gains those columns, with the stack frame."""
    assert compiled.sass_summary(SASS) == {"instructions": 9, "cas_loops": 1, "routines": ["__cuda_sm20_div_s64"],
                                        "local_accesses": 2}
    entry = {"kernel": "gpusim.kernels.census.census", "registers": 44, "shared_bytes": 4032, "spill_bytes": 0,
             "stack_bytes": 0}
    plain = compiled.resources_markdown([entry], (9, 0), 256).splitlines()
    assert plain[-1] == "| gpusim.kernels.census.census | 44 | 4032 | 0 | 0 | 62% | registers |"
    assert plain[-3].count("|") == plain[-1].count("|")
    with_code = compiled.resources_markdown([{**entry, "sass": compiled.sass_summary(SASS)}], (9, 0), 256).splitlines()
    assert with_code[-1].endswith("| registers | 9 | 1 | __cuda_sm20_div_s64 | 2 |")
    assert with_code[-3].count("|") == with_code[-1].count("|") == with_code[-2].count("|")
    from gpusim.kernels import cuda_c

    log = "ptxas info    : Used 45 registers\nptxas         .     104 bytes stack frame, 0 bytes spill stores, 0 bytes"
    assert cuda_c.ptxas_resources(log)["stack_bytes"] == 104


def test_record_keeps_one_current_row_per_backend_and_size_and_journals_the_rest(tmp_path):
    from argparse import Namespace

    from gpusim import bench

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nwords\n\n" + bench.CURRENT_BEGIN + "\n" + bench.CURRENT_HEADER + "\n"
                       "| cuda | 100,000,000 | 52.20 | 1.91e+09 | 125 | H200 | abc | 2026-11-30 | `x` |\n"
                       + bench.CURRENT_END + "\n\nafter\n")

    def rows(ms):
        return [{"backend": "cpu", "agents": n, "median_step_ms": ms, "agent_steps_per_s": n / ms * 1000,
                 "preflight_bytes": 125 * n} for n in (100_000, 1_000_000)]

    args = Namespace(agents=[100_000, 1_000_000], steps=20, fields=False)
    bench.record(results, "first table", rows(40.0), args)
    bench.record(results, "second table", rows(30.0), args)
    text = results.read_text()
    current = text.split(bench.CURRENT_BEGIN)[1].split(bench.CURRENT_END)[0]
    assert current.count("| cpu |") == 2 and "| 30.00 |" in current and "| 40.00 |" not in current
    assert "| cuda | 100,000,000 | 52.20 |" in current  # another backend's row stays
    assert "`gpusim bench --agents 1e5,1e6 --steps 20`" in current
    assert text.startswith("# Benchmark results\n\nwords") and text.rstrip().endswith("after")
    journal = (tmp_path / "JOURNAL.md").read_text()
    assert "first table" in journal and "second table" in journal
