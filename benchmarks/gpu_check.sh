#!/usr/bin/env bash
# One GPU check, for a machine with an NVIDIA GPU and no network (e.g. the H200 the device tool lends):
# install gpusim from wheels carried with the tree, run the GPU tests, compare GPU and CPU bit for bit on a
# 64^3 scenario over 100 steps, and measure step throughput at 1e6, 1e7 and 1e8 agents, then at 1e9 or the
# most agents below it that the memory preflight lets fit.
# Everything lands in $OUT (default ./gpu_check_out): gpu_check.log, equality.json, throughput.md (and
# bench-AGENTS.json), launch_overhead.json (the host's time per kernel launch, benchmarks/launch_overhead.py),
# with variants variant-NAME.md (.json), equality-NAME.json and variants.md: every rule's time beside the main
# run's; then the variant "best", which runs every rule in the form that ran it fastest among the variants equal to
# the CPU (benchmarks/compare_variants.py --best; GPU_CHECK_BEST=0 skips it), timed like the others; and where ncu
# reads the GPU's counters ncu_step.csv and ncu_step.md: per rule of one step at 1e7 agents, the DRAM bandwidth
# and issue capacity it used and the warps it kept resident (GPU_CHECK_PROFILE=AGENTS, or 0 to skip).
#
# Prepare the wheels here, with network:   make gpu-wheels        (writes .whl/, about 43 MB with the MPI wheels)
# To try other branches in the same run:   make gpu-variant BRANCH=name   (writes .whl-name/, its gpusim wheel),
# carry .whl-name too and set GPU_CHECK_VARIANTS=".whl-name ..." (each variant adds about a minute; in the
# order given, until the budget runs out; ".whl-name@1e6" times that one at 1e6 agents instead of 1e8); a variant
# may also be a setting of the main install: GPU_CHECK_VARIANTS="GPUSIM_CUDA_C=all" runs the hand-written CUDA C
# kernels (kernels/*.cu) in numba's stead, "GPUSIM_CUDA_GRID=all" numba's kernels striding over the cells,
# "GPUSIM_CUDA_C=all+GPUSIM_CUDA_GRID=all" both, and "GPUSIM_CUDA_DIRECT=1@1e6" numba's kernels launched through
# cuda.core (the host's time per launch, which decides the step below 1e7 agents). Branches live only in the session that made them; what should
# wait for a GPU beyond one session goes on main as such a setting.
# Then on the GPU machine, from the repository root:   bash benchmarks/gpu_check.sh
# (with the device tool: carry [".whl"], command "bash benchmarks/gpu_check.sh", timeout 540 s).
# Budget: under 8 minutes on an H200 (GPU_CHECK_BUDGET seconds, default 470, for every stage together); each stage
# has its own time limit so the later ones still run. To leave the variants most of it (the run that decides which
# forms become the defaults): GPU_CHECK_AGENTS=1e6,1e8 GPU_CHECK_OVERHEAD_LAUNCHES=0 GPU_CHECK_LARGEST=0 (the last
# two skip their stages) GPU_CHECK_TEST_TIMEOUT=180 (the GPU tests' limit, default 300 s) GPU_CHECK_BUDGET=540
# GPU_CHECK_VARIANTS="GPUSIM_CUDA_C=all GPUSIM_CUDA_GRID=all GPUSIM_CUDA_DIRECT=1@1e6", with the device tool's
# timeout at 590 s; the variant "best" then times the fastest forms together at 1e8, the figure the new defaults
# would give.
# The MPI stage (two ranks sharing the GPU: tests/split_run.py against one process, then gpusim bench --ranks 1,2)
# needs the mpi4py and mpich wheels among .whl (make gpu-wheels carries them); GPU_CHECK_MPI=0 skips it.
# Rehearsal without a GPU (numba's CUDA simulator, tiny sizes):
#   NUMBA_ENABLE_CUDASIM=1 GPU_CHECK_SKIP_INSTALL=1 PYTHON=.venv/bin/python GPU_CHECK_EDGE=8 GPU_CHECK_STEPS=3 \
#   GPU_CHECK_AGENTS=300 GPU_CHECK_BENCH_STEPS=2 GPU_CHECK_LARGEST=100 GPU_CHECK_OVERHEAD_AGENTS=300 \
#   GPU_CHECK_OVERHEAD_LAUNCHES=2 GPU_CHECK_MPI_STEPS=6 GPU_CHECK_MPI_CELLS=300 GPU_CHECK_MPI_AGENTS=2e4 \
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
AGENTS="${GPU_CHECK_AGENTS:-1e6,1e7,1e8}"
EDGE="${GPU_CHECK_EDGE:-64}"
STEPS="${GPU_CHECK_STEPS:-100}"
# PYTHONSAFEPATH: python -m and python - would otherwise put the repository root first on sys.path, and its gpusim/
# folder (which has no kernels/ inside; the wheel maps them in) would shadow the installed package.
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONSAFEPATH=1
WHEELS="${GPU_CHECK_WHEELS:-.whl}"
SITE="${GPU_CHECK_SITE:-/tmp/gpusim-site}"
export GPUSIM_CACHE_DIR="${GPUSIM_CACHE_DIR:-/tmp/gpusim-cache}"
PY="${PYTHON:-python3}"
started=$(date +%s)
BUDGET="${GPU_CHECK_BUDGET:-470}"  # seconds for every stage together; the later ones take what is left
stage() { echo; echo "=== $1 ($(( $(date +%s) - started )) s)"; }
left() { echo $(( BUDGET - ($(date +%s) - started) )); }
install() {  # install TARGET WHEEL...: the wheels into the folder TARGET, offline
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@"
}

