"""Compile each rule, written once, for the CPU and for the GPU.

A *device function* (``@device``) is a plain Python function that rules may
call: random draws, lattice arithmetic.  A *rule* (``@rule``) is a plain Python
function ``rule(i, columns..., params)`` that updates cell (or voxel) ``i``.
A *tallying rule* (``@rule(tally=K)``) also takes a last argument ``tally``, a
vector of K integer counters it adds to with :func:`gpusim.kernels.tally.tally_add`
(molecules moved, kills by cause, histogram bins); the launch returns their
sums over all cells.  Integer sums do not depend on the order of addition, so
tallies are as deterministic as everything else.
Neither is decorated by numba at the place it is written; the launch layer
compiles them per target:

* ``"cpu"``: every device function becomes ``numba.njit``; the rule is called
  for ``i`` in ``prange(n)`` inside an ``njit(parallel=True, cache=True)``
  launcher.
* ``"cuda"``: every device function becomes ``numba.cuda.jit(device=True)``;
  the rule is called for ``i = cuda.grid(1)`` inside a ``cuda.jit`` kernel.
  With ``NUMBA_ENABLE_CUDASIM=1`` the same kernel runs in numba's CUDA
  simulator, which is how the GPU launch path is tested without a GPU.

To compile a function for a target, its globals are copied and every device
function it names is replaced by that function compiled for the same target;
so rules and helpers call each other by their ordinary names and no rule
exists twice.  Device functions must therefore be imported by name
(``from gpusim.kernels.rng import draw``), not reached through a module.

A *fused launch* (:func:`fuse`) runs several rules one after another for
each index in one launcher, for rules that touch only their own index's
columns: a launch and a pass over the table fewer, the same result.

The launchers are written as small generated modules into a cache folder
(``GPUSIM_CACHE_DIR``, default ``~/.cache/gpusim``) so that numba's on-disk
cache keeps them between processes.  Their file names carry a digest of every
source file in this package and of the numba version: changing any rule or
helper makes new launchers, so a stale compiled rule is never run.
"""

import hashlib
import importlib.util
import inspect
import os
import sys
import time
import types
from pathlib import Path

_DEVICE_MARK = "_gpusim_device"
_RULE_MARK = "_gpusim_rule"
_TALLY_MARK = "_gpusim_tally_size"
_CUDA_C_MARK = "_gpusim_cuda_c"
_TARGET_IMPLEMENTATIONS = {}

TARGETS = ("cpu", "cuda")


class Layout:
    """Consecutive named blocks of an integer vector (the parameter vector, the step's tally)."""

    def __init__(self):
        self.size = 0

    def block(self, width=1):
        """Reserve ``width`` entries; returns the index of the first."""
        start = self.size
        self.size += width
        return start


def device(fn):
    """Mark a plain Python function as callable from rules on every target."""
    setattr(fn, _DEVICE_MARK, True)
    return fn


def device_for_targets(**implementations):
    """Mark a device function whose body differs per target (given as plain functions by target name).

    Only the smallest primitives need this (an atomic add on the GPU is a plain
    add in a CPU thread's private counters); rules stay written once.
    """

    def mark(fn):
        for target, impl in implementations.items():
            _TARGET_IMPLEMENTATIONS[(fn, target)] = impl
        return device(fn)

    return mark


def rule(fn=None, *, tally=0, cuda_c=None):
    """Mark a plain Python function ``fn(i, ...)`` as a per-index rule.

    A rule returns nothing; it writes its results into the arrays it is given.
    With ``tally=K`` its last parameter must be ``tally``: K int64 counters
    that the launch sums over all indices and returns.  ``cuda_c`` names a
    ``.cu`` file of this folder holding a hand-written CUDA C form of the rule
    (:mod:`gpusim.kernels.cuda_c`).
    """

    def mark(fn):
        params = list(inspect.signature(fn).parameters)
        if not params or params[0] not in ("i", "j", "v", "line"):
            raise TypeError(f"rule {fn.__qualname__} must take the index (i, j, v or line) first")
        if tally and params[-1] != "tally":
            raise TypeError(f"tallying rule {fn.__qualname__} must take `tally` last")
        setattr(fn, _DEVICE_MARK, True)
        setattr(fn, _RULE_MARK, True)
        setattr(fn, _TALLY_MARK, int(tally))
        if cuda_c is not None:
            if not (Path(__file__).parent / cuda_c).is_file():
                raise FileNotFoundError(f"rule {fn.__qualname__}: its CUDA C form {cuda_c} is not in kernels/")
            setattr(fn, _CUDA_C_MARK, cuda_c)
        return fn

    return mark(fn) if fn is not None else mark


