// The engage rule of kernels/synapse.py (choose_partner), hand-written in CUDA C for the GPU.
//
// Same rule, same result bit for bit: a free, non-refractory effector looks at its 26 neighbours from a random
// direction on and engages the first whose activating signal reaches the recognition level; tumour cells, and
// effectors wearing acquired antigen when the kind attacks effectors (fratricide), are candidates; necrotic
// debris is not.  The signal is kernels/signal.py's synapse_signal (2D binding at quasi-steady state,
// cis masking of a tumour cell's antigen by acquired CAR, receptor B as a CAR or a costimulatory receptor,
// iCAR inhibition).  tests/test_cuda_c.py runs this file built for the host against the numba rule, so the two
// cannot drift apart unnoticed.
//
// What it does differently from numba's kernel: the neighbours' occupants, then their flags and kinds, are
// asked of memory 26 at a time (partner_choice); no shared memory and no barrier (numba's tallying kernel
// clears, waits for and flushes a block of counters for every 256 slots, nine in ten of them tumour cells
// that return at once); 32-bit slots; read-only columns through the read-only data cache; a warp's
// engagements summed before one atomic add.
//
// The constants (params::NZ, cells::DEAD, ...) are the Python modules' own, and the arguments the rule's in its
// order (gpusim/kernels/cuda_c.py).
#include "molecules.cuh"
#include "lattice.cuh"
#include "rng.cuh"
#include "tally.cuh"

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
//
// The rule's loop waits, for each neighbour in turn, for its occupant, then its flags and kind, then its
// molecules: some 80 trips to memory one after another for an effector among tumour cells, each of which
// keeps its lanes idle.  Here the 26 occupants are asked for at once, then the 26 flags and kinds at once
// (every load of a round independent of the others, the loops unrolled), and only then are the candidates
// weighed, in the rule's order of directions (from its random first direction on), so the choice is the rule's.
__device__ int partner_choice(int i, long long seed, long long step, const long long* __restrict__ agent_id,
                              const unsigned char* __restrict__ kind, const unsigned char* __restrict__ state,
                              const long long* __restrict__ voxel, const signed char* partner,
                              const short* __restrict__ refractory_steps, const int* __restrict__ pools,
                              long long pools_stride, const int* __restrict__ occ,
                              const long long* __restrict__ params) {
    int k = kind[i];
    if (k == cells::TUMOUR || partner[i] >= 0 || refractory_steps[i] > 0 || (state[i] & cells::DEAD) != 0) return -1;
    Site site = site_of(voxel[i], params);
    int occupant[lattice::N_DIRECTIONS];
    neighbours_of(site, occ, occupant);
    unsigned cells_around = 0, tumour_around = 0;  // bit d: a cell (not debris) in direction d; a tumour cell
#pragma unroll
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) {
        int j = occupant[d];
        if (j >= 0) {
            unsigned char flags = state[j], their_kind = kind[j];  // both asked for before either is looked at
            if ((flags & cells::NECROTIC) == 0) cells_around |= 1u << d;  // debris is no target
            if (their_kind == cells::TUMOUR) tumour_around |= 1u << d;
        }
    }
    long long recognition = params[params::RECOGNITION + k];
    bool attacks_effectors = params[params::ATTACKS_EFFECTORS + k] != 0;
    int first = (int)draw_index(seed, step, agent_id[i], rng::ENGAGE, lattice::N_DIRECTIONS);
    // the masks turned so that bit m is direction first + m (mod 26): the rule's order of looking
    const unsigned all = (1u << lattice::N_DIRECTIONS) - 1;
    unsigned turned = ((cells_around >> first) | (cells_around << (lattice::N_DIRECTIONS - first))) & all;
    unsigned turned_tumour = ((tumour_around >> first) | (tumour_around << (lattice::N_DIRECTIONS - first))) & all;
    for (unsigned rest = turned; rest != 0; rest &= rest - 1) {
        int m = __ffs(rest) - 1;
        int d = first + m < lattice::N_DIRECTIONS ? first + m : first + m - lattice::N_DIRECTIONS;
        int j = occupant_of(site, d, occ);  // asked for above: from the cache now
        bool tumour = (turned_tumour >> m & 1u) != 0;
        if (!tumour && (!attacks_effectors || molecules_of(pools, pools_stride, params, molecules::ANTIGEN_A, j) +
                                                  molecules_of(pools, pools_stride, params, molecules::ANTIGEN_B, j) == 0))
            continue;
        if (synapse_signal(i, j, k, tumour ? cells::TUMOUR : kind[j], pools, pools_stride, params) >= recognition)
            return d;
    }
    return -1;
}

