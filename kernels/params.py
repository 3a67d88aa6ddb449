"""Layout of the integer parameter vector every rule receives.

Rules read ``params[NAME]``, or ``params[NAME + kind]`` for a per-kind value.
The host (:mod:`gpusim.parameters`) fills the vector from the validated
config; every probability arrives here already converted to a 32-bit
threshold (:func:`gpusim.kernels.rng.probability_threshold`), so rules decide
events by integer comparison alone.
"""

from gpusim.kernels.cells import N_KINDS

# lattice extent in voxels
NZ = 0
NY = 1
NX = 2
# per kind: chance per step to attempt a step to a neighbour voxel
MOVE_THRESHOLD = 3
# per kind: chance per attempt to pick a new heading (1 - persistence)
TURN_THRESHOLD = MOVE_THRESHOLD + N_KINDS
# per kind: chance that a step into a tumour cell's voxel swaps the two cells
SQUEEZE_THRESHOLD = TURN_THRESHOLD + N_KINDS
# per kind: chance per step of apoptosis
APOPTOSIS_THRESHOLD = SQUEEZE_THRESHOLD + N_KINDS

N_PARAMS = APOPTOSIS_THRESHOLD + N_KINDS