def tally_size(fn):
    """K of a tallying rule, 0 for a plain rule."""
    return getattr(fn, _TALLY_MARK, 0)


def cuda_c_source(fn):
    """The ``.cu`` file holding a hand-written CUDA C form of rule ``fn`` (kernels.cuda_c), or None."""
    source = getattr(fn, _CUDA_C_MARK, None)
    return Path(__file__).parent / source if source else None


def rule_parameters(fn):
    """The arrays and numbers a rule (or a fused launch) takes, after the index and before ``tally``."""
    if isinstance(fn, Fused):
        return list(fn.parameters)
    params = list(inspect.signature(fn).parameters)[1:]
    return params[:-1] if tally_size(fn) else params


def launch_named(launch, fn, extent, given):
    """``launch(fn, extent, ...)`` with every argument bound by its parameter's name from ``given`` (a mapping):
    no call site restates a rule's signature, so a reordered signature cannot swap values."""
    return launch(fn, extent, *launch_arguments(fn, given))


def launch_arguments(fn, given):
    """The arguments of a launch of ``fn`` (a rule or a fused launch) in order, each looked up by its parameter
    name in ``given``."""
    values = []
    for p in rule_parameters(fn):
        try:
            values.append(given[p])
        except KeyError:
            raise TypeError(f"{fn.__name__} needs an argument named {p!r}") from None
    return values


class Fused:
    """Rules run one after another for each index in a single launch (see :func:`fuse`)."""

    def __init__(self, module, rules):
        self.__name__ = self.__qualname__ = "_and_".join(r.__name__ for r in rules)
        self.__module__ = module
        self.rules = tuple(rules)
        parameters = []
        for r in self.rules:
            parameters += [p for p in rule_parameters(r) if p not in parameters]
        self.parameters = tuple(parameters)
        setattr(self, _RULE_MARK, True)
        setattr(self, _TALLY_MARK, max(tally_size(r) for r in self.rules))

    def __repr__(self):
        return f"fuse({', '.join(r.__name__ for r in self.rules)})"


def fuse(*rules):
    """One launch that runs ``rules`` one after another for each index: ``rules[1](i)`` after ``rules[0](i)``.

    Only for rules that read nothing another index's rules of the same
    launch write (each cell's own columns, or arrays none of them writes), so
    the result is the one of launching them one after another; a launch fewer
    and a pass fewer over the table.  Parameters of the same name are the same
    argument; the tallying rules among them must share one layout (a size K)
    and add into the same counters.  Its name joins theirs with ``_and_``;
    bind it to that name in the module that calls this, so that it can be
    found by name like a rule.
    """
    for r in rules:
        if not getattr(r, _RULE_MARK, False) or isinstance(r, Fused):
            raise TypeError(f"fuse takes rules (decorated with @rule), not fused launches or other objects: {r!r}")
    sizes = {tally_size(r) for r in rules} - {0}
    if len(sizes) > 1:
        raise TypeError(f"fused tallying rules must share one layout; sizes {sorted(sizes)}")
    module = sys._getframe(1).f_globals["__name__"]
    return Fused(module, rules)


