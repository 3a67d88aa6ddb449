"""Compile every CUDA kernel a traced run launched, for a real GPU, on a machine without one.

    python tests/kernel_compile_run.py SIGNATURES [MAJOR.MINOR]

SIGNATURES is what ``tests/trace_run.py ... SIGNATURES`` pickled in numba's
CUDA simulator: each rule's launch with the numba types of its arguments.  The
simulator runs kernels as Python, so it accepts code that numba-cuda's real
compiler refuses; here each launcher is compiled to PTX by NVVM for compute
capability MAJOR.MINOR (default 9.0, the H100 and H200), with no GPU or
driver, which needs numba-cuda's NVVM and NVRTC wheels (``numba-cuda[cu13]``).
It proves that the kernels compile, not what they compute: only a GPU shows
that.  Prints one JSON line: the kernels compiled (with the start of each
kernel's PTX entry) and the failures with the compiler's message.
Must run without NUMBA_ENABLE_CUDASIM.
"""

import importlib
import json
import pickle
import sys
import types


def main():
    from numba import cuda
    from numba import types as nbtypes
    import numba.cuda.dispatcher as dispatcher

    from gpusim.kernels.launch import launcher, tally_size

    capability = tuple(int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "9.0").split("."))
    # A kernel's device functions are compiled for the current device's capability; with no device, name one.
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=capability)
    with open(sys.argv[1], "rb") as f:
        signatures = pickle.load(f)
    compiled, failures = [], []
    for module, name, counted, argument_types in signatures:
        rule = getattr(importlib.import_module(module), name)
        extent = nbtypes.int64[::1] if counted else nbtypes.int64
        totals = (nbtypes.int64[::1],) if tally_size(rule) else ()
        label = f"{module}.{name}{' (counted)' if counted else ''}"
        try:
            ptx, _ = cuda.compile_ptx(launcher(rule, "cuda", counted).py_func, (extent, *argument_types, *totals),
                                      cc=capability)
        except Exception as error:  # every failure is reported, with the compiler's own message
            failures.append({"kernel": label, "error": f"{type(error).__name__}: {error}"[:3000]})
        else:
            entry = ptx.find(".entry")
            compiled.append({"kernel": label, "ptx_bytes": len(ptx), "ptx_head": ptx[entry : entry + 200]})
    print(json.dumps({"capability": capability, "compiled": compiled, "failures": failures}))


if __name__ == "__main__":
    main()
