"""Diffusion-reaction of the soluble fields (oxygen, chemokine): the solver's rules.

Each field u (oxygen in mmHg, chemokine in nM, ...) obeys

    du/dt = D lap(u) - lambda(x) u + s(x)

on a grid that may be coarser than the cell lattice by an integer factor.
The loss rate lambda is the field's decay plus the uptake of the live cells
in the grid voxel; s is what cells there secrete (tumour cells make chemokine,
more while under attack).  Faces of the domain either supply the field at a
fixed value (Dirichlet, placed at the centres of the ghost voxels half a grid
voxel outside; blood supply at the tissue's edge) or let nothing through;
vessel voxels inside the domain hold the supply value too.

One step of the solver is the Douglas alternating-direction implicit step in
delta form (Douglas & Gunn 1964) over a step tau:

    (1 - tau Lx)(1 - tau Ly)(1 - tau Lz) delta = tau (L u + s),    u <- u + delta,

where L = D lap - lambda and Lx, Ly, Lz are its parts along each axis (the
loss goes with Lx, so a loss-dominated error is removed in one step).  Each factor is a tridiagonal system per
grid line, solved exactly by the Thomas algorithm, as BioFVM does for its
locally one-dimensional splitting (Ghaffarizadeh 2016 Bioinformatics 32:1256).
It is unconditionally stable, and unlike a plain splitting its fixed point is
the exact discrete steady state: when delta is zero, L u + s = 0.  With
no-flux faces and no loss it conserves the total to round-off (the columns
of each factor sum to one).  The host (:mod:`gpusim.fields`) uses it two ways:

* a field that follows time (chemokine) takes one step with tau = its field
  step: first order in time;
* a quasi-steady field (oxygen, which equilibrates within seconds) is driven
  to its steady state by several steps with tau cycling from the finest to the
  coarsest time scale of the grid (ADI iteration with cycled parameters,
  Wachspress 1966), so ripples at every wavelength die out within an update.

Values are not clipped at zero (that would break conservation); a field can
dip slightly below zero in a transient, which the rules read as none.

Determinism: the field values decide events (hypoxia, necrosis, chemotaxis),
so they must be bitwise equal on CPU and GPU.  Products go through
:func:`mul`, which on the GPU is the correctly rounded multiply intrinsic
(``dmul_rn``) that the compiler never fuses into a multiply-add; additions and
divisions are IEEE-exact on both targets.  With no fused operations, the same
sequence of IEEE operations gives the same bits everywhere.
"""

import numba
import numpy as np

from gpusim.kernels.lattice import index_coords, quotient, tissue_coords
from gpusim.kernels.decorators import GRID, device, device_for_targets, rule
from gpusim.kernels.params import COARSENING_DIVISOR, GRID_NX, GRID_NY

def _mul_cuda(a, b):
    return libdevice.dmul_rn(a, b)  # noqa: F821 - the launch layer provides numba.cuda.libdevice on this target


def _mul_simulated(a, b):
    return a * b  # numba's CUDA simulator runs Python floats (nothing fused) and has no libdevice


@device_for_targets(cuda=_mul_simulated if numba.config.ENABLE_CUDASIM else _mul_cuda)
def mul(a, b):
    """a * b, correctly rounded and never fused into a multiply-add (float64)."""
    return a * b


@device
def face_is_supplied(faces, axis, high):
    """Whether the face of ``axis`` (0 z, 1 y, 2 x) at the low or high end supplies the field."""
    return (faces >> (2 * axis + high)) & 1


@rule(reach=GRID)
def reaction_terms(v, first_grid_voxel, first_layer, nzf, nyf, nxf, coarsening, ny, nx, occ, kind, state, damage,
                   live_flags, uptake, secretion, attacked_secretion, decay, rate, source):
    """Loss rate (decay + uptake, per minute) and secretion (per minute) of grid voxel ``first_grid_voxel + v``,
    for every field.

    The grid voxel gathers the cells of its ``coarsening``^3 lattice voxels;
    ``uptake[f, kind]`` and the secretion tables are per cell, already divided
    by the number of lattice voxels in a grid voxel.  A cell with any of
    ``live_flags`` set (necrotic debris) neither takes up nor secretes; a
    tumour cell with lytic damage secretes at the under-attack rate.  ``occ``
    holds the lattice from layer ``first_layer`` on (a rank's layers, in a
    split run; the rank computes the grid voxels over the layers it steps).
    """
    g = first_grid_voxel + np.int64(v)  # int64: the CPU loop index is unsigned
    zf, yf, xf = index_coords(g, nyf, nxf)
    n_fields = rate.shape[0]
    for f in range(n_fields):
        rate[f, g] = decay[f]
        source[f, g] = 0.0
    for dz in range(coarsening):
        for dy in range(coarsening):
            for dx in range(coarsening):
                z = zf * coarsening + dz - first_layer
                y = yf * coarsening + dy
                x = xf * coarsening + dx
                cell = occ[(z * ny + y) * nx + x]
                if cell < 0 or (state[cell] & live_flags) != 0:
                    continue
                k = int(kind[cell])
                attacked = damage[cell] > 0
                for f in range(n_fields):
                    rate[f, g] += uptake[f, k]
                    if attacked:
                        source[f, g] += attacked_secretion[f, k]
                    else:
                        source[f, g] += secretion[f, k]


