"""Layout of the integer parameter vector every rule receives.

Rules read ``params[NAME]``, ``params[NAME + kind]`` for a per-kind value, or
``params[NAME + kind * N_SPECIES + species]`` for a per-kind, per-species one.
The host (:mod:`gpusim.parameters`) fills the vector from the validated
config.  Every probability and fraction arrives already converted to a 32-bit
fixed-point number (``round(p * 2**32)``, see
:func:`gpusim.kernels.rng.probability_threshold`), every duration to whole
steps and every affinity to a 2D dissociation constant in molecules per
contact area, so rules decide events by integer arithmetic alone.
"""

from gpusim.kernels.cells import N_KINDS
from gpusim.kernels.decorators import Layout
from gpusim.kernels.molecules import N_SET_POINTS, N_SPECIES

_layout = Layout()
_block = _layout.block


# lattice extent in voxels
NZ = _block(1)
NY = _block(1)
NX = _block(1)
# the divisors that find a voxel's coordinates, as multipliers (kernels.lattice.division_magic): high, low half
PLANE_DIVISOR = _block(2)  # NY * NX
ROW_DIVISOR = _block(2)  # NX
# the z of this lattice's first layer in the whole lattice: 0, or where a rank's layers start in a run split across
# processes (gpusim.parallel); what depends on where a voxel is in the tissue (the fields' grid, placement) adds it
FIRST_LAYER = _block(1)

# --- migration (per kind) -------------------------------------------------------------
MOVE_THRESHOLD = _block(N_KINDS)  # chance per step to attempt a step to a neighbour voxel
TURN_THRESHOLD = _block(N_KINDS)  # chance per attempt to pick a new heading (1 - persistence)
SQUEEZE_THRESHOLD = _block(N_KINDS)  # chance that a step into a tumour cell's voxel swaps the two

# --- death (per kind) ---------------------------------------------------------------------
APOPTOSIS_THRESHOLD = _block(N_KINDS)  # chance per step of apoptosis
LETHAL_DAMAGE = _block(N_KINDS)  # lytic hits that kill
DAMAGE_REPAIR = _block(N_KINDS)  # chance per step to repair one hit
LETHAL_BITES = _block(N_KINDS)  # CAR-M bites that kill (trogoptosis)
BITE_REPAIR = _block(N_KINDS)  # chance per step to repair one bite

# --- expression (per kind and species) -----------------------------------------------------
SET_POINT = _block(N_KINDS * N_SPECIES)  # molecules; tumour antigens use the per-cell set points
SYNTHESIS = _block(N_KINDS * N_SPECIES)  # fraction of the gap below the set point made per step
DECAY = _block(N_KINDS * N_SPECIES)  # fraction of the excess above the set point lost per step
POOL_ROW = _block(N_SPECIES)  # the species' row in the run's pools table, or -1: the run holds none (kernels.pools)
SET_POINT_ROW = _block(N_SET_POINTS)  # a set point's row in the run's set-point table, or -1 likewise

# --- synapse (per effector kind) ----------------------------------------------------------
CONTACT_Q16 = _block(1)  # fraction of a surface inside the synapse, times 2**16
K_CAR = _block(N_KINDS)  # 2D dissociation constants, molecules per contact area
K_RECEPTOR_B = _block(N_KINDS)
K_ICAR = _block(N_KINDS)
RECEPTOR_B_KILLS = _block(N_KINDS)  # 1: receptor B is a CAR; 0: a costimulatory receptor
COSTIMULATION_HALF = _block(N_KINDS)  # CCR complexes giving half the maximal boost of the CAR signal
ICAR_WEIGHT_Q16 = _block(N_KINDS)  # signal removed per iCAR complex, times 2**16
TONIC_WEIGHT_Q16 = _block(N_KINDS)  # signal per cis complex of acquired antigen with own CAR, times 2**16
RECOGNITION = _block(N_KINDS)  # signal needed to engage
ATTACKS_EFFECTORS = _block(N_KINDS)  # 1: engages effectors wearing acquired antigen (fratricide)
TROGOCYTOSIS = _block(N_KINDS)  # fraction of bound antigen A taken per step (complexes that hold through the pull)
TROGOCYTOSIS_B = _block(N_KINDS)  # the same of antigen B bound by receptor B
REVERSE_TROGOCYTOSIS = _block(N_KINDS)  # fraction of bound CAR given per step
INTERNALISATION = _block(N_KINDS)  # fraction of its CAR an engaged effector internalises per step
SYNAPSE_STEPS = _block(N_KINDS)  # steps until a synapse ends
REFRACTORY_STEPS = _block(N_KINDS)  # steps after a synapse before the next
ENGULF = _block(N_KINDS * N_KINDS)  # [effector kind * N_KINDS + target kind]: chance a CAR-M contact ends in engulfment
BITE_SHARE = _block(N_KINDS)  # fraction of each target pool removed by a bite
EXHAUSTION_LIMIT = _block(N_KINDS)  # stimulated steps at which hits and proliferation stop
EXHAUSTION_RECOVERY = _block(N_KINDS)  # chance per unstimulated step to recover one step
DIVISION_BUDGET = _block(N_KINDS)  # divisions an effector may make
DIVISION_STEPS = _block(N_KINDS)  # steps from activation to division

# --- tumour inheritance ---------------------------------------------------------------------
ANTIGEN_LOSS = _block(1)  # chance per division that the daughter loses antigen A

# --- fields: oxygen and chemokine (grid coarser than the lattice by COARSENING) --------------
COARSENING = _block(1)  # lattice voxels per grid voxel edge
COARSENING_DIVISOR = _block(2)  # COARSENING as a multiplier (kernels.lattice.division_magic)
GRID_NZ = _block(1)
GRID_NY = _block(1)
GRID_NX = _block(1)
NECROSIS_STEPS = _block(1)  # anoxic steps after which a tumour cell dies necrotic
DEBRIS_STEPS = _block(1)  # steps necrotic debris holds its voxel
CHEMOTAXIS_THRESHOLD = _block(N_KINDS)  # chance a new heading follows the chemokine gradient

N_PARAMS = _layout.size

# rows of the signal response tables (tables[row, kind, bucket], probabilities times 2**32)
HIT_TABLE = 0  # lytic hit per step
STIMULATION_TABLE = 1  # a step that counts towards exhaustion
ACTIVATION_TABLE = 2  # activation for proliferation
N_TABLES = 3
