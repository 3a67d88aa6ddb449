"""The model's rules, each a plain per-cell Python function written once.

:mod:`gpusim.kernels.launch` compiles every rule twice, for the CPU
(``numba.njit`` inside a ``prange`` loop) and for the GPU
(``numba.cuda.jit(device=True)`` inside a ``cuda.grid(1)`` kernel).

Where to find a rule by its biological name:

===========================  ==============================================
rule                         module
===========================  ==============================================
random draws                 :mod:`gpusim.kernels.rng`
voxels and neighbours        :mod:`gpusim.kernels.lattice`
claims on a free voxel       :mod:`gpusim.kernels.claims`
tumour cell cycle, division  :mod:`gpusim.kernels.cell_cycle`
effector migration           :mod:`gpusim.kernels.migration`
apoptosis                    :mod:`gpusim.kernels.apoptosis`
occupancy upkeep             :mod:`gpusim.kernels.occupancy`
===========================  ==============================================
"""
