"""Registers, shared memory, spills and occupancy of every CUDA kernel a run launches, without a GPU.

    python benchmarks/kernel_resources.py [--capability 9.0] [--threads 256] [--strided] [--sass] [--record FILE]

Runs the small scenario of tests/trace_run.py in numba's CUDA simulator to learn every launch and the
types of its arguments, compiles each kernel for the GPU by numba-cuda's NVVM and nvJitLink, as a GPU
would (benchmarks/gpu_check.sh has the timings), and the hand-written CUDA C kernels (kernels/*.cu) by NVRTC,
and prints a table: what ptxas says each kernel uses,
and the share of an H100/H200 multiprocessor's warps it can keep busy (occupancy) at the launcher's
block size, with what limits it.  A kernel far below full occupancy has fewer warps to hide memory
latency with; spills put registers in (slow) local memory.  Only compute capability 9.0's limits are
known to the occupancy column.  With ``--strided``, also every numba kernel's form that strides over its
indices (``GPUSIM_CUDA_GRID``): what the loop costs in registers.  With ``--sass``, each kernel's machine
code is also disassembled (``cuobjdump -sass``, which needs ``nvdisasm`` beside it: the CUDA toolkit's, or
the two in ``triton/backends/nvidia/bin`` of Triton's wheel, on the PATH) and the table says what it does
that costs more than its loads and stores: its instructions, compare-and-swap loops (a 64-bit atomic in
shared memory), the library routines it calls (64-bit integer division, double division, square root) and
its local-memory accesses (``gputools.compiled.sass_summary``).  That is how the tallies' loops were found.
"""

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

TRACE = Path(__file__).resolve().parent.parent / "tests" / "trace_run.py"


def launches():
    """Every (rule, counted, argument types) the trace scenario launches, learnt in the CUDA simulator."""
    with tempfile.TemporaryDirectory() as folder:
        signatures = Path(folder) / "signatures.pickle"
        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
        result = subprocess.run([sys.executable, str(TRACE), "cuda", "7", "12", str(1 / 14), str(signatures)],
                                env=env, capture_output=True, text=True, cwd=TRACE.parent)
        if result.returncode != 0:
            sys.exit(f"the simulated run failed:\n{result.stderr[-3000:]}")
        with open(signatures, "rb") as f:
            return pickle.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capability", default="9.0", help="compute capability to compile for (default 9.0)")
    parser.add_argument("--threads", type=int, default=256, help="threads a block, as the launcher starts them")
    parser.add_argument("--strided", action="store_true",
                        help="also the kernels' forms that stride over their indices (GPUSIM_CUDA_GRID)")
    parser.add_argument("--sass", action="store_true",
                        help="also disassemble each kernel (cuobjdump -sass) and count what its machine code does")
    parser.add_argument("--record", help="append the table to this Markdown file")
    args = parser.parse_args()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("run without NUMBA_ENABLE_CUDASIM: the simulator compiles nothing")
    from gputools import compiled

    from gpusim import bench

    capability = tuple(int(x) for x in args.capability.split("."))
    signatures = launches()
    kernels, failures = compiled.compile_kernels(signatures, capability, machine_code=args.sass)
    if args.strided:
        strided, strided_failures = compiled.compile_kernels(signatures, capability, strided=True,
                                                          machine_code=args.sass)
        kernels, failures = kernels + strided, failures + strided_failures
    hand_written, hand_failures = compiled.compile_cuda_c_kernels(capability, machine_code=args.sass)
    kernels, failures = kernels + hand_written, failures + hand_failures
    if args.sass:
        try:
            for entry in kernels:
                entry["sass"] = compiled.sass_summary(compiled.disassemble(entry.pop("cubin")))
        except RuntimeError as error:
            sys.exit(f"--sass: {error}")
    for failure in failures:
        print(f"{failure['kernel']}: {failure['error']}", file=sys.stderr)
    text = compiled.resources_markdown(kernels, capability, args.threads)
    print(text)
    if args.record:
        bench.record(args.record, text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
