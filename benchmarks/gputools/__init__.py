"""GPU-analysis tools for the scripts in benchmarks/ and the tests; not part of the installed package.

- :mod:`gputools.compiled`: kernels compiled for a GPU without one, their resources, occupancy and machine code;
- :mod:`gputools.ncu`: Nsight Compute's report per rule;
- :mod:`gputools.variants`: the GPU check's variants compared rule by rule, and the settings it recommends;
- :mod:`gputools.memory_traffic`: the device memory a step touches, counted sector by sector on the CPU.

The scripts in benchmarks/ import it as ``gputools`` (their folder is first on ``sys.path``); the tests put
benchmarks/ on the path in ``tests/helpers.py``.
"""
