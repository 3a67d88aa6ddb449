// The division-site rule of kernels/cell_cycle.py (choose_division_site), hand-written in CUDA C for the GPU.
//
// Same rule, same result bit for bit: the cycle clock runs down; a due cell (a tumour cell, or an activated
// effector with divisions left) that is not short of oxygen claims a free neighbour voxel drawn at random (by
// its direction), or turns quiescent if none is free.  Due tumour cells deep in a tumour have no free neighbour and look again
// every step, so at scale this is a scan of 26 occupants for most of the tumour.  The rule counts the free
// voxels in one loop and walks them again to the one drawn; here the 26 occupants are asked for in one
// unrolled round (no load waits for another) into a mask of the free ones, and the drawn one is found in
// the mask, in the rule's order of directions, without reading memory again.
// tests/test_cuda_c.py runs this file built for the host against the numba rule.
#include "lattice.cuh"
#include "rng.cuh"
#include "tally.cuh"

__device__ void division_site(int i, long long seed, long long step, const long long* __restrict__ agent_id,
                              const unsigned char* __restrict__ kind, unsigned char* state,
                              const long long* __restrict__ voxel, int* cycle_timer,
                              const signed char* __restrict__ divisions_left, const int* __restrict__ occ,
                              const long long* __restrict__ params, signed char* claim) {
    claim[i] = -1;
    unsigned char flags = state[i];
    if (kind[i] != cells::TUMOUR && ((flags & cells::ACTIVATED) == 0 || divisions_left[i] <= 0)) return;
    if ((flags & (cells::NECROTIC | cells::DEAD)) != 0) return;
    if ((flags & cells::HYPOXIC) != 0) {
        state[i] = flags | cells::QUIESCENT;
        return;
    }
    int remaining = cycle_timer[i];
    if (remaining > 0) {
        cycle_timer[i] = remaining - 1;
        return;
    }
    Site site = site_of(voxel[i], params);
    unsigned free_around = 0;  // bit d: the voxel in direction d is inside the lattice and empty
#pragma unroll
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) {
        long long v = neighbour_of(site, d);
        if (v >= 0 && occ[v] < 0) free_around |= 1u << d;
    }
    if (free_around == 0) {
        state[i] = flags | cells::QUIESCENT;
        return;
    }
    state[i] = flags & cells::NOT_QUIESCENT;
    long long pick = draw_index(seed, step, agent_id[i], rng::DIVISION_SITE, __popc(free_around));
    unsigned rest = free_around;
    for (long long skipped = 0; skipped < pick; ++skipped) rest &= rest - 1;  // the pick-th free voxel, from 0
    claim[i] = (signed char)(__ffs(rest) - 1);  // its direction
}

extern "C" __global__ void choose_division_site(long long n, const long long* live, long long seed, long long step,
                                                const long long* __restrict__ agent_id,
                                                const unsigned char* __restrict__ kind, unsigned char* state,
                                                const long long* __restrict__ voxel, int* cycle_timer,
                                                const signed char* __restrict__ divisions_left,
                                                const int* __restrict__ occ, const long long* __restrict__ params,
                                                signed char* claim) {
    long long extent = launch_extent(n, live);
    for (long long i = thread_start(); i < extent; i += grid_stride())
        division_site((int)i, seed, step, agent_id, kind, state, voxel, cycle_timer, divisions_left, occ, params,
                      claim);
}
