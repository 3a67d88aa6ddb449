"""What an effector feels in a synapse: bound complexes and the activating signal.

Activating signal = CAR complexes (plus second-receptor complexes when that
receptor is a CAR; a chimeric costimulatory receptor instead boosts the CAR
signal by up to 2x, costimulation only) minus a weight times iCAR complexes
(docs/model.md, synapse; Li 2022 for the iCAR).  Antigen that a tumour cell's own
acquired CAR binds in cis is masked and not available in trans (reverse
trogocytosis, phenomenon F).  Responses (lytic hit, stimulation, activation)
are sigmoidal in the signal; their probabilities are looked up in host-made
tables by :func:`signal_bucket`, an integer log-scale index.
"""

import math

import numpy as np

from gpusim.kernels.cells import TUMOUR
from gpusim.kernels.decorators import device
from gpusim.kernels.molecules import (
    ANTIGEN_A,
    ANTIGEN_B,
    CAR,
    ICAR,
    ICAR_LIGAND,
    RECEPTOR_B,
    bit_length,
    bound_complexes,
)
from gpusim.kernels.params import (
    CONTACT_Q16,
    COSTIMULATION_HALF,
    ICAR_WEIGHT_Q16,
    K_CAR,
    K_ICAR,
    K_RECEPTOR_B,
    RECEPTOR_B_KILLS,
)
from gpusim.kernels.pools import molecules

N_BUCKETS = 32 + 35 * 16  # exact below 32, then 16 buckets per doubling up to 2**40
_Q16 = np.int64(16)


@device
def signal_bucket(signal):
    """Index of a signal (complexes) in the response tables: exact below 32, then 1/16 of a doubling."""
    if signal <= 0:
        return 0
    if signal < 32:
        return signal
    bits = bit_length(signal)
    if bits > 40:
        return N_BUCKETS - 1
    sub = (signal >> (bits - 5)) & 15
    return 32 + (bits - 6) * 16 + sub


def bucket_signals():
    """Host side: a representative signal (geometric middle, complexes) of every bucket."""
    values = np.zeros(N_BUCKETS)
    values[:32] = np.arange(32)
    for b in range(32, N_BUCKETS):
        bits = (b - 32) // 16 + 6
        sub = (b - 32) % 16
        low = (16 + sub) << (bits - 5)
        high = low + (1 << (bits - 5))
        values[b] = math.sqrt(float(low) * float(high - 1))
    return values


@device
def in_contact(count, contact_q16):
    """Of ``count`` molecules of a pool, those inside the contact area."""
    return (np.int64(count) * contact_q16) >> _Q16


@device
def synapse_signal(effector, target, kind, target_kind, pools, params):
    """(signal, CAR complexes, receptor-B complexes) of ``effector`` (of ``kind``) engaging ``target``.

    Cis masking applies to tumour cells (docs/model.md, phenomenon F); antigen acquired by an
    effector stays visible in trans, which is what exposes it to fratricide
    (Hamieh 2019).
    """
    contact = params[CONTACT_Q16]
    k_car = params[K_CAR + kind]
    antigen_a = molecules(pools, params, ANTIGEN_A, target)
    masked = np.int64(0)
    if target_kind == TUMOUR:  # acquired CAR binds the tumour cell's own antigen in cis
        masked = bound_complexes(molecules(pools, params, CAR, target), antigen_a, k_car)
    car_complexes = bound_complexes(
        in_contact(molecules(pools, params, CAR, effector), contact), in_contact(antigen_a - masked, contact), k_car
    )
    b_complexes = bound_complexes(
        in_contact(molecules(pools, params, RECEPTOR_B, effector), contact),
        in_contact(molecules(pools, params, ANTIGEN_B, target), contact),
        params[K_RECEPTOR_B + kind],
    )
    icar_complexes = bound_complexes(
        in_contact(molecules(pools, params, ICAR, effector), contact),
        in_contact(molecules(pools, params, ICAR_LIGAND, target), contact),
        params[K_ICAR + kind],
    )
    signal = car_complexes
    if params[RECEPTOR_B_KILLS + kind] != 0:
        signal += b_complexes
    elif b_complexes > 0:
        signal += (car_complexes * b_complexes) // (b_complexes + params[COSTIMULATION_HALF + kind])
    signal -= (icar_complexes * params[ICAR_WEIGHT_Q16 + kind]) >> _Q16
    if signal < 0:
        signal = np.int64(0)
    return signal, car_complexes, b_complexes
