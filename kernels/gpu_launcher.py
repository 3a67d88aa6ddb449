"""Running a rule as a CUDA kernel: numba's kernel (one index a thread, or strided), its hand-written CUDA C
form (kernels.cuda_c), or numba's compiled kernel launched directly through cuda.core.  Which of these a rule
takes is a GPU option (:mod:`gpusim.kernels.gpu_options`)."""

import sys

from gpusim.kernels.codegen import launcher
from gpusim.kernels.cpu_launcher import Count, Launcher, ghost_arguments
from gpusim.kernels.decorators import tally_size
from gpusim.kernels.gpu_options import GPUOptions

def parameter_forms(argument_types):
    """How each argument of numba types ``argument_types`` goes into a kernel's parameters, as numba-cuda lays
    them out: None for an array (see :func:`kernel_parameters`), else the numpy scalar type of the number.
    ValueError for any other type (a record, a tuple, a boolean, a half float): direct launches leave those to
    numba."""
    import numpy as np
    from numba.cuda import types as cuda_types

    forms = []
    for kind in argument_types:
        if isinstance(kind, cuda_types.Array):
            forms.append(None)
        elif isinstance(kind, (cuda_types.Integer, cuda_types.Float)) and kind != cuda_types.float16:
            forms.append(np.dtype(str(kind)).type)
        else:
            raise ValueError(f"a kernel argument of type {kind} is not launched directly")
    return forms


def parameter_bytes(argument_types):
    """The size in bytes of each parameter of a numba kernel taking arguments of numba types ``argument_types``:
    an array's are ``kernel_parameters``' (two pointers, its element count and size, its data pointer, then its
    extents and byte strides: 8 bytes each), a number's its own width."""
    sizes = []
    for form, kind in zip(parameter_forms(argument_types), argument_types):
        sizes += [8] * (5 + 2 * kind.ndim) if form is None else [form(0).itemsize]
    return sizes


def kernel_parameters(forms, arguments):
    """The parameters of a numba CUDA kernel for ``arguments`` (device arrays and numbers, in ``forms`` from
    :func:`parameter_forms`), as numba-cuda would pass them: an array as its meminfo and parent pointers (0 for
    an array numba does not own), element count, element size, data pointer, extents and strides in bytes,
    each an 8-byte Python int to cuda.core; a number as the numpy scalar of its type."""
    parameters = []
    for form, value in zip(forms, arguments):
        if form is None:
            parameters += (0, 0, value.size, value.itemsize, value.data.ptr, *value.shape, *value.strides)
        else:
            parameters.append(form(value))
    return parameters


def _by_form(value):
    """numba's per-kernel figure by compiled form: a dict, or for a specialised kernel one number."""
    return value if isinstance(value, dict) else {None: value}


