"""Choosing where the step runs: the CPU (numba threads) or a CUDA GPU.

Precedence: an explicit choice (``--backend``), then the ``GPUSIM_BACKEND``
environment variable, then the config's ``run.backend``; ``auto`` takes the
GPU when one is usable and the CPU otherwise.  The experimental GPU settings
(``GPUSIM_CUDA_C``, ``_GRID``, ``_DIRECT``, ``_CACHE``) are read once here,
through :mod:`gpusim.kernels.gpu_options`, and checked on every backend so that
a typo shows; the GPU launcher gets them as one object.
With ``NUMBA_ENABLE_CUDASIM=1``
the CUDA backend runs its kernels in numba's CUDA simulator on host arrays:
slow, but it proves the GPU launch path without a GPU.
"""

import functools
import importlib
import os
import warnings

import numpy as np

from gpusim.kernels import cuda_c
from gpusim.kernels import gpu_options
from gpusim.kernels.cpu_launcher import CPULauncher
from gpusim.kernels.decorators import launched_rules
from gpusim.kernels.gpu_launcher import CUDALauncher


class BackendError(RuntimeError):
    """The requested backend cannot run here."""


class Backend:
    """An array module (``xp``) and a launcher for rules, with host transfers."""

    def __init__(self, name, xp, launch, simulated=False):
        self.name = name
        self.xp = xp
        self.launch = launch
        self.simulated = simulated

    @property
    def label(self):
        hand_written = sorted(getattr(self.launch, "cuda_c", ()))
        strided = sorted(getattr(self.launch, "strided", ()))
        if strided and set(strided) == set(launched_rules()):
            strided = ["every rule"]
        return self.name + (" (CUDA simulator)" if self.simulated else "") + (
            f" (CUDA C: {', '.join(hand_written)})" if hand_written else "") + (
            f" (grid-stride: {', '.join(strided)})" if strided else "") + (
            " (direct launches)" if getattr(self.launch, "direct", False) else "")

    def to_host(self, array):
        return array if self.xp is np else self.xp.asnumpy(array)

    def to_device(self, array):
        return self.xp.asarray(array)

    def synchronize(self):
        if self.xp is not np:
            self.xp.cuda.Device().synchronize()

    def release_memory(self):
        """Hand memory no array holds back to the system (cupy keeps freed blocks in its pool)."""
        if self.xp is not np:
            self.xp.get_default_memory_pool().free_all_blocks()

    def memory_held(self):
        """Device memory gpusim's arrays hold or held at once (cupy's pool grows to the peak and keeps it until
        released); None on the CPU, where the arrays are ordinary host memory."""
        if self.xp is not np:
            return self.xp.get_default_memory_pool().total_bytes()
        return None

    def memory_available(self):
        """Bytes this backend can still allocate (host RAM, or free GPU memory with what cupy's pool holds free)."""
        if self.xp is not np:
            free, _total = self.xp.cuda.runtime.memGetInfo()
            return free + self.xp.get_default_memory_pool().free_bytes()
        return host_memory_available()


def host_memory_available():
    """Bytes of host memory this process can still allocate: what the system has available, or less where the
    process's address space is capped (RLIMIT_AS, as a batch system or ``ulimit -v`` sets it)."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(available, _address_space_left())


def _address_space_left():
    """Bytes the process may still map under its RLIMIT_AS (unbounded: a very large number)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return 2**62
    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        mapped = 0
    return max(soft - mapped, 0)


def cuda_simulated():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_problem():
    """None if a CUDA GPU is usable, else the reason why not."""
    if cuda_simulated():
        return None
    try:
        import cupy
    except ImportError:
        return "cupy is not installed (pip install 'gpusim[cuda]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device found"
        capability = device_capability(cupy)
    except Exception as exc:  # cupy raises its own runtime errors without a driver
        return f"no usable CUDA driver ({type(exc).__name__})"
    try:
        from numba import cuda

        if not cuda.is_available():
            return "numba cannot reach the CUDA driver"
    except Exception as exc:
        return f"numba-cuda is not usable ({exc})"
    return numba_cuda_compile_problem(capability)


def _probe_kernel(out):
    """The smallest kernel: what numba_cuda_compile_problem compiles."""
    out[0] = 1


