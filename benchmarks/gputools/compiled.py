"""Every kernel compiled for a GPU on a machine without one: PTX by numba-cuda's NVVM (or NVRTC for the CUDA C
kernels), machine code by nvJitLink, what each kernel uses (registers, shared memory, spills) and the
occupancy that allows on an H100/H200; the machine code's costly instructions (benchmarks/kernel_resources.py,
tests/kernel_compile_run.py)."""

import datetime
import re

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

    from gpusim.kernels.codegen import launcher
    from gpusim.kernels.decorators import tally_size
    from gpusim.kernels.gpu_launcher import parameter_bytes

    # a kernel's device functions are compiled for the current device's capability; with no device, name one
    current_device = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=capability)
    kernels, failures = [], []
    try:
        for (module, name, counted, argument_types), label in zip(signatures, _labels(signatures)):
            label += " (strided)" if strided else ""
            rule = getattr(importlib.import_module(module), name)
            extent = nbtypes.int64[::1] if counted else nbtypes.int64
            # a tallying kernel also takes the GHOST flags and their offset (kernels.cpu_launcher.ghost_arguments)
            totals = (nbtypes.int64[::1], nbtypes.uint8[::1], nbtypes.int64) if tally_size(rule) else ()
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