extern "C" __global__ void choose_partner(long long n, const long long* live, long long seed, long long step,
                                          const long long* __restrict__ agent_id, const unsigned char* __restrict__ kind,
                                          const unsigned char* __restrict__ state, const long long* __restrict__ voxel,
                                          signed char* partner, const short* __restrict__ refractory_steps,
                                          short* synapse_steps, const int* __restrict__ pools, long long pools_stride,
                                          const int* __restrict__ occ, const long long* __restrict__ params,
                                          unsigned long long* totals) {
    long long extent = launch_extent(n, live);
    for (long long first = warp_start(); first < extent; first += grid_stride()) {
        long long slot = first + lane_id();
        bool engaged = false;
        if (slot < extent) {
            int i = (int)slot;  // a table has fewer than 2**31 slots (gpusim.state.MAX_SLOTS)
            int best = partner_choice(i, seed, step, agent_id, kind, state, voxel, partner, refractory_steps, pools,
                                      pools_stride, occ, params);
            if (best >= 0) {
                partner[i] = (signed char)best;
                synapse_steps[i] = 0;
                engaged = (state[i] & cells::GHOST) == 0;  // a copy of another process's cell: not counted
            }
        }
        // the warp's engagements, added to the launch's total by one lane
        warp_count((long long*)totals, tally::ENGAGEMENTS, engaged);
    }
}

// The receiving side of the synapse phase (kernels/synapse.py synapse_receive), hand-written for the same
// reason as the neighbour scan above: the rule's loop waits for each neighbour's occupant, then its contact
// and partner, before asking for the next (52 memory trips in a chain for a cell among effectors).  Here the
// 26 occupants are asked for at once, then their contacts and partners at once; only the neighbours that
// struck the cell are read further.  What they did adds up on the cell in any order (wrapping sums modulo
// the columns' widths, as numba's stores into int32 and int16 columns wrap), so one sum per column equals
// the rule's additions one striker at a time.
__device__ void receive(int i, const unsigned char* __restrict__ touched, unsigned char* state,
                        const long long* __restrict__ voxel, const signed char* __restrict__ partner, int* pools,
                        long long pools_stride, short* damage, short* bites, const int* __restrict__ occ,
                        const long long* __restrict__ params, const signed char* __restrict__ contact,
                        const int* __restrict__ taken_a, const int* __restrict__ taken_b,
                        const int* __restrict__ car_given, const unsigned char* __restrict__ strike) {
    unsigned char flags = state[i] & cells::NOT_HELD;  // every cell drops last step's hold
    if (touched[i] == 0) {
        state[i] = flags;
        return;
    }
    Site site = site_of(voxel[i], params);
    int occupant[lattice::N_DIRECTIONS];
    neighbours_of(site, occ, occupant);
    unsigned struck_me = 0;  // bit d: the neighbour in direction d was in contact with this cell this step
    bool held = false;
#pragma unroll
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) {
        int e = occupant[d];
        if (e >= 0) {
            int their_contact = contact[e], their_partner = partner[e];  // both asked for before either is used
            int towards_me = lattice::N_DIRECTIONS - 1 - d;  // kernels/lattice.py opposite
            if (their_contact == towards_me) struck_me |= 1u << d;
            if (their_partner == towards_me) held = true;
        }
    }
    long long antigen_a = 0, antigen_b = 0, car = 0;
    int hits = 0, bitten = 0;
    for (unsigned rest = struck_me; rest != 0; rest &= rest - 1) {
        int e = occupant_of(site, __ffs(rest) - 1, occ);  // asked for above: from the cache now
        antigen_a -= taken_a[e];
        antigen_b -= taken_b[e];
        car += car_given[e];
        unsigned char struck = strike[e];
        hits += (struck & synapse::STRUCK_HIT) != 0;
        bitten += (struck & synapse::STRUCK_BITE) != 0;
        if (struck & synapse::STRUCK_ENGULF) flags |= cells::ENGULFED;
    }
    if (struck_me != 0) {
        add_molecules(pools, pools_stride, params, molecules::ANTIGEN_A, i, antigen_a);
        add_molecules(pools, pools_stride, params, molecules::ANTIGEN_B, i, antigen_b);
        add_molecules(pools, pools_stride, params, molecules::CAR, i, car);
    }
    if (hits != 0) damage[i] = (short)(damage[i] + hits);
    if (bitten != 0) bites[i] = (short)(bites[i] + bitten);
    state[i] = held ? (unsigned char)(flags | cells::HELD) : flags;
}

extern "C" __global__ void synapse_receive(long long n, const long long* live,
                                           const unsigned char* __restrict__ touched, unsigned char* state,
                                           const long long* __restrict__ voxel,
                                           const signed char* __restrict__ partner, int* pools,
                                           long long pools_stride, short* damage, short* bites,
                                           const int* __restrict__ occ, const long long* __restrict__ params,
                                           const signed char* __restrict__ contact,
                                           const int* __restrict__ taken_a, const int* __restrict__ taken_b,
                                           const int* __restrict__ car_given,
                                           const unsigned char* __restrict__ strike) {
    long long extent = launch_extent(n, live);
    for (long long i = thread_start(); i < extent; i += grid_stride())
        receive((int)i, touched, state, voxel, partner, pools, pools_stride, damage, bites, occ, params, contact,
                taken_a, taken_b, car_given, strike);
}
