// kernels/molecules.py and kernels/pools.py in CUDA C, for the hand-written kernels (kernels/*.cu): a cell's
// molecules of a species, 2D binding in integers, and the flow cytometer's log-scale bins.  Integer arithmetic
// as numba's: 64-bit products wrap, division floors.
#pragma once

// The product of two 64-bit integers wrapping as numba's int64 arithmetic does (C leaves signed overflow
// undefined).
__device__ __forceinline__ long long wrapping_product(long long a, long long b) {
    return (long long)((unsigned long long)a * (unsigned long long)b);
}

// Python's (and numba's) floor division of 64-bit integers; C's `/` truncates towards zero.
__device__ __forceinline__ long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Cell i's molecules of a species: 0 where the run holds no row of it (kernels/pools.py molecules).
__device__ __forceinline__ long long molecules_of(const int* __restrict__ pools, long long pools_stride,
                                                  const long long* __restrict__ params, int species, int i) {
    long long row = params[params::POOL_ROW + species];
    return row < 0 ? 0 : (long long)pools[row * pools_stride + i];
}

// Add `amount` (possibly negative) molecules of a species to cell i, wrapping in the 32-bit column as numba's
// store does; nothing where the run holds no row of it (kernels/pools.py add_molecules).
__device__ __forceinline__ void add_molecules(int* pools, long long pools_stride, const long long* __restrict__ params,
                                              int species, int i, long long amount) {
    long long row = params[params::POOL_ROW + species];
    if (row >= 0) {
        int* cell = pools + row * pools_stride + i;
        *cell = (int)(unsigned)((unsigned long long)(long long)*cell + (unsigned long long)amount);
    }
}

// floor(sqrt(x)) of a non-negative 64-bit integer, exact (kernels/molecules.py isqrt).
__device__ __forceinline__ long long isqrt(long long x) {
    if (x <= 0) return 0;
    long long r = (long long)sqrt((double)x);
    while (wrapping_product(r, r) > x) r -= 1;
    while (wrapping_product(r + 1, r + 1) <= x) r += 1;
    return r;
}

// Complexes at quasi-steady state of 2D binding (kernels/molecules.py bound_complexes).
__device__ __forceinline__ long long bound_complexes(long long receptors, long long ligands, long long k_2d) {
    if (receptors <= 0 || ligands <= 0) return 0;
    long long total = receptors + ligands + k_2d;
    long long discriminant = (long long)((unsigned long long)total * total - 4ull * receptors * ligands);  // wraps
    long long c = floor_div(total - isqrt(discriminant), 2);
    long long least = receptors < ligands ? receptors : ligands;
    return c < least ? c : least;
}

// Number of bits of a positive integer, 0 for 0 or less (kernels/molecules.py bit_length).
__device__ __forceinline__ int bit_length(long long x) {
    return x > 0 ? 64 - __clzll(x) : 0;
}

// Flow-cytometer bin of a molecule count: 0 for none, then quarter-doublings up to 2**20 (kernels/molecules.py
// log_bin).
__device__ __forceinline__ int log_bin(long long x) {
    if (x <= 0) return 0;
    int bits = bit_length(x);
    if (bits > 20) return molecules::HIST_BINS - 1;
    if (bits <= 2) return (int)x;  // 1 -> 1, 2 -> 2, 3 -> 3
    int sub = (int)(x >> (bits - 3)) & 3;
    return 4 + (bits - 3) * molecules::HIST_BINS_PER_DOUBLING + sub;
}
