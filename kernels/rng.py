"""Stateless counter-based random numbers.

Every random decision in gpusim is ``draw(seed, step, agent_id, purpose)``: a
pure hash of four integers, so the value does not depend on which thread, which
backend or which process asks for it, nor on what was drawn before.  That is
what makes runs bitwise reproducible across thread counts, CPU and GPU, and
checkpoint/resume.

The mixer is the SplitMix64 finaliser (Steele, Lea & Flood 2014), applied after
each key word is folded in; every word therefore passes through a full
avalanche before the next one arrives.  All arithmetic is on uint64 so the CPU
and the GPU agree to the bit.

Decisions compare a draw against an integer threshold computed on the host
(:func:`probability_threshold`), never against a float, so floating-point
differences between devices cannot flip an event.
"""

import numpy as np

from gpusim.kernels.decorators import device

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)

# Purposes: one constant per kind of decision, so that two decisions of the
# same cell in the same step never share a draw.
MOVE_ATTEMPT = 1
MOVE_TURN = 2
MOVE_DIRECTION = 3
MOVE_BOUNCE = 4
MOVE_SQUEEZE = 5
MOVE_PRIORITY = 6
DIVISION_SITE = 7
DIVISION_PRIORITY = 8
CYCLE_LENGTH = 9
CYCLE_PHASE = 10
APOPTOSIS = 11
INITIAL_HEADING = 12
PLACEMENT = 13
SYNAPSE_HIT = 14
SYNAPSE_TAKE_A = 15
SYNAPSE_TAKE_B = 16
SYNAPSE_REVERSE = 17
SYNAPSE_STIMULATE = 18
SYNAPSE_ACTIVATE = 19
SYNAPSE_ENGULF = 20
TONIC = 21
EXHAUSTION_RECOVERY = 22
DAMAGE_REPAIR = 23
BITE_REPAIR = 24
ANTIGEN_LOSS = 25
CHEMOTAXIS = 26
ENGAGE = 27
VESSEL = 28  # + field index (28, 29): the vessels of a field's grid, drawn once per grid voxel
INTERNALISE = 30
EXPRESS = 32  # + species: one purpose per molecule species (32..37)
INHERIT = 40  # + set-point row (40, 41)
SET_POINT = 44  # + set-point row (44, 45)


@device
def mix64(x):
    """SplitMix64 finaliser: a bijective avalanche of one uint64."""
    x = (x ^ (x >> _S30)) * _MIX1
    x = (x ^ (x >> _S27)) * _MIX2
    return x ^ (x >> _S31)


@device
def draw(seed, step, agent_id, purpose):
    """The random uint64 of ``(seed, step, agent_id, purpose)``."""
    h = mix64(np.uint64(seed) + _GOLDEN)
    h = mix64(h ^ (np.uint64(purpose) * _GOLDEN))
    h = mix64(h ^ np.uint64(step))
    return mix64(h ^ np.uint64(agent_id))


@device
def draw_below(seed, step, agent_id, purpose, threshold):
    """True with probability ``threshold / 2**32`` (see :func:`probability_threshold`)."""
    return (draw(seed, step, agent_id, purpose) >> _S32) < np.uint64(threshold)


@device
def draw_index(seed, step, agent_id, purpose, count):
    """A uniform integer in ``[0, count)`` by Lemire's multiply-shift on 32 bits."""
    high = draw(seed, step, agent_id, purpose) >> _S32
    return np.int64((high * np.uint64(count)) >> _S32)


def probability_threshold(probability):
    """Host side: the integer threshold for :func:`draw_below` of a probability.

    The probability is clipped to [0, 1]; 1 maps to 2**32, which every 32-bit
    draw is below.
    """
    p = min(max(float(probability), 0.0), 1.0)
    return int(round(p * 2**32))
