// kernels/lattice.py in CUDA C, for the hand-written kernels (kernels/*.cu): a voxel's coordinates and its 26
// neighbours, walls closed.
#pragma once

// A voxel's (z, y, x) and the lattice's extent, for walking its neighbours.
struct Site {
    long long voxel, plane, nx;
    int z, y, x, nz, ny, nx32;
};

// n / divisor for 0 <= n < 2**32 by multiplying, (magic_high, magic_low) the divisor's halves of
// ceil(2**64 / divisor) (kernels/lattice.py quotient and division_magic).
__device__ __forceinline__ long long quotient(long long n, long long magic_high, long long magic_low) {
    unsigned long long u = (unsigned long long)n;
    return (long long)(((unsigned long long)magic_high * u + (((unsigned long long)magic_low * u) >> 32)) >> 32);
}

__device__ __forceinline__ Site site_of(long long voxel, const long long* __restrict__ params) {
    Site s;
    s.nx = params[params::NX];
    s.plane = params[params::NY] * s.nx;
    s.voxel = voxel;
    // every coordinate fits 32 bits (a lattice has at most 2**32 voxels)
    s.z = (int)quotient(voxel, params[params::PLANE_DIVISOR], params[params::PLANE_DIVISOR + 1]);
    long long rest = voxel - s.z * s.plane;
    s.y = (int)quotient(rest, params[params::ROW_DIVISOR], params[params::ROW_DIVISOR + 1]);
    s.x = (int)(rest - s.y * s.nx);
    s.nz = (int)params[params::NZ];
    s.ny = (int)params[params::NY];
    s.nx32 = (int)s.nx;
    return s;
}

// (dz, dy, dx), each in -1..1, of a direction d (0..25; kernels/lattice.py direction_offset).
__device__ __forceinline__ void offset_of(int d, int& dz, int& dy, int& dx) {
    int code = d >= 13 ? d + 1 : d;  // 13 would be the site itself
    dz = code / 9 - 1;
    dy = (code / 3) % 3 - 1;
    dx = code % 3 - 1;
}

// The neighbour of a site in direction d (0..25, kernels/lattice.py direction_offset), or -1 past a wall.
__device__ __forceinline__ long long neighbour_of(const Site& s, int d) {
    int dz, dy, dx;
    offset_of(d, dz, dy, dx);
    if (s.z + dz < 0 || s.z + dz >= s.nz || s.y + dy < 0 || s.y + dy >= s.ny || s.x + dx < 0 || s.x + dx >= s.nx32)
        return -1;
    return s.voxel + dz * s.plane + dy * s.nx + dx;
}

// The site next to s in direction d, which must be inside the lattice (a claimed voxel is): no division.
__device__ __forceinline__ Site site_towards(const Site& s, int d) {
    int dz, dy, dx;
    offset_of(d, dz, dy, dx);
    Site t = s;
    t.z += dz;
    t.y += dy;
    t.x += dx;
    t.voxel += dz * s.plane + dy * s.nx + dx;
    return t;
}

// The slot of the cell next to a site in direction d: -1 if that voxel is empty or past a wall
// (kernels/lattice.py occupant_at).
__device__ __forceinline__ int occupant_of(const Site& s, int d, const int* __restrict__ occ) {
    long long v = neighbour_of(s, d);
    return v < 0 ? -1 : occ[v];
}

// The slots of a site's 26 neighbours, asked of memory all at once: unrolled, no load waits for another,
// where a loop that looks at each occupant before loading the next waits for every one in turn.  Inlined,
// `occupant` stays in registers.
__device__ __forceinline__ void neighbours_of(const Site& s, const int* __restrict__ occ,
                                              int occupant[lattice::N_DIRECTIONS]) {
#pragma unroll
    for (int d = 0; d < lattice::N_DIRECTIONS; ++d) occupant[d] = occupant_of(s, d, occ);
}