class CUDALauncher(Launcher):
    """Runs rules as CUDA kernels (on a GPU, or in numba's CUDA simulator).

    A tallying rule adds into a per-block shared vector (atomics in shared
    memory), and each block adds its vector to the result once.  Rules named
    in ``options.strided`` start no more blocks than the GPU runs at once, each thread
    taking indices a grid apart: fewer blocks to schedule, and a tallying
    block clears and adds up its counters once for many cells (the numba
    kernel's registers permitting; in the simulator, which has no
    multiprocessors to fill, ``SIMULATED_RESIDENT_BLOCKS``, so the stride is
    taken there too).

    With ``options.direct``, numba launches each form of a kernel (its argument
    types) once, which compiles it, and every later launch of that form goes
    straight to cuda.core's ``launch`` with the parameters laid out here
    (:func:`kernel_parameters`): numba otherwise types every argument and
    wraps every cupy array in one of its own device arrays at every launch,
    the host's time per launch that dominates a step at a million cells.
    Host arrays, and argument types it does not lay out, stay with numba.
    """

    target = "cuda"
    SIMULATED_RESIDENT_BLOCKS = 2

    def __init__(self, xp, threads_per_block=256, options=GPUOptions()):
        self.xp = xp
        self.threads_per_block = threads_per_block
        self.options = options  # the experimental GPU settings (kernels.gpu_options), read once by the backend
        self.cuda_c = options.cuda_c  # rules launched in their hand-written CUDA C form (kernels.cuda_c)
        self.strided = options.strided  # rules whose numba kernels stride over their indices
        self.direct = options.direct and hasattr(xp, "cuda")  # the simulator's kernels are Python: numba runs them
        self._cuda_c_kernels = {}  # rule -> (its CUDA C kernel, the blocks of it the GPU runs at once)
        self._resident = {}  # strided numba kernel -> (its compiled forms, the blocks of it the GPU runs at once)
        self._direct = {}  # (numba kernel, kinds of the arguments) -> (cuda.core kernel, parameter forms) or False
        self._launch_configs = {}  # blocks -> cuda.core LaunchConfig (direct launches)
        self._properties = None
        self._ghost_marks = None  # kernels.cpu_launcher.ghost_arguments: made at the first tallying launch

    def _wait(self):
        if hasattr(self.xp, "cuda"):  # cupy; under the simulator the arrays are numpy's and kernels are synchronous
            self.xp.cuda.Device().synchronize()

    def _launch(self, fn, n, args, ghosts):
        """As for every launcher; a tally comes back on the device (nothing waits for it).  A hand-written CUDA C
        kernel leaves GHOST cells out of its tally by their ``state`` itself (its rules run over cells)."""
        import numpy as np

        counted = isinstance(n, Count)
        extent = n.live if counted else n
        bound = n.bound if counted else n
        size = tally_size(fn)
        totals = (self.xp.zeros(size, dtype=np.int64),) if size else ()
        if bound > 0 and fn.__name__ in self.cuda_c:
            self._launch_cuda_c(fn, bound, extent if counted else None, args, totals)
        elif bound > 0:
            strided = fn.__name__ in self.strided
            kernel = launcher(fn, "cuda", counted, strided, self.options.cache)
            blocks = (bound + self.threads_per_block - 1) // self.threads_per_block
            if strided:
                blocks = min(blocks, self._resident_blocks(kernel))
            if size:
                if self._ghost_marks is None:  # any array of no element, and of one: their lengths are the marks
                    self._ghost_marks = self.xp.zeros(0, dtype="uint8"), self.xp.zeros(1, dtype="uint8")
                totals = (*totals, *ghost_arguments(fn, ghosts, *self._ghost_marks))
            self._launch_numba(kernel, blocks, (extent, *args, *totals))
        return totals[0] if size else None

    def _launch_numba(self, kernel, blocks, arguments):
        """Launch numba kernel ``kernel`` in ``blocks`` blocks: by numba, or with ``direct`` by cuda.core once
        numba has launched (and compiled) the form."""
        if not self.direct:
            kernel[blocks, self.threads_per_block](*arguments)
            return
        key = (kernel, tuple(map(self._argument_kind, arguments)))
        known = self._direct.get(key)
        if known:
            function, forms = known
            config = self._launch_configs.get(blocks)
            if config is None:
                if len(self._launch_configs) >= 256:  # the count of cells moves every step: keep the recent ones
                    self._launch_configs.clear()
                config = self._launch_configs[blocks] = self._core.LaunchConfig(
                    grid=blocks, block=self.threads_per_block, shmem_size=0)
            self._core.launch(self._stream, config, function, *kernel_parameters(forms, arguments))
            return
        kernel[blocks, self.threads_per_block](*arguments)
        if known is None:
            self._direct[key] = self._direct_form(kernel, arguments)

    def _argument_kind(self, value):
        """What decides the numba type of a launch argument, cheaply: a device array's dtype, dimensions and
        contiguity; a number's Python type (a Python int past int64's range is typed uint64)."""
        if isinstance(value, self.xp.ndarray):
            flags = value.flags
            return value.dtype, value.ndim, flags.c_contiguous, flags.f_contiguous
        if type(value) is int:
            return int, value >= 2**63
        return type(value)

    def _direct_form(self, kernel, arguments):
        """(cuda.core kernel, parameter forms) of the form of numba kernel ``kernel`` that ``arguments`` have
        just launched, or False where numba must go on launching it (a host array, a type not laid out here,
        a kernel numba launches with more than its parameters)."""
        import warnings

        try:
            argument_types = tuple(kernel.typeof_pyval(value) for value in arguments)
            forms = parameter_forms(argument_types)
            if any(form is None and not isinstance(value, self.xp.ndarray) for form, value in zip(forms, arguments)):
                return False  # a host array: numba copies it to the device and back
            compiled = kernel.overloads.get(argument_types)
            if compiled is None:  # numba ran a form compiled for other, compatible types: it keeps launching
                return False
            if compiled.debug or compiled.cooperative or kernel.targetoptions.get("extensions"):
                return False
            function = compiled._codelibrary.get_cufunc().kernel
            if not hasattr(self, "_core"):
                import cuda.core
                from numba.cuda.cudadrv.driver import _to_core_stream

                self._core, self._stream = cuda.core, _to_core_stream(0)  # numba's default stream, as cupy's
        except ValueError:
            return False
        except (AttributeError, ImportError) as error:  # another numba-cuda than this was written for
            warnings.warn(f"GPUSIM_CUDA_DIRECT: numba launches {kernel.py_func.__module__} itself ({error!r})",
                          RuntimeWarning, stacklevel=2)
            return False
        return function, forms

    def _device_properties(self):
        if self._properties is None:
            self._properties = self.xp.cuda.runtime.getDeviceProperties(self.xp.cuda.Device().id)
        return self._properties

    def _resident_blocks(self, kernel):
        """The blocks of a strided numba kernel the GPU runs at once, by the registers and shared memory of its
        compiled forms (the most any of them takes); before its first launch compiles it, no limit."""
        if not hasattr(self.xp, "cuda"):
            return self.SIMULATED_RESIDENT_BLOCKS
        forms = len(kernel.overloads)  # the driver is asked for registers only when a launch compiled a new form
        known = self._resident.get(kernel)
        if known is None or known[0] != forms:
            if not forms:
                return sys.maxsize
            from gpusim.kernels import cuda_c

            registers = _by_form(kernel.get_regs_per_thread())
            shared = _by_form(kernel.get_shared_mem_per_block())
            resident = cuda_c.resident_blocks(self.threads_per_block, self._device_properties(),
                                              max(registers.values()), max(shared.values()))
            known = self._resident[kernel] = (forms, resident)
        return known[1]

    def _launch_cuda_c(self, fn, bound, live, args, totals):
        """Launch rule ``fn``'s hand-written CUDA C kernel (kernels.cuda_c) with the rule's arguments, in no more
        blocks than the GPU holds at once."""
        from gpusim.kernels import cuda_c

        if fn not in self._cuda_c_kernels:  # the GPU and the kernel's registers asked for once, not every launch
            kernel = cuda_c.kernel(fn)
            resident = cuda_c.resident_blocks(self.threads_per_block, self._device_properties(),
                                              getattr(kernel, "num_regs", 0), getattr(kernel, "shared_size_bytes", 0))
            self._cuda_c_kernels[fn] = kernel, resident
        kernel, resident = self._cuda_c_kernels[fn]
        blocks = cuda_c.blocks_for(bound, self.threads_per_block, resident)
        kernel((blocks,), (self.threads_per_block,), (*cuda_c.kernel_arguments(fn, bound, live, args), *totals))
