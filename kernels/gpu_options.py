"""The GPU settings, read from the environment in one place into one object.  **Experimental.**

Four environment variables change how the GPU runs the rules, never what it computes (the GPU check,
``benchmarks/gpu_check.sh``, proves each equal to the CPU, bit for bit, before it times them):

``GPUSIM_CUDA_C``
    rules launched in their hand-written CUDA C form (:mod:`gpusim.kernels.cuda_c`) instead of numba's kernel:
    ``0`` none, ``1``/``all`` every rule that has one, or names separated by commas; unset, ``CUDA_C_BY_DEFAULT``.
``GPUSIM_CUDA_GRID``
    rules whose numba kernels start no more blocks than the GPU holds at once, each thread taking indices a grid
    apart; the same forms as ``GPUSIM_CUDA_C``; unset, ``STRIDED_BY_DEFAULT``.
``GPUSIM_CUDA_DIRECT``
    ``1``: numba's compiled kernels are launched through cuda.core after their first launch, without numba's
    per-launch typing of the arguments; ``0`` not; unset, ``DIRECT_BY_DEFAULT``.
``GPUSIM_CUDA_CACHE``
    ``1``: the CUDA kernels go into numba's on-disk cache beside their generated modules, so that a process
    loads the machine code an earlier one compiled for the same GPU; ``0`` or unset, not (``CACHE_BY_DEFAULT``).

They are experimental: each default stays off until a GPU's measurements (the GPU check's variants, recorded in
``benchmarks/RESULTS.md``) show the form faster, and a setting may go when a measurement shows it slower.
:func:`read` is the only place they are read; the backend reads them once, when it is chosen, and hands the
object to the GPU launcher.
"""

import dataclasses
import os

# The defaults: none until a GPU's per-rule times (benchmarks/gpu_check.sh's variants) show a form faster.
CUDA_C_BY_DEFAULT = frozenset()
STRIDED_BY_DEFAULT = frozenset()
DIRECT_BY_DEFAULT = False
CACHE_BY_DEFAULT = False


@dataclasses.dataclass(frozen=True)
class GPUOptions:
    """How the GPU runs the rules (see the module's docstring); every field has its default when built bare."""

    cuda_c: frozenset = CUDA_C_BY_DEFAULT  # rules launched in their CUDA C form
    strided: frozenset = STRIDED_BY_DEFAULT  # rules whose numba kernels stride over their indices
    direct: bool = DIRECT_BY_DEFAULT  # numba's kernels launched directly through cuda.core
    direct_asked: bool = False  # GPUSIM_CUDA_DIRECT=1 was set (not merely the default)
    cache: bool = CACHE_BY_DEFAULT  # CUDA kernels in numba's on-disk cache


def read(environ=None):
    """The :class:`GPUOptions` that ``environ`` (default ``os.environ``) sets; ValueError naming the variable for a
    value it cannot take (a misspelt rule, a rule without a CUDA C form, anything but 0 or 1 for a switch)."""
    from gpusim.kernels.cuda_c import rules_with_cuda_c
    from gpusim.kernels.decorators import launched_rules

    environ = os.environ if environ is None else environ
    direct = _switch(environ, "GPUSIM_CUDA_DIRECT", DIRECT_BY_DEFAULT, "launch numba's kernels directly")
    return GPUOptions(
        cuda_c=_rules(environ, "GPUSIM_CUDA_C", rules_with_cuda_c(), CUDA_C_BY_DEFAULT, lacking="have no CUDA C form"),
        strided=_rules(environ, "GPUSIM_CUDA_GRID", launched_rules(), STRIDED_BY_DEFAULT),
        direct=direct,
        direct_asked=environ.get("GPUSIM_CUDA_DIRECT", "").strip() == "1",
        cache=_switch(environ, "GPUSIM_CUDA_CACHE", CACHE_BY_DEFAULT, "keep the CUDA kernels in numba's disk cache"),
    )


def _rules(environ, variable, available, default, lacking="are not rules of the kernels package"):
    """The rule names ``variable`` asks for: unset or empty ``default``; ``0`` none; ``1`` or ``all`` every name in
    ``available``; else names separated by commas, each in ``available`` (ValueError naming the others, which
    ``lacking``)."""
    setting = environ.get(variable, "").strip()
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


def _switch(environ, variable, default, meaning):
    """``variable`` as a switch: ``1`` on, ``0`` off, unset or empty ``default``; ValueError for anything else."""
    setting = environ.get(variable, "").strip()
    if setting == "":
        return default
    if setting not in ("0", "1"):
        raise ValueError(f"{variable}={setting!r}: expected 1 ({meaning}) or 0")
    return setting == "1"
