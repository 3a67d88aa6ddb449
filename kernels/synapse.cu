// The engage rule of kernels/synapse.py (choose_partner), hand-written in CUDA C for the GPU.
//
// Same rule, same result bit for bit: a free, non-refractory effector looks at its 26 neighbours and engages
// the one that gives it the strongest activating signal, if that signal reaches the recognition level; tumour
// cells, and effectors wearing acquired antigen when the kind attacks effectors (fratricide), are candidates;
// necrotic debris is not.  The signal is kernels/signal.py's synapse_signal (2D binding at quasi-steady state,
// cis masking of a tumour cell's antigen by acquired CAR, receptor B as a CAR or a costimulatory receptor,
// iCAR inhibition).  A test runs this file compiled for the host against the numba rule on states from runs
// of several presets (tests/test_cuda_c.py), so the two cannot drift apart unnoticed.
//
// What it does differently from numba's kernel: 32-bit slot arithmetic, read-only columns through the
// read-only data cache (const __restrict__), and the count of engagements summed across a warp before one
// lane adds it to the launch's total (numba's kernel adds into shared memory, then every block to the total).
//
// The constants (params::NZ, cells::DEAD, ...) are the Python modules' own, put in front of this source by
// gpusim/kernels/cuda_c.py at compile time; the arguments are the rule's, in its order (kernels/cuda_c.py
// documents the convention, and a test holds the names equal).

// Cell i's molecules of a species: 0 where the run holds no row of it (kernels/pools.py molecules).
__device__ __forceinline__ long long molecules_of(const int* __restrict__ pools, long long pools_stride,
                                                  const long long* __restrict__ params, int species, int i) {
    long long row = params[params::POOL_ROW + species];
    return row < 0 ? 0 : (long long)pools[row * pools_stride + i];
}

