// Just enough of CUDA to run gpusim's hand-written kernels (kernels/*.cu) on the host, for the tests that
// compare them with the Python rules on a machine without a GPU (tests/test_cuda_c.py).
//
// Blocks run one after another, in one of two ways:
// * blocks of one thread: each thread is a warp of its own (a vote, match, reduction or shuffle sees only the
//   lane that calls it), fast;
// * blocks of 32 threads, one warp: its lanes run as 32 host threads that meet at every warp function (the
//   lanes its mask names) and barrier (all 32), so votes, matches, reductions and shuffles see the warp as on
//   a GPU.  Every lane a mask names must reach that warp function with the same mask (a lane that never
//   arrives is reported, and the test stops, after 20 seconds).
// gpusim's kernels stride over their cells, so any grid gives the same result.
#pragma once
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

struct gpusim_host_index { unsigned x, y, z; };
static thread_local gpusim_host_index threadIdx;
static gpusim_host_index blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

[[noreturn]] static void gpusim_host_fail(const char* what) {
    std::fprintf(stderr, "cuda_host.h: %s\n", what);
    std::abort();
}

// The lanes of the running warp of 32 threads meet here, in the groups their masks name: every lane of a
// mask calls with that same mask, and groups of disjoint masks may meet at the same time (as lanes that took
// different branches do on a GPU).  The last lane of a group to arrive copies every value given to each lane of
// the group and lets them go on.
struct gpusim_host_warp {
    std::mutex mutex;
    std::condition_variable changed;
    long long values[32];
    unsigned masks[32] = {};  // the mask each waiting lane called with; 0 while it is not waiting
    unsigned meetings[32] = {};  // the meetings each lane has left
    long long seen[32][32];  // what each lane was given at its last meeting

    // Every lane's value of the group `mask` (those outside it unset), once all have given theirs.
    template <typename Read>
    auto exchange(unsigned mask, long long value, Read read) {
        unsigned lane = threadIdx.x & 31;
        std::unique_lock<std::mutex> lock(mutex);
        values[lane] = value;
        masks[lane] = mask;
        unsigned left = meetings[lane];
        bool everyone = true;
        for (unsigned other = 0; other < 32; ++other)
            if ((mask >> other & 1u) && masks[other] != mask) everyone = false;
        if (everyone) {
            for (unsigned other = 0; other < 32; ++other)
                if (mask >> other & 1u) {
                    for (unsigned given = 0; given < 32; ++given) seen[other][given] = values[given];
                    masks[other] = 0;
                    ++meetings[other];
                }
            changed.notify_all();
        } else if (!changed.wait_for(lock, std::chrono::seconds(20), [&] { return meetings[lane] != left; })) {
            gpusim_host_fail("a lane of the group never reached a warp function or barrier");
        }
        return read(seen[lane]);
    }

    void wait() { exchange(0xffffffffu, 0, [](const long long*) { return 0; }); }  // a barrier of the 32 lanes
};
static gpusim_host_warp* gpusim_warp = nullptr;  // while a block of 32 threads runs

static inline unsigned gpusim_lane_bit() { return 1u << (threadIdx.x & 31); }

static inline void gpusim_check_mask(unsigned mask) {
    if ((mask & gpusim_lane_bit()) == 0) gpusim_host_fail("a lane called a warp function with a mask without itself");
}

static inline void __syncthreads() {
    if (gpusim_warp != nullptr)
        gpusim_warp->wait();
    else if (blockDim.x != 1)
        gpusim_host_fail("a block of more than one thread but not a warp of 32 waits at a barrier");
}

static inline unsigned __activemask() { return gpusim_warp != nullptr ? 0xffffffffu : gpusim_lane_bit(); }

static inline unsigned __ballot_sync(unsigned mask, bool vote) {
    gpusim_check_mask(mask);
    if (gpusim_warp == nullptr) return vote ? gpusim_lane_bit() : 0u;
    return mask & gpusim_warp->exchange(mask, vote, [](const long long* votes) {
        unsigned bits = 0;
        for (int lane = 0; lane < 32; ++lane) bits |= votes[lane] ? 1u << lane : 0u;
        return bits;
    });
}

static inline unsigned __match_any_sync(unsigned mask, long long value) {
    gpusim_check_mask(mask);
    if (gpusim_warp == nullptr) return gpusim_lane_bit();
    return mask & gpusim_warp->exchange(mask, value, [value](const long long* values) {
        unsigned bits = 0;
        for (int lane = 0; lane < 32; ++lane) bits |= values[lane] == value ? 1u << lane : 0u;
        return bits;
    });
}

static inline int __reduce_add_sync(unsigned mask, int value) {
    gpusim_check_mask(mask);
    if (gpusim_warp == nullptr) return value;
    return gpusim_warp->exchange(mask, value, [mask](const long long* values) {
        int sum = 0;  // wraps as the hardware's 32-bit sum does
        for (int lane = 0; lane < 32; ++lane)
            if (mask & (1u << lane)) sum = (int)((unsigned)sum + (unsigned)values[lane]);
        return sum;
    });
}

template <typename T>
static inline T __shfl_sync(unsigned mask, T value, int source) {
    gpusim_check_mask(mask);
    if (gpusim_warp == nullptr) return value;
    return (T)gpusim_warp->exchange(mask, (long long)value, [source](const long long* values) { return values[source]; });
}

static inline int __popc(unsigned bits) { return __builtin_popcount(bits); }
static inline int __ffs(unsigned bits) { return __builtin_ffs((int)bits); }
static inline int __clzll(long long bits) { return bits == 0 ? 64 : __builtin_clzll((unsigned long long)bits); }

static inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}

static inline unsigned atomicAdd(unsigned* address, unsigned value) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}

// Run `kernel` over `blocks` blocks of `threads` threads (1, or 32: one warp).
template <typename Kernel, typename... Arguments>
static void gpusim_host_launch(Kernel kernel, unsigned blocks, unsigned threads, Arguments... arguments) {
    if (threads != 1 && threads != 32) gpusim_host_fail("blocks run here with 1 thread or 32 (one warp)");
    gridDim = {blocks, 1, 1};
    blockDim = {threads, 1, 1};
    for (unsigned block = 0; block < blocks; ++block) {
        blockIdx = {block, 0, 0};
        if (threads == 1) {
            threadIdx = {0, 0, 0};
            kernel(arguments...);
            continue;
        }
        gpusim_host_warp warp;
        gpusim_warp = &warp;
        std::vector<std::thread> lanes;
        for (unsigned lane = 0; lane < 32; ++lane)
            lanes.emplace_back([&, lane] {
                threadIdx = {lane, 0, 0};
                kernel(arguments...);
            });
        for (auto& lane : lanes) lane.join();
        gpusim_warp = nullptr;
    }
}