{
stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
"$PY" --version

stage "install gpusim from $WHEELS/"
if [ -n "${GPU_CHECK_SKIP_INSTALL:-}" ]; then
    echo "skipped (GPU_CHECK_SKIP_INSTALL): using $PY as it is"
elif ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    install "$SITE" "$WHEELS"/*.whl || { echo "installing the wheels failed"; exit 1; }
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "no $WHEELS/ folder: run 'make gpu-wheels' where there is network and carry .whl"; exit 1
fi
"$PY" - <<'PY'
import cupy, numba, numpy, gpusim
from numba import cuda
from gpusim.backend import cuda_problem, select
print("gpusim", gpusim.__version__, "from", gpusim.__path__[0], "| numpy", numpy.__version__, "| numba", numba.__version__,
      "| cupy", cupy.__version__)
print("CUDA usable:", cuda_problem() or "yes", "| backend auto ->", select().label)
PY

stage "numba's on-disk cache of CUDA kernels (GPUSIM_CUDA_CACHE)"
# Every process of this check compiles the same kernels; with the cache on, the first saves them and the others
# load them. Kept only if a second process loads every kernel the first compiled, with no error; the GPU tests and
# the equality stage below then run the cached kernels.
cache_probe() {
    GPUSIM_CUDA_CACHE=1 timeout 100 "$PY" - <<'PY'
from gpusim import bench
from gpusim.backend import select
from gpusim.kernels import codegen
bench.compile_rules(select("cuda"))  # the set-up, step, compaction and sort of a small benchmark run
kernels = [kernel for (_fn, target, *_form), kernel in codegen._launchers.items() if target == "cuda"]
hits = sum(sum(kernel.stats.cache_hits.values()) for kernel in kernels)
misses = sum(sum(kernel.stats.cache_misses.values()) for kernel in kernels)
print(f"{len(kernels)} kernels: {hits} loaded from the cache, {misses} compiled")
PY
}
first=$(cache_probe 2>&1 | tail -1); echo "first process: $first"
second=$(cache_probe 2>&1 | tail -1); echo "second process: $second"
if [[ "$second" =~ ^[0-9]+\ kernels:\ [1-9][0-9]*\ loaded\ from\ the\ cache,\ 0\ compiled$ ]]; then
    export GPUSIM_CUDA_CACHE=1; echo "GPUSIM_CUDA_CACHE=1 for the rest of the check"
else
    echo "the cache does not serve here: every process compiles its kernels"
fi

stage "GPU tests (tests/test_gpu.py)"
timeout "${GPU_CHECK_TEST_TIMEOUT:-300}" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m "not without_gpu" \
    tests/test_gpu.py -rs
echo "pytest exit status: $?"

stage "GPU vs CPU, ${EDGE}^3, $STEPS steps"
timeout 150 "$PY" benchmarks/gpu_equality.py --edge "$EDGE" --steps "$STEPS" --json "$OUT/equality.json"
echo "equality exit status: $?"

if [ "${GPU_CHECK_MPI:-1}" != 0 ]; then
    # issue 24: two MPI ranks sharing the GPU step one run as one process does, and what the exchange costs there
    stage "2 MPI ranks on the GPU: bit for bit against one process, then scaling at ${GPU_CHECK_MPI_AGENTS:-1e6} agents"
    mpiexec="$SITE/bin/mpiexec"  # the mpich wheel's, installed with the others
    [ -x "$mpiexec" ] || mpiexec=$(command -v mpiexec || true)
    if [ -z "$mpiexec" ]; then
        echo "no mpiexec (carry the mpich and mpi4py wheels: make gpu-wheels): skipped"
    else
        mkdir -p "$OUT/split"
        GPUSIM_BACKEND=cuda timeout 150 "$mpiexec" -n 2 "$PY" tests/split_run.py "$OUT/split" \
            "${GPU_CHECK_MPI_STEPS:-20}" ${GPU_CHECK_MPI_CELLS:-}
        echo "split run exit status: $?"; cat "$OUT/split/result.json" 2>/dev/null; echo
        PATH="$(dirname "$mpiexec"):$PATH" timeout 150 "$PY" -m gpusim bench --ranks 1,2 \
            --agents "${GPU_CHECK_MPI_AGENTS:-1e6}" --steps "${GPU_CHECK_BENCH_STEPS:-10}" --json "$OUT/scaling.json"
        echo "bench --ranks exit status: $?"
    fi
fi

stage "throughput, agents $AGENTS"
# one process per size, each adding its own table, so a size cut short by its time limit loses only itself
for agents in ${AGENTS//,/ }; do
    limit=$(( $(left) - 60 ))
    [ "$limit" -gt 150 ] && limit=150
    [ "$limit" -lt 30 ] && { echo "no time left for $agents agents"; break; }
    timeout "$limit" "$PY" -m gpusim bench --backend cuda --kernels --agents "$agents" \
        --steps "${GPU_CHECK_BENCH_STEPS:-20}" --record "$OUT/throughput.md" --json "$OUT/bench-$agents.json"
    echo "bench $agents exit status: $? (limit $limit s)"
done

if [ "${GPU_CHECK_OVERHEAD_LAUNCHES:-200}" != 0 ]; then
    stage "host time per launch at ${GPU_CHECK_OVERHEAD_AGENTS:-1e6} agents (benchmarks/launch_overhead.py)"
    timeout 90 "$PY" benchmarks/launch_overhead.py --agents "${GPU_CHECK_OVERHEAD_AGENTS:-1e6}" \
        --launches "${GPU_CHECK_OVERHEAD_LAUNCHES:-200}" --json "$OUT/launch_overhead.json"
    echo "launch overhead exit status: $?"
fi

# Variants: gpusim wheels built from other branches (make gpu-variant BRANCH=name writes .whl-name/; carry it
# and list it in GPU_CHECK_VARIANTS), each installed over the dependencies above, compared with the CPU and
# timed at one size; one report per variant, $OUT/variant-NAME.md.
# A variant may instead be settings of the main install, NAME=VALUE joined by + (GPUSIM_CUDA_C=all: the
# hand-written CUDA C kernels; GPUSIM_CUDA_GRID=all: numba's kernels striding over the cells;
# GPUSIM_CUDA_DIRECT=1: numba's kernels launched through cuda.core), with the same
# optional @AGENTS; its report is $OUT/variant-NAME-VALUE.md (= as -, commas as dots, + as _and_, any other
# character but letters, digits, _ . - as _).
run_variant() {  # run_variant SPEC [NAME [RESERVE]]: the variant's equality run and its throughput, if more than
    # RESERVE seconds (default 0) would be left after it; status 1 when out of time
    local spec=$1 variant=${1%@*} variant_agents=${GPU_CHECK_VARIANT_AGENTS:-1e8} name site report against
    local -a setting=()
    [ "$spec" != "$variant" ] && variant_agents=${spec##*@}
    if [[ "$variant" == *=* ]]; then
        name=$(printf %s "$variant" | sed 's/=/-/g; s/,/./g; s/+/_and_/g; s/[^A-Za-z0-9_.-]/_/g'); IFS=+ read -r -a setting <<< "$variant"
        site=""
    else
        name=$(basename "$variant"); name=${name#.whl-}; site="$SITE-$name"
    fi
    name=${2:-$name}
    report="$OUT/variant-$name.md"
    [ "$(left)" -lt $(( 120 + ${3:-0} )) ] && { echo "no time left for variant $name"; return 1; }
    stage "variant $name ($variant): GPU vs CPU on ${EDGE}^3 over $STEPS steps, throughput at $variant_agents agents"
    if [ -n "$site" ]; then
        install "$SITE-$name" "$variant"/gpusim-*.whl || { echo "installing $variant failed"; return 0; }
    fi
    with_variant() {  # run "$@" with the variant's wheel first on the path, or its setting
        local path="${PYTHONPATH:-}"
        [ -n "$site" ] && path="$site${path:+:$path}"
        env "${setting[@]}" PYTHONPATH="$path" "$@"
    }
    with_variant "$PY" -c "import gpusim; from gpusim.backend import select; print('gpusim from', gpusim.__path__[0], '|', select('cuda').label)"
    # against the CPU digests of the equality stage above when it finished: the variant's GPU alone runs, and the
    # CPU rules are not compiled again for the variant's sources
    against=(); [ -s "$OUT/equality.json" ] && against=(--against "$OUT/equality.json")
    with_variant timeout 150 "$PY" benchmarks/gpu_equality.py --edge "$EDGE" --steps "$STEPS" \
        "${against[@]}" --json "$OUT/equality-$name.json"
    echo "variant $name equality exit status: $?"
    { echo "### $name: GPU vs CPU"; echo; cat "$OUT/equality-$name.json" 2>/dev/null; echo; } >> "$report"
    with_variant timeout 120 "$PY" -m gpusim bench --backend cuda --kernels \
        --agents "$variant_agents" --steps "${GPU_CHECK_BENCH_STEPS:-20}" --record "$report" \
        --json "$OUT/variant-$name.json"
    echo "variant $name bench exit status: $?"
}
best_reserve=0; [ "${GPU_CHECK_BEST:-1}" != 0 ] && best_reserve=120  # the variant best keeps its time
for spec in ${GPU_CHECK_VARIANTS:-}; do
    run_variant "$spec" "" "$best_reserve" || break
done
# the forms that ran each rule fastest, among the variants equal to the CPU, timed together (GPU_CHECK_BEST=0 skips)
if [ "${GPU_CHECK_BEST:-1}" != 0 ] && ls "$OUT"/variant-*.json >/dev/null 2>&1; then
    best=$("$PY" benchmarks/compare_variants.py "$OUT" --best)
    echo "fastest forms rule by rule: ${best:-none}"
    [ -n "$best" ] && run_variant "$best" best
fi
if ls "$OUT"/variant-*.json >/dev/null 2>&1; then
    stage "variants beside the main run, rule by rule (benchmarks/compare_variants.py)"
    "$PY" benchmarks/compare_variants.py "$OUT" --record "$OUT/variants.md"
fi

if [ "${GPU_CHECK_PROFILE:-1e7}" != 0 ] && [ "$(left)" -gt 100 ]; then
    stage "one step at ${GPU_CHECK_PROFILE:-1e7} agents under Nsight Compute (benchmarks/profile_step.py)"
    if command -v ncu >/dev/null; then
        timeout 100 ncu --profile-from-start off --clock-control none --print-units base --csv --page details \
            --metrics "$("$PY" benchmarks/profile_step.py --metrics)" \
            "$PY" benchmarks/profile_step.py --agents "${GPU_CHECK_PROFILE:-1e7}" > "$OUT/ncu_step.csv"
        echo "ncu exit status: $?"
        "$PY" benchmarks/profile_step.py --summarize "$OUT/ncu_step.csv" --record "$OUT/ncu_step.md"
    else
        echo "no ncu on the PATH"
    fi
fi

remaining=$(left)
if [ "$remaining" -gt 60 ] && [ "${GPU_CHECK_LARGEST:-1e9}" != 0 ]; then
    stage "throughput at the most agents that fit, up to ${GPU_CHECK_LARGEST:-1e9} ($remaining s left)"
    timeout "$remaining" "$PY" - "$OUT/throughput.md" "${GPU_CHECK_LARGEST:-1e9}" <<'PY'
import sys
from gpusim import bench
from gpusim.backend import select
from gpusim.config import validate
from gpusim.engine import memory_needed
backend = select("cuda")
available = backend.memory_available()
largest = int(float(sys.argv[2]))
fits = lambda agents: memory_needed(validate(bench.scenario(agents, 10))) <= 0.9 * available  # noqa: E731
agents = largest
while agents > 1000 and not fits(agents):
    agents = agents * 9 // 10
print(f"{largest:.0e} agents need {memory_needed(validate(bench.scenario(largest, 10))) / 2**30:.1f} GiB, "
      f"{available / 2**30:.1f} GiB free: measuring {agents:.2e} agents")
import argparse
rows = bench.run([agents], steps=10, backend_name="cuda")
bench.record(sys.argv[1], bench.markdown(rows, argparse.Namespace(agents=f"{agents:.3g}", steps=10, backend="cuda")))
PY
fi
stage "done"
} 2>&1 | tee "$LOG"