@device
def _ghost(u, field, neighbour, faces, axis, high, supply):
    """Value beyond a grid voxel's face: its neighbour, or at the domain's edge the supply or itself (no flux)."""
    if neighbour >= 0:
        return field[neighbour]
    if face_is_supplied(faces, axis, high):
        return supply
    return u


# the coefficients of one solver step of one field: [D tau / h^2, supply value, tau]
R_TAU = 0
SUPPLY_VALUE = 1
TAU = 2


@rule(reach=GRID)
def diffusion_residual(v, nzf, nyf, nxf, field, rate, source, fixed, faces, coefficients, delta):
    """``delta[v] = tau (D lap(u) - lambda u + s)`` at grid voxel ``v``: the right-hand side of the ADI step.

    ``rate`` and ``source`` are one field's rows from :func:`reaction_terms`
    (per minute).  Supplied voxels stay fixed.
    """
    if fixed[v]:
        delta[v] = 0.0
        return
    r = coefficients[R_TAU]
    supply = coefficients[SUPPLY_VALUE]
    tau = coefficients[TAU]
    plane = nyf * nxf
    z, y, x = index_coords(np.int64(v), nyf, nxf)  # int64: the CPU loop index is unsigned
    u = field[v]
    total = _ghost(u, field, v - plane if z > 0 else -1, faces, 0, 0, supply)
    total += _ghost(u, field, v + plane if z < nzf - 1 else -1, faces, 0, 1, supply)
    total += _ghost(u, field, v - nxf if y > 0 else -1, faces, 1, 0, supply)
    total += _ghost(u, field, v + nxf if y < nyf - 1 else -1, faces, 1, 1, supply)
    total += _ghost(u, field, v - 1 if x > 0 else -1, faces, 2, 0, supply)
    total += _ghost(u, field, v + 1 if x < nxf - 1 else -1, faces, 2, 1, supply)
    laplacian = total - mul(6.0, u)
    delta[v] = mul(r, laplacian) - mul(tau, mul(rate[v], u)) + mul(tau, source[v])


@rule(reach=GRID)
def line_solve(line, axis, nzf, nyf, nxf, rate, fixed, faces, coefficients, delta, scratch):
    """Solve ``(1 - tau L_axis) x = delta`` along one grid line, in place (Thomas algorithm).

    Row k of the line: ``-r x[k-1] + (1 + 2r + tau lambda) x[k] - r x[k+1]``, with the loss term on x lines
    only; at a no-flux face the missing neighbour is the voxel itself (diagonal 1 + r),
    at a supplied face it is held (its change is zero).  A supplied voxel's row
    is the identity with a zero right-hand side.  ``scratch`` holds the
    eliminated super-diagonal.
    """
    index = np.int64(line)  # the CPU loop index is unsigned; unsigned with signed arithmetic gives floats
    if axis == 2:
        length = nxf
        start = index * nxf
        stride = 1
    elif axis == 1:
        length = nyf
        z = index // nxf
        start = z * nyf * nxf + (index - z * nxf)
        stride = nxf
    else:
        length = nzf
        start = index
        stride = nyf * nxf
    r = coefficients[R_TAU]
    tau = coefficients[TAU] if axis == 2 else 0.0
    low_open = face_is_supplied(faces, axis, 0) == 0
    high_open = face_is_supplied(faces, axis, 1) == 0
    previous_c = 0.0
    previous_d = 0.0
    for k in range(length):
        p = start + k * stride
        if fixed[p]:
            scratch[p] = 0.0
            delta[p] = 0.0
            previous_c = 0.0
            previous_d = 0.0
            continue
        diagonal = 1.0 + mul(2.0, r) + mul(rate[p], tau)
        if k == 0 and low_open:
            diagonal -= r
        if k == length - 1 and high_open:
            diagonal -= r
        lower = -r if k > 0 else 0.0
        upper = -r if k < length - 1 else 0.0
        if k > 0 and fixed[p - stride]:
            lower = 0.0
        if k < length - 1 and fixed[p + stride]:
            upper = 0.0
        denominator = diagonal - mul(lower, previous_c)
        previous_c = upper / denominator
        previous_d = (delta[p] - mul(lower, previous_d)) / denominator
        scratch[p] = previous_c
        delta[p] = previous_d
    following = 0.0
    for k in range(length - 1, -1, -1):
        p = start + k * stride
        following = delta[p] - mul(scratch[p], following)
        delta[p] = following


@rule(reach=GRID)
def apply_update(v, field, delta, fixed, coefficients):
    """``u += delta``; supplied voxels hold the supply value."""
    if fixed[v]:
        field[v] = coefficients[SUPPLY_VALUE]
        return
    field[v] = field[v] + delta[v]


@device
def grid_coords(voxel, params):
    """(z, y, x) on the field grid of the grid voxel holding lattice voxel ``voxel``."""
    z, y, x = tissue_coords(voxel, params)
    high = params[COARSENING_DIVISOR]
    low = params[COARSENING_DIVISOR + 1]
    return quotient(z, high, low), quotient(y, high, low), quotient(x, high, low)


@device
def grid_voxel(voxel, params):
    """Index of the field grid voxel holding lattice voxel ``voxel``."""
    zf, yf, xf = grid_coords(voxel, params)
    return (zf * params[GRID_NY] + yf) * params[GRID_NX] + xf
