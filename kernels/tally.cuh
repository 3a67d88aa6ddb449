// kernels/tally.py's counters in CUDA C, for the hand-written kernels (kernels/*.cu), and the loop that walks a
// launch's indices.
//
// A kernel strides over its indices a warp at a time (the launcher starts no more blocks than the GPU holds at
// once), and every lane of the warp takes each step of the loop body together, those past the extent with
// nothing to add.  A tallying kernel adds into its block's counters in shared memory: the lanes that add to
// the same counter sum their amounts first (a match, then a warp reduction), and the lowest of them adds the
// sum; each block adds its counters to the launch's totals once, at its end.  Integer sums are exact in any
// order, so the totals equal the CPU's.
#pragma once

#define FULL_WARP 0xffffffffu

__device__ __forceinline__ int lane_id() { return (int)(threadIdx.x & 31); }

// The extent of a launch: n, or where the count lives on the device (kernels.launch.Count) that count, never
// more than n.
__device__ __forceinline__ long long launch_extent(long long n, const long long* live) {
    if (live == nullptr) return n;
    return *live < n ? *live : n;
}

// The first index of this warp's first step, and the distance between steps (a whole grid).
__device__ __forceinline__ long long warp_start() { return (long long)blockIdx.x * blockDim.x + (threadIdx.x & ~31u); }
__device__ __forceinline__ long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

// This thread's first index, in kernels that stride a thread (not a warp) at a time.
__device__ __forceinline__ long long thread_start() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }

// The sum of a 32-bit value over `lanes`, every one of which calls this together: one instruction from compute
// capability 8.0 on (and in tests/cuda_host.h), a shuffle a lane before.
__device__ __forceinline__ int lanes_sum(unsigned lanes, int value) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    return __reduce_add_sync(lanes, value);
#else
    int sum = 0;
    for (unsigned rest = lanes; rest != 0; rest &= rest - 1) sum += __shfl_sync(lanes, value, __ffs(rest) - 1);
    return sum;
#endif
}

// Count the lanes for which `counted` holds into `counters[slot]` (a block's shared counters, or the launch's
// totals; any slot where it does not hold); every lane of the warp calls this together.
__device__ __forceinline__ void warp_count(long long* counters, int slot, bool counted) {
    unsigned peers = __match_any_sync(FULL_WARP, slot);
    unsigned counting = __ballot_sync(FULL_WARP, counted) & peers;
    if (counted && lane_id() == __ffs(counting) - 1)
        atomicAdd((unsigned long long*)&counters[slot], (unsigned long long)__popc(counting));
}

// Add each lane's `amount` (32 bits; 0 where it adds nothing) to counter `slot`; every lane of the warp calls
// this together.
__device__ __forceinline__ void warp_add(long long* counters, int slot, int amount) {
    unsigned peers = __match_any_sync(FULL_WARP, slot);
    int low = lanes_sum(peers, amount & 0xffff);
    int high = lanes_sum(peers, amount >> 16);  // with the sign: exact for negative amounts too
    long long total = (long long)high * 65536 + low;
    if (total != 0 && lane_id() == __ffs(peers) - 1)
        atomicAdd((unsigned long long*)&counters[slot], (unsigned long long)total);
}

// A block's counters: zeroed at its start, added to the launch's totals at its end.
__device__ __forceinline__ void clear_counters(long long* counters, int size) {
    for (int k = threadIdx.x; k < size; k += blockDim.x) counters[k] = 0;
    __syncthreads();
}

__device__ __forceinline__ void add_counters_to_totals(const long long* counters, int size,
                                                       unsigned long long* totals) {
    __syncthreads();
    for (int k = threadIdx.x; k < size; k += blockDim.x)
        if (counters[k] != 0) atomicAdd(totals + k, (unsigned long long)counters[k]);
}
