"""The model's rules, each a plain per-cell Python function written once.

:mod:`gpusim.kernels.codegen` compiles every rule twice, for the CPU
(``numba.njit`` inside a ``prange`` loop) and for the GPU
(``numba.cuda.jit(device=True)`` inside a ``cuda.grid(1)`` kernel).

How rules are written and launched:

=================================================  ====================================
job                                                module
=================================================  ====================================
``@rule``, ``@device``, ``fuse``, binding by name  :mod:`gpusim.kernels.decorators`
code generation and the launchers' cache           :mod:`gpusim.kernels.codegen`
the CPU launcher, a launch's extent (``Count``)    :mod:`gpusim.kernels.cpu_launcher`
the GPU launcher (numba, CUDA C, direct)           :mod:`gpusim.kernels.gpu_launcher`
the experimental GPU settings (``GPUSIM_CUDA_*``)  :mod:`gpusim.kernels.gpu_options`
hand-written CUDA C forms of five rules            :mod:`gpusim.kernels.cuda_c`
=================================================  ====================================

Where to find a rule by its biological name:

=================================================  ====================================
rule                                               module
=================================================  ====================================
random draws                                       :mod:`gpusim.kernels.rng`
voxels and neighbours                              :mod:`gpusim.kernels.lattice`
claims on a free voxel                             :mod:`gpusim.kernels.claims`
molecule pools, 2D binding, flow-cytometer bins    :mod:`gpusim.kernels.molecules`
activating signal, iCAR inhibition, costimulation  :mod:`gpusim.kernels.signal`
engage, synapse, lytic hits, trogocytosis, bites   :mod:`gpusim.kernels.synapse`
expression, internalisation, exhaustion recovery   :mod:`gpusim.kernels.expression`
cell cycle, division, inheritance of set points    :mod:`gpusim.kernels.cell_cycle`
effector migration                                 :mod:`gpusim.kernels.migration`
death: lysis, fratricide, phagocytosis,
trogoptosis, apoptosis, depletion                  :mod:`gpusim.kernels.death`
census and virtual flow cytometer                  :mod:`gpusim.kernels.census`
per-step ledger (tallies)                          :mod:`gpusim.kernels.tally`
occupancy upkeep, placing new cells                :mod:`gpusim.kernels.occupancy`
integer parameter layout                           :mod:`gpusim.kernels.params`
=================================================  ====================================
"""
