// Just enough of CUDA to run gpusim's hand-written kernels (kernels/*.cu) on the host, for the tests that
// compare them with the Python rules on a machine without a GPU (tests/test_cuda_c.py).
//
// Every thread of a launch runs after the other, each as a warp of its own: a warp vote sees only the lane
// that votes, which a kernel must handle anyway, since on a GPU a warp's lanes may diverge.  Kernels that
// share memory between threads or wait at barriers cannot run here; gpusim's have neither.
#pragma once
#include <cmath>

struct gpusim_host_index { unsigned x, y, z; };
static gpusim_host_index threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

static inline unsigned __activemask() { return 1u << (threadIdx.x & 31); }
static inline unsigned __ballot_sync(unsigned mask, bool vote) { return vote ? mask & __activemask() : 0u; }
static inline int __popc(unsigned bits) { return __builtin_popcount(bits); }
static inline int __ffs(unsigned bits) { return __builtin_ffs((int)bits); }
static inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    unsigned long long old = *address;
    *address = old + value;
    return old;
}

// Run `kernel` over `blocks` blocks of `threads` threads, one thread after the other.
template <typename Kernel, typename... Arguments>
static void gpusim_host_launch(Kernel kernel, unsigned blocks, unsigned threads, Arguments... arguments) {
    gridDim = {blocks, 1, 1};
    blockDim = {threads, 1, 1};
    for (unsigned block = 0; block < blocks; ++block) {
        for (unsigned thread = 0; thread < threads; ++thread) {
            blockIdx = {block, 0, 0};
            threadIdx = {thread, 0, 0};
            kernel(arguments...);
        }
    }
}
