// kernels/rng.py in CUDA C, for the hand-written kernels (kernels/*.cu): the stateless counter-based draws,
// SplitMix64's finaliser after each key word, on unsigned 64-bit integers as numba's uint64 arithmetic.
#pragma once

#define GPUSIM_GOLDEN 0x9E3779B97F4A7C15ull

__device__ __forceinline__ unsigned long long mix64(unsigned long long x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// The random 64 bits of (seed, step, agent_id, purpose) (kernels/rng.py draw).
__device__ __forceinline__ unsigned long long draw(long long seed, long long step, long long agent_id,
                                                   long long purpose) {
    unsigned long long h = mix64((unsigned long long)seed + GPUSIM_GOLDEN);
    h = mix64(h ^ ((unsigned long long)purpose * GPUSIM_GOLDEN));
    h = mix64(h ^ (unsigned long long)step);
    return mix64(h ^ (unsigned long long)agent_id);
}

// A uniform integer in [0, count) by Lemire's multiply-shift on the draw's high 32 bits (kernels/rng.py
// draw_index).
__device__ __forceinline__ long long draw_index(long long seed, long long step, long long agent_id, long long purpose,
                                                long long count) {
    unsigned long long high = draw(seed, step, agent_id, purpose) >> 32;
    return (long long)((high * (unsigned long long)count) >> 32);
}
