// kernels/tally.py's counters in CUDA C, for the hand-written kernels (kernels/*.cu), and the loop that walks a
// launch's indices.
//
// A kernel strides over its indices a warp at a time (the launcher starts no more blocks than the GPU holds at
// once), and every lane of the warp takes each step of the loop body together, those past the extent with
// nothing to add.  A tallying kernel adds into its block's counters in shared memory: the lanes that add to
// the same counter sum their amounts first (a match, then a warp reduction), and the lowest of them adds the
// sum, in 32-bit halves (BlockCounters); each block adds its counters to the launch's totals once, at its end.  Integer sums are exact in any
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

// A block's counters in shared memory, each int64 counter as two 32-bit words (as kernels/tally.py's on the
// GPU): words[slot] its low half, words[size + slot] its high half.  A 64-bit atomic add in shared memory is a
// compare-and-swap loop (ATOMS.CAST.SPIN.64 on sm_90), a 32-bit one an instruction.
struct BlockCounters {
    unsigned* words;
    int size;
};

// Add `amount` to counter `slot`: of the launch's totals in global memory (a 64-bit add is an instruction there),
// or of a block's counters, the low word, then the carry out of it with the amount's high half to the high word
// (counts and sums below 2**32 never need it); exact modulo 2**64, so equal to an int64 sum.
__device__ __forceinline__ void add_to(long long* totals, int slot, long long amount) {
    atomicAdd((unsigned long long*)&totals[slot], (unsigned long long)amount);
}

__device__ __forceinline__ void add_to(BlockCounters counters, int slot, long long amount) {
    unsigned long long value = (unsigned long long)amount;
    unsigned low = (unsigned)value;
    unsigned before = atomicAdd(&counters.words[slot], low);
    unsigned high = (unsigned)(value >> 32) + (unsigned)((unsigned)(before + low) < before);
    if (high != 0) atomicAdd(&counters.words[counters.size + slot], high);
}

// The int64 that counter `slot` of a block holds.
__device__ __forceinline__ long long whole_counter(BlockCounters counters, int slot) {
    return (long long)(((unsigned long long)counters.words[counters.size + slot] << 32) | counters.words[slot]);
}

// Count the lanes for which `counted` holds into counter `slot` (a block's, or the launch's totals; any slot where
// it does not hold); every lane of the warp calls this together.
template <typename Counters>
__device__ __forceinline__ void warp_count(Counters counters, int slot, bool counted) {
    unsigned peers = __match_any_sync(FULL_WARP, slot);
    unsigned counting = __ballot_sync(FULL_WARP, counted) & peers;
    if (counted && lane_id() == __ffs(counting) - 1) add_to(counters, slot, __popc(counting));
}

// Add each lane's `amount` (32 bits; 0 where it adds nothing) to counter `slot`; every lane of the warp calls
// this together.
template <typename Counters>
__device__ __forceinline__ void warp_add(Counters counters, int slot, int amount) {
    unsigned peers = __match_any_sync(FULL_WARP, slot);
    int low = lanes_sum(peers, amount & 0xffff);
    int high = lanes_sum(peers, amount >> 16);  // with the sign: exact for negative amounts too
    long long total = (long long)high * 65536 + low;
    if (total != 0 && lane_id() == __ffs(peers) - 1) add_to(counters, slot, total);
}

// A block's counters: zeroed at its start, added to the launch's totals at its end.
__device__ __forceinline__ void clear_counters(BlockCounters counters) {
    for (int k = threadIdx.x; k < 2 * counters.size; k += blockDim.x) counters.words[k] = 0;
    __syncthreads();
}

__device__ __forceinline__ void add_counters_to_totals(BlockCounters counters, unsigned long long* totals) {
    __syncthreads();
    for (int k = threadIdx.x; k < counters.size; k += blockDim.x) {
        long long total = whole_counter(counters, k);
        if (total != 0) atomicAdd(totals + k, (unsigned long long)total);
    }
}
