"""Cell kinds and state flags, shared by every rule and by the host.

``kind`` and ``state`` are uint8 columns.  The flags are uint8 constants so that
``state | FLAG`` stays uint8 on every target (numba, the CUDA simulator and
NumPy's scalar rules alike).

A rule that does arithmetic with a small-integer column (an index such as
``params[NAME + kind]``) first widens it with ``int(...)``: numba widens to
int64 on its own, but the CUDA simulator follows NumPy, where ``uint8 + 200``
stays uint8 and wraps.
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
ACTIVATED = np.uint8(4)  # effector activated to proliferate, dividing when its clock runs out
HELD = np.uint8(8)  # held in a synapse by an effector this step: does not move
ENGULFED = np.uint8(16)  # engulfed whole by a CAR-macrophage this step
NECROTIC = np.uint8(32)  # a tumour cell dead of anoxia, left as debris in its voxel until cleared
HYPOXIC = np.uint8(64)  # a tumour cell short of oxygen: it does not cycle
GHOST = np.uint8(128)  # a copy of a cell another process steps (the halo of a run split across processes)
# every flag a cell can carry from one step to the next (the dead are compacted away): what a checkpoint may hold
PERSISTENT_FLAGS = np.uint8(QUIESCENT | ACTIVATED | HELD | ENGULFED | NECROTIC | HYPOXIC)
NOT_QUIESCENT = np.uint8(0xFF ^ 2)
NOT_HYPOXIC = np.uint8(0xFF ^ 64)
NOT_ACTIVATED = np.uint8(0xFF ^ 4)
NOT_HELD = np.uint8(0xFF ^ 8)

# causes of death (kills by cause are tallied per cause and kind)
APOPTOSIS = 0
LYSIS = 1  # lethal lytic damage of a tumour cell
FRATRICIDE = 2  # lethal lytic damage of an effector, dealt by another effector
PHAGOCYTOSIS = 3  # engulfed whole by a CAR-macrophage
TROGOPTOSIS = 4  # killed by enough trogocytic bites
DEPLETION = 5  # removed by a scheduled depletion (e.g. the CAR-T removal arm of Hamieh 2019)
NECROSIS = 6  # anoxic for too long; the cell stays as debris until cleared
N_CAUSES = 7
CAUSE_NAMES = ("apoptosis", "lysis", "fratricide", "phagocytosis", "trogoptosis", "depletion", "necrosis")

# labels of the cell map beyond the kinds (0 empty, 1 + kind a live cell)
DEBRIS_LABEL = N_KINDS + 1
