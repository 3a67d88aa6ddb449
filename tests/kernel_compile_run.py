"""Compile every CUDA kernel a traced run launched, for a real GPU, on a machine without one.

    python tests/kernel_compile_run.py SIGNATURES [MAJOR.MINOR] [strided]

SIGNATURES is what ``tests/trace_run.py ... SIGNATURES`` pickled in numba's
CUDA simulator: each rule's launch with the numba types of its arguments.  The
simulator runs kernels as Python, so it accepts code that numba-cuda's real
compiler refuses; here each launcher is compiled to PTX by NVVM for compute
capability MAJOR.MINOR (default 9.0, the H100 and H200) and linked into that
GPU's machine code by nvJitLink, with no GPU or driver
(:func:`gputools.compiled.compile_kernels`; needs numba-cuda's NVVM, NVRTC and
nvJitLink wheels, ``numba-cuda[cu13]``); with ``strided``, also each kernel's
form that strides over its indices (``GPUSIM_CUDA_GRID``).  It proves that the kernels compile,
not what they compute: only a GPU shows that.  Prints one JSON line: the
kernels compiled (with what each uses) and the failures with the compiler's
message.  Must run without NUMBA_ENABLE_CUDASIM.
"""

import json
import pickle
import sys


def main():
    import helpers  # noqa: F401  (puts benchmarks/, where gputools lives, on the path)
    from gputools.compiled import compile_kernels

    capability = tuple(int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "9.0").split("."))
    with open(sys.argv[1], "rb") as f:
        signatures = pickle.load(f)
    compiled, failures = compile_kernels(signatures, capability)
    if "strided" in sys.argv[3:]:
        strided, strided_failures = compile_kernels(signatures, capability, strided=True)
        compiled, failures = compiled + strided, failures + strided_failures
    print(json.dumps({"capability": capability, "compiled": compiled, "failures": failures}))


if __name__ == "__main__":
    main()