@functools.lru_cache(maxsize=4)
def numba_cuda_compile_problem(capability=(7, 5)):
    """None if numba-cuda compiles a kernel here for a GPU of compute ``capability`` (the GPU's own; its typing
    registries load, NVVM is found and knows the GPU), else why not.

    Needs no GPU: the probe is compiled to PTX only.  Without it, such a
    problem would surface as a traceback at a run's first kernel; on the H200
    the image's numpy 2.5 lacked ``np.row_stack``, which numba-cuda 0.30
    registers before it compiles anything, and CUDA 13's NVVM compiles for
    nothing older than compute capability 7.5 (a V100 is 7.0).
    """
    try:
        from numba import cuda, types

        cuda.compile_ptx(_probe_kernel, (types.int64[::1],), cc=tuple(capability))
    except Exception as exc:  # any failure means no kernel of gpusim's can compile either
        hint = ""
        if "row_stack" in str(exc):
            hint = " (numba-cuda needs a numpy that has np.row_stack: pip install 'numpy<2.5')"
        elif type(exc).__name__ == "CCSupportError":
            hint = (f" (this GPU, compute capability {capability[0]}.{capability[1]}, is older than the CUDA "
                    "toolkit numba-cuda compiles with supports; CUDA 12 compiles for 5.0 and later: "
                    "pip install 'gpusim[cuda]' rather than 'gpusim[cuda13]')")
        return f"numba-cuda cannot compile kernels here: {type(exc).__name__}: {exc}{hint}"
    return None


def select(requested=None, configured="auto", device=None):
    """The backend for ``requested`` (CLI), else ``GPUSIM_BACKEND``, else ``configured``.  ``device``: the GPU a
    rank of a run under mpiexec takes (its rank on its node, modulo the GPUs there); None for the current one."""
    choice = requested or os.environ.get("GPUSIM_BACKEND") or configured or "auto"
    if choice not in ("auto", "cpu", "cuda"):
        raise BackendError(f"unknown backend {choice!r}; expected auto, cpu or cuda")
    try:
        options = gpu_options.read()  # checked on every backend so that a typo shows
    except ValueError as exc:
        raise BackendError(str(exc)) from None
    if choice == "auto":
        choice = "cuda" if cuda_problem() is None and not cuda_simulated() else "cpu"
    if choice == "cpu":
        return Backend("cpu", np, CPULauncher())
    problem = cuda_problem()
    if problem is not None:
        raise BackendError(f"backend cuda is not usable here: {problem}; use --backend cpu")
    if options.cuda_c and cuda_simulated():
        raise BackendError("GPUSIM_CUDA_C: CUDA C kernels run on a GPU only; the CUDA simulator runs numba's kernels "
                           "(tests/test_cuda_c.py runs them on the host instead)")
    if cuda_simulated() and options.direct_asked:  # asked for, not merely the default
        raise BackendError("GPUSIM_CUDA_DIRECT: direct launches need a GPU; the CUDA simulator runs kernels as Python "
                           "(set GPUSIM_CUDA_DIRECT=0)")
    if cuda_simulated():
        # The simulator runs rules as Python on NumPy scalars, which warn on the
        # uint64 wrap-around that the hash relies on (on the device it is silent).
        warnings.filterwarnings("ignore", "overflow encountered in scalar", RuntimeWarning)
        return Backend("cuda", np, CUDALauncher(np, threads_per_block=32, options=options), simulated=True)
    import cupy

    if device is not None:
        take_device(cupy, device)
    if options.cuda_c:
        problem = cuda_c.capability_problem(device_capability(cupy))
        if problem is not None:
            raise BackendError(problem)
    configure_numba_cuda()
    return Backend("cuda", cupy, CUDALauncher(cupy, options=options))


def take_device(cupy, rank_on_node):
    """Make GPU ``rank_on_node`` (modulo the GPUs this node has) current for cupy and for numba-cuda, before
    either allocates: ranks on one node share its GPUs round robin."""
    index = int(rank_on_node) % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(index).use()
    from numba import cuda

    cuda.select_device(index)


def device_capability(cupy):
    """The compute capability (major, minor) of cupy's current GPU."""
    digits = str(cupy.cuda.Device().compute_capability)  # "90" for 9.0
    return int(digits[:-1]), int(digits[-1])


def configure_numba_cuda():
    """numba-cuda's settings for gpusim's launches.

    * Trust the stream order: cupy exports its arrays (CUDA Array Interface
      v3) with the stream they were made on, and numba by default
      synchronises that stream for every array argument of a launch: a full
      wait for the device per launch.  All of gpusim's cupy operations and
      kernels go to one stream, in order, so the wait protects nothing and
      would undo the device-resident step.
    * No low-occupancy warnings: numba warns at every launch of fewer than
      128 blocks, which gpusim makes whenever few cells have work (an
      infusion, the effectors of a small run, a short listing); on the first
      H200 run they were most of the log.
    """
    for name in ("numba.cuda.core.config", "numba.core.config"):
        try:
            config = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(config, "CUDA_ARRAY_INTERFACE_SYNC"):
            config.CUDA_ARRAY_INTERFACE_SYNC = False
        if hasattr(config, "CUDA_LOW_OCCUPANCY_WARNINGS"):
            config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
