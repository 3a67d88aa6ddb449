"""Rules and device functions: how a plain Python function becomes something the launchers compile.

A *device function* (``@device``) is a plain Python function that rules may
call: random draws, lattice arithmetic.  A *rule* (``@rule``) is a plain Python
function ``rule(i, columns..., params)`` that updates cell (or voxel) ``i``.
A *tallying rule* (``@rule(tally=K)``) also takes a last argument ``tally``, a
vector of K integer counters it adds to with :func:`gpusim.kernels.tally.tally_add`
(molecules moved, kills by cause, histogram bins); the launch returns their
sums over all cells.  Integer sums do not depend on the order of addition, so
tallies are as deterministic as everything else.
Neither is decorated by numba at the place it is written:
:mod:`gpusim.kernels.codegen` compiles them per target.

A *fused launch* (:func:`fuse`) runs several rules one after another for
each index in one launcher, for rules that touch only their own index's
columns: a launch and a pass over the table fewer, the same result.

A launch binds its arguments by name (:func:`launch_named`): each parameter of
the rule is looked up by its name among the state's columns and the run's
values, so no call site restates a signature.
"""

import inspect
import sys
from pathlib import Path

_DEVICE_MARK = "_gpusim_device"
_RULE_MARK = "_gpusim_rule"
_TALLY_MARK = "_gpusim_tally_size"
_CUDA_C_MARK = "_gpusim_cuda_c"
_REACH_MARK = "_gpusim_reach"
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


def rule(fn=None, *, reach=None, tally=0, cuda_c=None):
    """Mark a plain Python function ``fn(i, ...)`` as a per-index rule.

    A rule returns nothing; it writes its results into the arrays it is given.
    ``reach`` (required) says how far from its cell's voxel (or from voxel
    ``i``, for a rule over voxels) a launch for one index reads or writes, in
    voxels along any axis: 0 for a rule that touches only its own cell, 1 for
    one that looks at or changes the 26 neighbours, 2 for a claim settled
    among the claimants around a voxel; ``GRID`` for a rule over the fields'
    grid, which is not split with the cells.  The reaches of a step's
    launches add up to how many layers of its neighbours a process holding
    part of the lattice needs (:data:`gpusim.engine.STEP_LAUNCHES`).
    With ``tally=K`` its last parameter must be ``tally``: K int64 counters
    that the launch sums over all indices and returns.  ``cuda_c`` names a
    ``.cu`` file of this folder holding a hand-written CUDA C form of the rule
    (:mod:`gpusim.kernels.cuda_c`).
    """

    def mark(fn):
        if reach is None or not (reach == GRID or (isinstance(reach, int) and reach >= 0)):
            raise TypeError(f"rule {fn.__qualname__} must declare its reach (voxels, 0 or more, or GRID)")
        params = list(inspect.signature(fn).parameters)
        if not params or params[0] not in ("i", "j", "v", "line"):
            raise TypeError(f"rule {fn.__qualname__} must take the index (i, j, v or line) first")
        if tally and params[-1] != "tally":
            raise TypeError(f"tallying rule {fn.__qualname__} must take `tally` last")
        setattr(fn, _DEVICE_MARK, True)
        setattr(fn, _RULE_MARK, True)
        setattr(fn, _TALLY_MARK, int(tally))
        setattr(fn, _REACH_MARK, reach)
        if cuda_c is not None:
            if not (Path(__file__).parent / cuda_c).is_file():
                raise FileNotFoundError(f"rule {fn.__qualname__}: its CUDA C form {cuda_c} is not in kernels/")
            setattr(fn, _CUDA_C_MARK, cuda_c)
        return fn

    return mark(fn) if fn is not None else mark


GRID = "grid"  # the reach of a rule over the fields' grid


def reach(fn):
    """How far a launch of rule ``fn`` reaches from each index's voxel (see :func:`rule`); a fused launch reaches
    as far as its rules together, one after the other."""
    return getattr(fn, _REACH_MARK)


def is_device(obj):
    """Whether ``obj`` is a device function or a rule (both are compiled per target)."""
    return callable(obj) and getattr(obj, _DEVICE_MARK, False)


def is_rule(obj):
    """Whether ``obj`` is a rule or a fused launch (something a launcher runs per index)."""
    return getattr(obj, _RULE_MARK, False)


def for_target(fn, target):
    """The body of device function ``fn`` for ``target``: its own, or the one :func:`device_for_targets` gave."""
    return _TARGET_IMPLEMENTATIONS.get((fn, target), fn)


def tally_size(fn):
    """K of a tallying rule, 0 for a plain rule."""
    return getattr(fn, _TALLY_MARK, 0)


def cuda_c_source(fn):
    """The ``.cu`` file holding a hand-written CUDA C form of rule ``fn`` (kernels.cuda_c), or None."""
    source = getattr(fn, _CUDA_C_MARK, None)
    return Path(__file__).parent / source if source else None


_PARAMETERS = {}  # rule -> its parameters (inspecting a signature takes ~20 us: once a rule, not once a launch)


def rule_parameters(fn):
    """The arrays and numbers a rule (or a fused launch) takes, after the index and before ``tally``."""
    if fn not in _PARAMETERS:
        if isinstance(fn, Fused):
            params = list(fn.parameters)
        else:
            params = list(inspect.signature(fn).parameters)[1:]
            params = params[:-1] if tally_size(fn) else params
        _PARAMETERS[fn] = tuple(params)
    return list(_PARAMETERS[fn])


def launch_named(launch, fn, extent, *mappings, ghosts=None):
    """``launch(fn, extent, ...)`` with every argument bound by its parameter's name, from the first of
    ``mappings`` that has it: no call site restates a rule's signature, so a reordered signature cannot swap
    values.  ``ghosts``: which indices a tallying rule leaves out of its tally (the launchers')."""
    return launch(fn, extent, *launch_arguments(fn, *mappings), ghosts=ghosts)


def launch_arguments(fn, *mappings):
    """The arguments of a launch of ``fn`` (a rule or a fused launch) in order, each looked up by its parameter
    name in the first of ``mappings`` that has it."""
    values = []
    for p in rule_parameters(fn):
        for mapping in mappings:
            if p in mapping:
                values.append(mapping[p])
                break
        else:
            raise TypeError(f"{fn.__name__} needs an argument named {p!r}")
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
        reaches = [reach(r) for r in self.rules]
        setattr(self, _REACH_MARK, GRID if GRID in reaches else sum(reaches))

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
            if is_rule(value) and value.__module__ == module.__name__:
                found[value.__name__] = value
    return found