// Python's (and numba's) floor division of 64-bit integers; C's `/` truncates towards zero.
__device__ __forceinline__ long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// The product of two 64-bit integers wrapping as numba's int64 arithmetic does (C leaves signed overflow
// undefined).
__device__ __forceinline__ long long wrapping_product(long long a, long long b) {
    return (long long)((unsigned long long)a * (unsigned long long)b);
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

// Of `count` molecules, those inside the contact area (kernels/signal.py in_contact).
__device__ __forceinline__ long long in_contact(long long count, long long contact_q16) {
    return wrapping_product(count, contact_q16) >> 16;
}

// The activating signal of effector e (of kind k) engaging target t (kernels/signal.py synapse_signal).
__device__ long long synapse_signal(int e, int t, int k, int target_kind, const int* __restrict__ pools,
                                    long long pools_stride, const long long* __restrict__ params) {
    long long contact = params[params::CONTACT_Q16];
    long long k_car = params[params::K_CAR + k];
    long long antigen_a = molecules_of(pools, pools_stride, params, molecules::ANTIGEN_A, t);
    long long masked = 0;
    if (target_kind == cells::TUMOUR)  // acquired CAR binds the tumour cell's own antigen in cis
        masked = bound_complexes(molecules_of(pools, pools_stride, params, molecules::CAR, t), antigen_a, k_car);
    long long car_complexes = bound_complexes(
        in_contact(molecules_of(pools, pools_stride, params, molecules::CAR, e), contact),
        in_contact(antigen_a - masked, contact), k_car);
    long long b_complexes = bound_complexes(
        in_contact(molecules_of(pools, pools_stride, params, molecules::RECEPTOR_B, e), contact),
        in_contact(molecules_of(pools, pools_stride, params, molecules::ANTIGEN_B, t), contact),
        params[params::K_RECEPTOR_B + k]);
    long long icar_complexes = bound_complexes(
        in_contact(molecules_of(pools, pools_stride, params, molecules::ICAR, e), contact),
        in_contact(molecules_of(pools, pools_stride, params, molecules::ICAR_LIGAND, t), contact),
        params[params::K_ICAR + k]);
    long long signal = car_complexes;
    if (params[params::RECEPTOR_B_KILLS + k] != 0)
        signal += b_complexes;
    else if (b_complexes > 0)
        signal += floor_div(wrapping_product(car_complexes, b_complexes),
                            b_complexes + params[params::COSTIMULATION_HALF + k]);
    signal -= wrapping_product(icar_complexes, params[params::ICAR_WEIGHT_Q16 + k]) >> 16;
    return signal < 0 ? 0 : signal;
}

// Effector i's choice: the direction 0..25 of its new partner, or -1 (no free effector, or nobody recognised).
__device__ int partner_choice(int i, const unsigned char* __restrict__ kind, const unsigned char* __restrict__ state,
                              const long long* __restrict__ voxel, const signed char* partner,
                              const short* __restrict__ refractory_steps, const int* __restrict__ pools,
                              long long pools_stride, const int* __restrict__ occ,
                              const long long* __restrict__ params) {
    int k = kind[i];
    if (k == cells::TUMOUR || partner[i] >= 0 || refractory_steps[i] > 0 || (state[i] & cells::DEAD) != 0) return -1;
    long long ny = params[params::NY], nx = params[params::NX], plane = ny * nx;
    long long v = voxel[i];
    int z = (int)(v / plane);  // every coordinate fits 32 bits (a lattice edge is far below 2**31 voxels)
    int y = (int)((v - z * plane) / nx);
    int x = (int)(v - z * plane - y * nx);
    int nz = (int)params[params::NZ];
    int best = -1;
    long long best_signal = params[params::RECOGNITION + k] - 1;
    bool attacks_effectors = params[params::ATTACKS_EFFECTORS + k] != 0;
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) {  // kernels/lattice.py direction_offset and occupant_at
        int code = d >= 13 ? d + 1 : d;  // 13 would be the cell's own voxel
        int dz = code / 9 - 1, dy = (code / 3) % 3 - 1, dx = code % 3 - 1;
        if (z + dz < 0 || z + dz >= nz || y + dy < 0 || y + dy >= ny || x + dx < 0 || x + dx >= nx)
            continue;  // past a wall
        int j = occ[v + dz * plane + dy * nx + dx];
        if (j < 0 || (state[j] & cells::NECROTIC) != 0) continue;  // empty, or debris: no target
        int target_kind = kind[j];
        if (target_kind != cells::TUMOUR &&
            (!attacks_effectors || molecules_of(pools, pools_stride, params, molecules::ANTIGEN_A, j) +
                                           molecules_of(pools, pools_stride, params, molecules::ANTIGEN_B, j) == 0))
            continue;
        long long signal = synapse_signal(i, j, k, target_kind, pools, pools_stride, params);
        if (signal > best_signal) {
            best_signal = signal;
            best = d;
        }
    }
    return best;
}

extern "C" __global__ void choose_partner(long long n, const unsigned char* __restrict__ kind,
                                          const unsigned char* __restrict__ state, const long long* __restrict__ voxel,
                                          signed char* partner, const short* __restrict__ refractory_steps,
                                          short* synapse_steps, const int* __restrict__ pools, long long pools_stride,
                                          const int* __restrict__ occ, const long long* __restrict__ params,
                                          unsigned long long* totals) {
    long long slot = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    bool engaged = false;
    if (slot < n) {
        int i = (int)slot;  // a table has fewer than 2**31 slots (gpusim.state.MAX_SLOTS)
        int best = partner_choice(i, kind, state, voxel, partner, refractory_steps, pools, pools_stride, occ, params);
        if (best >= 0) {
            partner[i] = (signed char)best;
            synapse_steps[i] = 0;
            engaged = true;
        }
    }
    // the warp's engagements, added to the total by its lowest lane that engaged
    unsigned lanes = __ballot_sync(__activemask(), engaged);
    if (engaged && (int)(threadIdx.x & 31) == __ffs(lanes) - 1)
        atomicAdd(totals + tally::ENGAGEMENTS, (unsigned long long)__popc(lanes));
}