def launched_rules():
    """Every rule and fused launch of the kernels package, by name: what a GPU setting may name."""
    import importlib
    import pkgutil

    package = __name__.rsplit(".", 1)[0]
    found = {}
    for info in pkgutil.iter_modules(sys.modules[package].__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        for value in vars(module).values():
            if getattr(value, _RULE_MARK, False) and value.__module__ == module.__name__:
                found[value.__name__] = value
    return found


def rules_in_setting(variable, available, setting=None, default=frozenset(),
                     lacking="are not rules of the kernels package"):
    """The rule names a GPU setting asks for: environment ``variable`` (or ``setting``) unset or empty
    ``default``; ``0`` none; ``1`` or ``all`` every name in ``available``; else names separated by commas, each
    in ``available`` (ValueError naming the others, which ``lacking``)."""
    setting = os.environ.get(variable, "") if setting is None else setting
    setting = setting.strip()
    if setting == "":
        return frozenset(default)
    if setting == "0":
        return frozenset()
    if setting in ("1", "all"):
        return frozenset(available)
    names = {name.strip() for name in setting.split(",") if name.strip()}
    unknown = sorted(names - set(available))
    if unknown:
        raise ValueError(f"{variable} names {', '.join(unknown)}, which {lacking}; "
                         f"those that can be named: {', '.join(sorted(available)) or 'none'}")
    return frozenset(names)


# The rules whose numba kernels stride over their indices unless GPUSIM_CUDA_GRID says otherwise: none until a
# GPU's per-rule times (benchmarks/gpu_check.sh's variants) show where it pays.
STRIDED_BY_DEFAULT = frozenset()


def strided_requested(setting=None):
    """The rules whose numba kernels the GPU starts in no more blocks than it holds at once, each thread taking
    indices a grid apart, from ``GPUSIM_CUDA_GRID`` (or ``setting``) as :func:`rules_in_setting` reads it, unset
    ``STRIDED_BY_DEFAULT``."""
    return rules_in_setting("GPUSIM_CUDA_GRID", launched_rules(), setting, STRIDED_BY_DEFAULT)


DIRECT_BY_DEFAULT = False


def direct_requested(setting=None, default=None):
    """Whether numba's compiled kernels are launched directly through cuda.core (``GPUSIM_CUDA_DIRECT``, or
    ``setting``: ``1`` yes, ``0`` no, unset or empty ``default``, itself by default ``DIRECT_BY_DEFAULT``;
    ValueError for anything else).  See :class:`CUDALauncher`."""
    setting = (os.environ.get("GPUSIM_CUDA_DIRECT", "") if setting is None else setting).strip()
    if setting == "":
        return DIRECT_BY_DEFAULT if default is None else default
    if setting not in ("0", "1"):
        raise ValueError(f"GPUSIM_CUDA_DIRECT={setting!r}: expected 1 (launch numba's kernels directly) or 0")
    return setting == "1"


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


def is_device(obj):
    return callable(obj) and getattr(obj, _DEVICE_MARK, False)


def _names_used(code):
    """Every global name a code object (and the code nested in it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


_compiled = {}


def compile_device(fn, target):
    """``fn`` compiled as a device function for ``target`` (memoised)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    key = (fn, target)
    if key in _compiled:
        return _compiled[key]
    kernels_package = __name__.rsplit(".", 1)[0]
    fn = _TARGET_IMPLEMENTATIONS.get((fn, target), fn)
    namespace = dict(fn.__globals__)
    if target == "cuda" and "cuda" in _names_used(fn.__code__):
        from numba import cuda

        namespace["cuda"] = cuda
    if target == "cuda" and "libdevice" in _names_used(fn.__code__):
        from numba.cuda import libdevice

        namespace["libdevice"] = libdevice
    for name in _names_used(fn.__code__):
        obj = namespace.get(name)
        if is_device(obj):
            namespace[name] = compile_device(obj, target)
        elif isinstance(obj, types.ModuleType) and obj.__name__.startswith(kernels_package):
            raise TypeError(
                f"{fn.__module__}.{fn.__qualname__} reaches {obj.__name__} as a module; "
                "import device functions by name so they can be compiled per target"
            )
    clone = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__
    clone.__module__ = fn.__module__
    clone.__doc__ = fn.__doc__
    if target == "cpu":
        import numba

        compiled = numba.njit(inline="always")(clone)
    else:
        from numba import cuda

        compiled = cuda.jit(device=True)(clone)
    _compiled[key] = compiled
    return compiled


_TALLY_TEMPLATES = {
    "cpu": '''\
# Generated by gpusim.kernels.launch: the CPU launcher of tallying {title}.
# Kernels digest {digest}. Do not edit; delete the folder to clear the cache.
import numba
from gpusim.kernels.launch import compile_device
{compiled}


@numba.njit(parallel=True, cache=True, nogil=True)
def launch(n, {args}, partials):
    chunks = partials.shape[0]
    for c in numba.prange(chunks):
        row = partials[c]
        start = (n * c) // chunks
        stop = (n * (c + 1)) // chunks
        for i in range(start, stop):
            {calls}
''',
    "cuda": '''\
# Generated by gpusim.kernels.launch: the CUDA kernel of tallying {title}.
# Kernels digest {digest}. Do not edit; delete the folder to clear the cache.
import numba
from numba import cuda
from gpusim.kernels.launch import compile_device, cuda_cache_wanted
{compiled}
import gpusim.kernels.tally as _tally
_whole_counter = compile_device(_tally.whole_counter, "cuda")


@cuda.jit(cache=cuda_cache_wanted())
def launch({extent}, {args}, totals):
    block = cuda.shared.array((2, {size}), numba.uint32)  # each counter's low and high 32 bits (kernels.tally)
    k = cuda.threadIdx.x
    while k < {size}:
        block[0, k] = 0
        block[1, k] = 0
        k += cuda.blockDim.x
    cuda.syncthreads()
    i = cuda.grid(1)
    if i < {limit}:
        {calls}
    cuda.syncthreads()
    k = cuda.threadIdx.x
    while k < {size}:
        if block[0, k] != 0 or block[1, k] != 0:
            cuda.atomic.add(totals, k, _whole_counter(block[0, k], block[1, k]))
        k += cuda.blockDim.x
''',
}

_TEMPLATES = {
    "cpu": '''\
# Generated by gpusim.kernels.launch: the CPU launcher of {title}.
# Kernels digest {digest}. Do not edit; delete the folder to clear the cache.
import numba
from gpusim.kernels.launch import compile_device
{compiled}


@numba.njit(parallel=True, cache=True, nogil=True)
def launch(n, {args}):
    for i in numba.prange(n):
        {calls}
''',
    "cuda": '''\
# Generated by gpusim.kernels.launch: the CUDA kernel of {title}.
# Kernels digest {digest}. Do not edit; delete the folder to clear the cache.
from numba import cuda
from gpusim.kernels.launch import compile_device, cuda_cache_wanted
{compiled}


@cuda.jit(cache=cuda_cache_wanted())
def launch({extent}, {args}):
    i = cuda.grid(1)
    if i < {limit}:
        {calls}
''',
}


_ONE_INDEX_A_THREAD = """\
    i = cuda.grid(1)
    if i < {limit}:
        {calls}
"""
_INDICES_A_GRID_APART = """\
    limit = {limit}
    i = cuda.grid(1)
    while i < limit:
        {calls}
        i += cuda.gridsize(1)
"""


def _strided(template):
    """The CUDA template ``template`` with each thread taking indices a grid apart instead of one."""
    assert template.count(_ONE_INDEX_A_THREAD) == 1
    return template.replace(_ONE_INDEX_A_THREAD, _INDICES_A_GRID_APART).replace(
        "the CUDA kernel of", "the CUDA kernel (each thread taking indices a grid apart) of")


for _templates in (_TEMPLATES, _TALLY_TEMPLATES):
    _templates["cuda-strided"] = _strided(_templates["cuda"])


def cuda_cache_wanted():
    """Whether CUDA kernels go into numba's on-disk cache beside their generated modules (``GPUSIM_CUDA_CACHE=1``),
    so that a process loads the machine code an earlier one compiled for the same GPU instead of compiling
    every kernel again (tens of seconds a process).  Off by default until a GPU has run with it;
    ``benchmarks/gpu_check.sh`` tries it first and keeps it where a second process loads what the first
    saved."""
    return os.environ.get("GPUSIM_CUDA_CACHE", "0").strip() not in ("", "0")


def kernels_digest():
    """A digest of this package's sources and of the numba version."""
    import numba

    h = hashlib.sha256(numba.__version__.encode())
    for templates in (_TEMPLATES, _TALLY_TEMPLATES):
        for form in sorted(templates):
            h.update(templates[form].encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir():
    root = os.environ.get("GPUSIM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "gpusim"
    )
    return Path(root) / "launchers"


class CacheFolderError(ValueError):
    """The cache folder is not private to this user: the generated launchers and numba's pickled cache in it are
    executed, so a folder others can write to would run their code."""


def private_cache_dir():
    """:func:`cache_dir`, made (mode 0700) if missing; CacheFolderError if it or the gpusim cache folder holding it
    belongs to another user or is writable by group or others."""
    folder = cache_dir()
    for path in (folder.parent, folder):
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            status = path.stat()
        except OSError as exc:
            raise CacheFolderError(f"cache folder {path}: {exc.strerror} (GPUSIM_CACHE_DIR sets it)") from None
        if status.st_uid != os.getuid():
            raise CacheFolderError(f"cache folder {path} belongs to another user; gpusim runs code from it "
                                   "(set GPUSIM_CACHE_DIR to a folder of your own)")
        if status.st_mode & 0o022:
            raise CacheFolderError(f"cache folder {path} is writable by group or others; gpusim runs code from it "
                                   f"(chmod go-w {path}, or set GPUSIM_CACHE_DIR to a private folder)")
    return folder


_launchers = {}
_digest = None


def launcher(fn, target, counted=False, strided=False):
    """The launcher of rule ``fn`` for ``target``: ``launch(n, *args)`` (CPU) or a CUDA kernel.

    A *counted* CUDA kernel takes, instead of ``n``, a one-element device
    array holding it (see :class:`Count`), so the extent of a launch can be
    a number the host has not read.  A *strided* CUDA kernel has each thread
    take indices a grid apart (``i``, ``i + threads in the grid``, ...), so
    that it may be started with fewer threads than indices
    (:class:`CUDALauncher`'s ``strided``).
    """
    global _digest
    if strided and target != "cuda":
        raise ValueError("only CUDA kernels stride over their indices")
    key = (fn, target, counted, strided)
    if key in _launchers:
        return _launchers[key]
    if not getattr(fn, _RULE_MARK, False):
        raise TypeError(f"{fn.__qualname__} is not a rule (decorate it with @rule)")
    if _digest is None:
        _digest = kernels_digest()
    size = tally_size(fn)
    rules = fn.rules if isinstance(fn, Fused) else (fn,)
    tally = {"cpu": "row", "cuda": "block"}[target] if size else None
    compiled = "\n".join(
        f"import {r.__module__} as _source{k}\n_rule{k} = compile_device(_source{k}.{r.__name__}, {target!r})"
        for k, r in enumerate(rules)
    )
    template = (_TALLY_TEMPLATES if size else _TEMPLATES)["cuda-strided" if strided else target]
    calls_line = next(line for line in template.splitlines() if "{calls}" in line)
    calls = ("\n" + calls_line[: calls_line.index("{calls}")]).join(
        f"_rule{k}(i, {', '.join(rule_parameters(r) + ([tally] if tally_size(r) else []))})"
        for k, r in enumerate(rules)
    )
    title = f"{fn.__module__}.{fn.__name__}" + (
        f" ({', then '.join(r.__name__ for r in rules)}, for each index)" if isinstance(fn, Fused) else ""
    )
    source = template.format(
        title=title, compiled=compiled, calls=calls, args=", ".join(rule_parameters(fn)), digest=_digest, size=size,
        extent="live" if counted else "n", limit="live[0]" if counted else "n",
    )
    folder = private_cache_dir()
    stem = (f"{target}_{fn.__module__.rsplit('.', 1)[-1]}_{fn.__name__}{'_counted' if counted else ''}"
            f"{'_strided' if strided else ''}_{_digest}")
    path = folder / f"{stem}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    module_name = f"_gpusim_launch_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    _launchers[key] = module.launch
    return module.launch


class Count:
    """The extent of a launch over the agent table when only the device knows it exactly.

    ``live`` is a one-element int64 array on the device holding the number of
    cells; ``bound`` a host integer no smaller than it.  A CUDA launch starts
    ``bound`` threads and those at ``live[0]`` or beyond do nothing, so the
    host need not wait for the device to learn the count.  On the CPU the
    array is host memory and the launch reads it.
    """

    __slots__ = ("bound", "live")

    def __init__(self, bound, live):
        self.bound = int(bound)
        self.live = live

    def __repr__(self):
        return f"Count(bound={self.bound})"


class _Launcher:
    """What both launchers share: running a rule, and on request timing every launch per rule."""

    timings = None  # rule name -> [launches, seconds] while timing (see time_rules)

    def time_rules(self, on=True):
        """Start (or with ``on`` False, stop) recording the wall time of every launch per rule, the device waited
        for before and after each; returns the record (a dict filled as launches happen)."""
        self.timings = {} if on else None
        return self.timings

    def __call__(self, fn, n, *args):
        """Run ``fn`` for indices ``0..n-1`` (``n`` an int or a :class:`Count`); returns the summed tally (int64)
        of a tallying rule."""
        if self.timings is None:
            return self._launch(fn, n, *args)
        self._wait()
        start = time.perf_counter()
        result = self._launch(fn, n, *args)
        self._wait()
        entry = self.timings.setdefault(fn.__name__, [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - start
        return result

    def _wait(self):
        """Wait for the device (nothing to wait for on the CPU)."""


class CPULauncher(_Launcher):
    """Runs rules with numba's CPU threads.

    A tallying rule runs over ``TALLY_CHUNKS`` contiguous ranges of indices,
    each adding into its own row of counters; the rows are summed after.
    """

    target = "cpu"
    TALLY_CHUNKS = 64

    def _launch(self, fn, n, *args):
        import numpy as np

        if isinstance(n, Count):
            n = min(int(n.live[0]), n.bound)  # as on the GPU, never past the bound
        size = tally_size(fn)
        if size:
            partials = np.zeros((self.TALLY_CHUNKS, size), dtype=np.int64)
            if n > 0:
                launcher(fn, "cpu")(n, *args, partials)
            return partials.sum(axis=0)
        if n > 0:
            launcher(fn, "cpu")(n, *args)
        return None


def _by_form(value):
    """numba's per-kernel figure by compiled form: a dict, or for a specialised kernel one number."""
    return value if isinstance(value, dict) else {None: value}


class CUDALauncher(_Launcher):
    """Runs rules as CUDA kernels (on a GPU, or in numba's CUDA simulator).

    A tallying rule adds into a per-block shared vector (atomics in shared
    memory), and each block adds its vector to the result once.  Rules named
    in ``strided`` start no more blocks than the GPU runs at once, each thread
    taking indices a grid apart: fewer blocks to schedule, and a tallying
    block clears and adds up its counters once for many cells (the numba
    kernel's registers permitting; in the simulator, which has no
    multiprocessors to fill, ``SIMULATED_RESIDENT_BLOCKS``, so the stride is
    taken there too).

    With ``direct``, numba launches each form of a kernel (its argument
    types) once, which compiles it, and every later launch of that form goes
    straight to cuda.core's ``launch`` with the parameters laid out here
    (:func:`kernel_parameters`): numba otherwise types every argument and
    wraps every cupy array in one of its own device arrays at every launch,
    the host's time per launch that dominates a step at a million cells.
    Host arrays, and argument types it does not lay out, stay with numba.
    """

    target = "cuda"
    SIMULATED_RESIDENT_BLOCKS = 2

    def __init__(self, xp, threads_per_block=256, cuda_c=frozenset(), strided=frozenset(), direct=False):
        self.xp = xp
        self.threads_per_block = threads_per_block
        self.cuda_c = frozenset(cuda_c)  # rules launched in their hand-written CUDA C form (kernels.cuda_c)
        self.strided = frozenset(strided)  # rules whose numba kernels stride over their indices
        self.direct = bool(direct) and hasattr(xp, "cuda")  # the simulator's kernels are Python: numba runs them
        self._cuda_c_kernels = {}  # rule -> (its CUDA C kernel, the blocks of it the GPU runs at once)
        self._resident = {}  # strided numba kernel -> (its compiled forms, the blocks of it the GPU runs at once)
        self._direct = {}  # (numba kernel, kinds of the arguments) -> (cuda.core kernel, parameter forms) or False
        self._launch_configs = {}  # blocks -> cuda.core LaunchConfig (direct launches)
        self._properties = None

    def _wait(self):
        if hasattr(self.xp, "cuda"):  # cupy; under the simulator the arrays are numpy's and kernels are synchronous
            self.xp.cuda.Device().synchronize()

    def _launch(self, fn, n, *args):
        """As for every launcher; a tally comes back on the device (nothing waits for it)."""
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
            kernel = launcher(fn, "cuda", counted, strided)
            blocks = (bound + self.threads_per_block - 1) // self.threads_per_block
            if strided:
                blocks = min(blocks, self._resident_blocks(kernel))
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
