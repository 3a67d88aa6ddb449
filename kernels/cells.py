"""Cell kinds and state flags, shared by every rule and by the host.

``kind`` and ``state`` are uint8 columns.  The flags are uint8 constants so that
``state | FLAG`` stays uint8 on every target (numba, the CUDA simulator and
NumPy's scalar rules alike).
"""

import numpy as np

TUMOUR = 0
CAR_T = 1
CAR_NK = 2
CAR_M = 3
N_KINDS = 4

KIND_NAMES = ("tumour", "car_t", "car_nk", "car_m")
KIND_LABELS = ("tumour cell", "CAR-T", "CAR-NK", "CAR-macrophage")
EFFECTOR_KINDS = (CAR_T, CAR_NK, CAR_M)

# state flags
DEAD = np.uint8(1)  # marked for removal at the end of the step
QUIESCENT = np.uint8(2)  # tumour cell due to divide but without a free neighbour voxel
NOT_QUIESCENT = np.uint8(0xFF ^ 2)
