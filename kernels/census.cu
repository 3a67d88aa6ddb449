// The census of kernels/census.py, hand-written in CUDA C for the GPU.
//
// Same counts bit for bit: per kind the cells cycling, quiescent, hypoxic, able to divide next step, the dead
// slots and the necrotic debris, the molecules of every species held, and for effectors those engaged,
// exhausted, wearing acquired antigen, activated, and their summed stimulation; and a histogram of antigen A
// per kind.  tests/test_cuda_c.py runs this file built for the host against the numba rule.
//
// Why by hand: on the H200 the census took 19.8 ms of the 52.2 ms step at 1e8 agents.  numba's kernel has
// every lane add to the block's shared counters on its own (then in 64-bit compare-and-swap loops, now in
// native 32-bit halves, kernels/tally.py), and the lanes of a warp, mostly cells of one kind, all add to the
// same few counters, one after the other.  Here the lanes of a warp that add to one counter sum first (a
// match, then one hardware reduction, kernels/tally.cuh), and a block strides over many cells before it adds
// its counters to the totals once.
#include "molecules.cuh"
#include "lattice.cuh"
#include "tally.cuh"

// Whether cell i could divide in the next step (kernels/cell_cycle.py could_divide_next_step).
__device__ bool could_divide_next_step(int i, const unsigned char* __restrict__ kind, unsigned char flags,
                                       const long long* __restrict__ voxel, const int* __restrict__ cycle_timer,
                                       const signed char* __restrict__ divisions_left, const int* __restrict__ occ,
                                       const long long* __restrict__ params) {
    if ((flags & (cells::DEAD | cells::NECROTIC)) != 0) return false;
    int k = kind[i];
    if (k != cells::TUMOUR) {
        if (divisions_left[i] <= 0) return false;
        if ((flags & cells::ACTIVATED) != 0) return cycle_timer[i] <= 0;
        return params[params::DIVISION_STEPS + k] <= 0;
    }
    if (cycle_timer[i] > 0) return false;
    Site site = site_of(voxel[i], params);
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) {
        long long v = neighbour_of(site, d);
        if (v >= 0 && (occ[v] < 0 || kind[occ[v]] != cells::TUMOUR)) return true;
    }
    return false;
}

extern "C" __global__ void census(long long n, const long long* live, const unsigned char* __restrict__ kind,
                                  const unsigned char* __restrict__ state, const long long* __restrict__ voxel,
                                  const signed char* __restrict__ partner, const int* __restrict__ cycle_timer,
                                  const signed char* __restrict__ divisions_left, const int* __restrict__ stimulation,
                                  const int* __restrict__ pools, long long pools_stride, const int* __restrict__ occ,
                                  const long long* __restrict__ params, long long detection,
                                  unsigned long long* totals) {
    __shared__ unsigned words[2 * census::CENSUS_SIZE];
    const BlockCounters counters{words, census::CENSUS_SIZE};
    clear_counters(counters);
    long long extent = launch_extent(n, live);
    for (long long first = warp_start(); first < extent; first += grid_stride()) {
        long long slot = first + lane_id();
        int i = slot < extent ? (int)slot : 0;
        unsigned char flags = slot < extent ? state[i] : 0;
        bool present = slot < extent && (flags & cells::GHOST) == 0;  // a copy of another process's cell: not counted
        int k = present ? kind[i] : 0;
        int row = k * census::CENSUS_ROW;
        bool dead = (flags & cells::DEAD) != 0;
        bool debris = !dead && (flags & cells::NECROTIC) != 0;
        bool alive = present && !dead && !debris;  // a live cell, cycling or quiescent
        int where = dead ? census::DEAD_SLOTS : debris ? census::NECROTIC_COUNT
                                                       : census::LIVE + (flags & cells::QUIESCENT);
        warp_count(counters, row + where, present);
        warp_count(counters, row + census::HYPOXIC_COUNT, alive && (flags & cells::HYPOXIC) != 0);
        warp_count(counters, row + census::DIVISION_CANDIDATES,
                   alive && could_divide_next_step(i, kind, flags, voxel, cycle_timer, divisions_left, occ, params));
        for (int s = 0; s < molecules::N_SPECIES; ++s) {
            long long pool_row = params[params::POOL_ROW + s];
            if (pool_row >= 0)  // a species the run holds (the same for every lane)
                warp_add(counters, row + census::POOL_SUM + s, alive ? pools[pool_row * pools_stride + i] : 0);
        }
        long long antigen_a = alive ? molecules_of(pools, pools_stride, params, molecules::ANTIGEN_A, i) : 0;
        warp_count(counters, census::ANTIGEN_HISTOGRAM + k * molecules::HIST_BINS + log_bin(antigen_a), alive);
        bool effector = alive && k != cells::TUMOUR;
        int stimulated = effector ? stimulation[i] : 0;
        warp_count(counters, row + census::ENGAGED, effector && partner[i] >= 0);
        warp_count(counters, row + census::EXHAUSTED, effector && stimulated >= params[params::EXHAUSTION_LIMIT + k]);
        long long acquired = effector ? antigen_a + molecules_of(pools, pools_stride, params, molecules::ANTIGEN_B, i)
                                      : 0;
        warp_count(counters, row + census::TROG_POSITIVE, effector && acquired >= detection);
        warp_count(counters, row + census::ACTIVATED_COUNT, effector && (flags & cells::ACTIVATED) != 0);
        warp_add(counters, row + census::STIMULATION_SUM, stimulated);
    }
    add_counters_to_totals(counters, totals);
}
