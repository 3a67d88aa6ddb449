// The claim rule of kernels/claims.py (resolve_claim), hand-written in CUDA C for the GPU.
//
// Same rule, same result bit for bit: a cell that claims a voxel (by its direction) wins it unless another
// neighbour of that voxel claims it too (by the direction back) with a higher priority (a draw of the step and
// the phase; ties to the higher id).  The
// rule's loop waits for each neighbour's occupant, then its claim, before asking for the next (52 memory trips
// in a chain); here the 26 occupants are asked for at once, then their claims at once, and only rivals, few
// and mostly none, are read further.  Whether any rival outranks the cell does not depend on the order in
// which they are looked at.  tests/test_cuda_c.py runs this file built for the host against the numba rule.
#include "lattice.cuh"
#include "rng.cuh"
#include "tally.cuh"

__device__ unsigned char wins_claim(int i, long long seed, long long step, long long purpose,
                                    const long long* __restrict__ agent_id, const long long* __restrict__ voxel,
                                    const signed char* __restrict__ claim, const int* __restrict__ occ,
                                    const long long* __restrict__ params) {
    int direction = claim[i];
    if (direction < 0) return 0;
    Site site = site_towards(site_of(voxel[i], params), direction);  // the claimed voxel
    int occupant[lattice::N_DIRECTIONS];
    neighbours_of(site, occ, occupant);
    unsigned rivals = 0;  // bit d: the cell next to the voxel in direction d claims it too (by the direction back)
    // The claims in two rounds of 13: all 26 at once took 82 registers a thread on sm_90 (25% occupancy),
    // 13 at a time 45 (62%), so more warps keep their loads in flight.
#pragma unroll 13
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) {
        int rival = occupant[d];
        if (rival >= 0 && rival != i && claim[rival] == lattice::N_DIRECTIONS - 1 - d) rivals |= 1u << d;
    }
    if (rivals == 0) return 1;
    long long my_id = agent_id[i];
    unsigned long long my_priority = draw(seed, step, my_id, purpose);
    for (unsigned rest = rivals; rest != 0; rest &= rest - 1) {
        long long their_id = agent_id[occupant_of(site, __ffs(rest) - 1, occ)];  // the slot from the cache
        unsigned long long their_priority = draw(seed, step, their_id, purpose);
        if (their_priority > my_priority || (their_priority == my_priority && their_id > my_id)) return 0;
    }
    return 1;
}

extern "C" __global__ void resolve_claim(long long n, const long long* live, long long seed, long long step,
                                         long long purpose, const long long* __restrict__ agent_id,
                                         const long long* __restrict__ voxel, const signed char* __restrict__ claim,
                                         const int* __restrict__ occ, const long long* __restrict__ params,
                                         unsigned char* won) {
    long long extent = launch_extent(n, live);
    for (long long i = thread_start(); i < extent; i += grid_stride())
        won[i] = wins_claim((int)i, seed, step, purpose, agent_id, voxel, claim, occ, params);
}
