"""Hypoxia and necrosis: what oxygen does to tumour cells.

A tumour cell reads the oxygen partial pressure of its grid voxel.  Below the
hypoxia level (PhysiCell's proliferation threshold, 5 mmHg; Ghaffarizadeh
2018) it stops cycling and is quiescent until oxygen returns; below the
anoxia level (PhysiCell's necrosis threshold, 2.5 mmHg) it counts the steps it
stays there, and after ``tumour.necrosis_time`` without a break it dies
necrotic (:func:`gpusim.kernels.death.die`) and leaves debris that holds its
voxel until it is cleared.  Together these make the hypoxic shell and the
necrotic core of a large spheroid: cells deeper than oxygen's penetration
depth (about sqrt(D / uptake), ~100 um) starve.

Oxygen is a float field; the comparisons below are exact on every backend
because the field itself is bitwise identical there (kernels/diffusion.py).
"""

from gpusim.kernels.cells import DEAD, HYPOXIC, NECROTIC, NOT_HYPOXIC, TUMOUR
from gpusim.kernels.diffusion import grid_voxel
from gpusim.kernels.decorators import rule

HYPOXIA_LEVEL = 0  # rows of the oxygen_levels vector (mmHg)
ANOXIA_LEVEL = 1


@rule(reach=0)
def sense_oxygen(i, kind, state, voxel, anoxic_steps, oxygen, oxygen_levels, params):
    """Mark tumour cell ``i`` hypoxic or not, and count its consecutive anoxic steps."""
    if kind[i] != TUMOUR or (state[i] & (NECROTIC | DEAD)) != 0:
        return
    level = oxygen[grid_voxel(voxel[i], params)]
    if level < oxygen_levels[HYPOXIA_LEVEL]:
        state[i] = state[i] | HYPOXIC
    else:
        state[i] = state[i] & NOT_HYPOXIC
    if level < oxygen_levels[ANOXIA_LEVEL]:
        anoxic_steps[i] += 1
    else:
        anoxic_steps[i] = 0
