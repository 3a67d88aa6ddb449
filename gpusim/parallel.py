"""One run across MPI ranks: whether this process is one of several, and how the lattice splits into slabs.

The lattice splits along z into one slab a rank.  To step the cells of its slab exactly, a rank also needs
the cells of ``gpusim.engine.STEP_REACH`` layers on each side of it (its halo): every rule a step launches
reads and writes within its reach of a cell's voxel, and their reaches add up to how far a cell's state
after one step can depend on other cells.  So a slab must be at least as deep as that, and a lattice too
shallow for ``K`` such slabs is refused before anything is written.

Whether a process was started by ``mpiexec`` (or ``srun``) among several is read from the variables the
launcher sets, without importing MPI: a plain ``gpusim run`` never loads mpi4py.
"""

import dataclasses
import os

import numpy as np

from gpusim.domain import WholeLattice
from gpusim.engine import STEP_REACH
from gpusim.kernels.cells import DEAD, GHOST
from gpusim.state import id_problems

# What MPI launchers set in each process they start: the number of processes, and this one's rank among
# those of its node (each takes the GPU of that number).  MPICH's and Intel MPI's Hydra and Slurm's PMI-2 set
# PMI_*, Open MPI OMPI_COMM_WORLD_*, Slurm's srun SLURM_STEP_NUM_TASKS and SLURM_LOCALID.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


class DecompositionError(ValueError):
    """The lattice cannot be split the way asked (too many ranks for its depth)."""


def launched_ranks(environ=None):
    """How many processes the MPI launcher started this one among (1 when none did), from ``environ`` (default
    ``os.environ``); ValueError for a value that is not a positive whole number."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name}={value!r}: expected the number of processes the MPI launcher started")
            return int(value)
    return 1


def local_rank(environ=None):
    """This process's rank among those the launcher started on its node (0 when it started none), which picks
    its GPU."""
    return _rank_from(LOCAL_RANK_VARIABLES, environ)


def launched_rank(environ=None):
    """This process's rank among all the launcher started (0 when it started none): rank 0 speaks for a run."""
    return _rank_from(RANK_VARIABLES, environ)


def _rank_from(names, environ):
    environ = os.environ if environ is None else environ
    for name in names:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


@dataclasses.dataclass(frozen=True)
class Slab:
    """Rank ``rank``'s layers of the lattice, ``start <= z < stop``, and the halo layers it holds below and
    above them (fewer at the lattice's faces, where there is nothing beyond)."""

    rank: int
    start: int
    stop: int
    below: int
    above: int

    @property
    def layers(self):
        return self.stop - self.start

    @property
    def held(self):
        """The layers the rank holds, its halo included: ``(first, stop)``."""
        return self.start - self.below, self.stop + self.above


def plan_slabs(depth, ranks, halo=STEP_REACH, layer_cells=None, align=1):
    """The slabs of a lattice ``depth`` layers deep (along z) for ``ranks`` ranks, each at least ``halo`` layers.

    Without ``layer_cells`` the layers are shared as evenly as they divide; with it (the cells in each layer,
    integers) the boundaries go where the cells divide evenly, each slab kept at least ``halo`` deep, so that a
    tumour at the centre does not leave the outer ranks idle.  Boundaries fall on multiples of ``align`` layers
    (the fields' coarsening: a grid voxel's cells are then all one rank's).  DecompositionError, naming the
    most ranks the lattice allows, when it is too shallow.
    """
    depth, ranks, halo, align = int(depth), int(ranks), int(halo), max(int(align), 1)
    if ranks < 1:
        raise DecompositionError(f"{ranks} ranks: expected at least 1")
    if ranks == 1:
        return [Slab(0, 0, depth, 0, 0)]
    least = -(-max(halo, 1) // align)  # blocks of `align` layers a slab needs
    blocks = depth // align  # the last slab takes the layers past the last whole block
    if blocks < ranks * least:
        raise DecompositionError(
            f"{ranks} ranks need at least {ranks * least * align} layers along z (each rank's slab as deep as the "
            f"{halo} layers one step reaches{f', in blocks of {align}' if align > 1 else ''}); lattice.shape gives "
            f"{depth}: run on at most {max(blocks // least, 1)} ranks")
    if layer_cells is None:
        bounds = [(r * blocks) // ranks for r in range(ranks + 1)]
    else:
        cells = list(map(int, layer_cells))
        block_cells = [sum(cells[b * align : (b + 1) * align if b < blocks - 1 else depth]) for b in range(blocks)]
        bounds = _balanced_bounds(block_cells, ranks, least)
    bounds = [b * align for b in bounds[:-1]] + [depth]
    return [Slab(r, bounds[r], bounds[r + 1], min(halo, bounds[r]), min(halo, depth - bounds[r + 1]))
            for r in range(ranks)]


def _balanced_bounds(layer_cells, ranks, least):
    """Slab boundaries (``ranks + 1`` of them) that share the cells evenly, each slab at least ``least`` layers."""
    depth = len(layer_cells)
    total = sum(layer_cells)
    below = [0]
    for cells in layer_cells:
        below.append(below[-1] + cells)  # cells in the layers below each boundary
    bounds = [0]
    for r in range(1, ranks):
        z = next((z for z in range(depth + 1) if below[z] * ranks >= total * r), depth)  # r/K of the cells below
        z = max(z, bounds[-1] + least)
        bounds.append(min(z, depth - (ranks - r) * least))
    return bounds + [depth]


def imbalance(layer_cells, slabs):
    """The most cells a rank steps over the mean, for slabs ``slabs`` of layers holding ``layer_cells``."""
    return over_mean([sum(int(c) for c in layer_cells[slab.start : slab.stop]) for slab in slabs])


def over_mean(cells):
    """The most of ``cells`` (a count per rank) over their mean: 1.0 when shared evenly, or when there are none."""
    total = sum(cells)
    return max(cells) * len(cells) / total if total > 0 else 1.0


# --- which rank holds which cell ----------------------------------------------------------------------------------

def owners(layers, slabs):
    """The rank whose slab holds each layer of ``layers`` (an integer array of z)."""
    starts = np.array([slab.start for slab in slabs[1:]], dtype=np.int64)
    return np.searchsorted(starts, np.asarray(layers, dtype=np.int64), side="right")


def route(voxels, shape, slabs):
    """Which cells of a table each rank holds, for cells at flat voxel indices ``voxels`` of a lattice of
    ``shape``: per rank, (the indices of the cells in its slab, those of the cells in its halo), each in the
    order of the table.  A cell is in one rank's slab and in the halo of every other rank whose held layers
    reach it (with slabs at least as deep as the halo, only the neighbours')."""
    z = np.asarray(voxels, dtype=np.int64) // _plane(shape)
    owner = owners(z, slabs)
    routed = []
    for slab in slabs:
        first, stop = slab.held
        held = (z >= first) & (z < stop)
        routed.append((np.flatnonzero(owner == slab.rank), np.flatnonzero(held & (owner != slab.rank))))
    return routed


def local_columns(columns, owned, halo, slab, shape):
    """The table a rank holds, from host ``columns`` (``[..., cell]`` arrays, the global table) and the indices
    :func:`route` gave it: its own cells, then its halo's marked GHOST; voxels counted from the first layer it
    holds."""
    return _held_table(_taken(columns, owned), [_taken(columns, halo)], slab.held[0] * _plane(shape))


def global_columns(parts, slabs, shape):
    """The global table in voxel order from each rank's table (``parts``, as :func:`local_columns` makes them):
    every rank's own cells (not its GHOSTs), voxels counted from the lattice's first layer."""
    joined = _joined([_own_cells(part, slab.held[0] * _plane(shape)) for part, slab in zip(parts, slabs)])
    return _taken(joined, np.argsort(joined["voxel"], kind="stable"))


def _plane(shape):
    """Voxels in one layer of a lattice of ``shape``."""
    return int(shape[1]) * int(shape[2])


def _taken(cells, indices):
    return {name: values[..., indices] for name, values in cells.items()}


def _joined(parts):
    return {name: np.concatenate([part[name] for part in parts], axis=-1) for name in parts[0]}


def _own_cells(table, first):
    """A held table's own cells (its GHOSTs dropped), their voxels counted from the lattice's first layer (the
    table's are counted from flat voxel ``first``)."""
    own = _taken(table, (table["state"] & GHOST) == 0)
    own["voxel"] = own["voxel"] + first
    return own


def _held_table(own, halos, first):
    """A rank's table: ``own`` cells, then the cells of ``halos`` marked GHOST, voxels counted from flat voxel
    ``first`` (the rank's first held layer)."""
    out = _joined([own] + list(halos))
    out["state"] = out["state"] & ~GHOST
    out["state"][own["voxel"].shape[-1]:] |= GHOST
    out["voxel"] = out["voxel"] - first
    return out


# --- a rank's part of a run -----------------------------------------------------------------------------------

class SlabDomain(WholeLattice):
    """An MPI rank's slab of the lattice (gpusim.domain): it steps the cells of layers ``start <= z < stop``
    and holds those of its halo, and asks the other ranks (``comm``, an mpi4py communicator whose ranks are the
    slabs') what one process would know alone."""

    splits = True

    def __init__(self, comm, shape, slabs):
        super().__init__(shape)
        from mpi4py import MPI

        self._mpi = MPI
        self.comm, self.slabs = comm, list(slabs)
        self.rank, self.ranks = comm.Get_rank(), comm.Get_size()
        if self.ranks != len(self.slabs):
            raise ValueError(f"{len(self.slabs)} slabs for {self.ranks} ranks")
        self.take_slabs(self.slabs)
        self.next_id = 0  # the whole run's next agent id
        self.exchanged_bytes = 0  # sent by this rank in the last exchange

    def sum(self, values):
        if np.ndim(values) == 0:
            return self.comm.allreduce(int(values), op=self._mpi.SUM)
        mine = np.ascontiguousarray(values, dtype=np.int64)
        total = np.empty_like(mine)
        self.comm.Allreduce(mine, total, op=self._mpi.SUM)
        return total

    def take_slabs(self, slabs):
        """Step this rank's slab of ``slabs`` (new boundaries: gpusim.mpi_run moves them at checkpoints)."""
        self.slabs = list(slabs)
        slab = self.slabs[self.rank]
        self.held, self.own = slab.held, (slab.start, slab.stop)

    def _below_and_all(self, count):
        """The sum of ``count`` over the ranks before this one (their slabs lie below), and over every rank."""
        counts = self.comm.allgather(int(count))
        return sum(counts[: self.rank]), sum(counts)

    def new_ids(self, state, count):
        below, everywhere = self._below_and_all(count)
        first = self.next_id + below
        self.next_id += everywhere
        return first

    def settle_ids(self, state):
        state.next_id = self.next_id
        state.publish()

    def first_daughter_id(self, state, parents, count):
        """The ids of this step's daughters follow their parents' voxel order over the whole lattice: the rank's
        own parents take theirs after those of the ranks below.  Its listing (in voxel order) starts with the
        parents in its lower halo, so its first daughter's id is that many before its own first one's (those
        it steps exactly get the ids their own rank gives them)."""
        listed = min(int(state.backend.to_host(count)[0]), parents.shape[0])
        voxels = state.backend.to_host(state["voxel"][parents[:listed]])
        first_own, stop_own = self.own_voxels
        in_lower_halo, below_own_stop = np.searchsorted(voxels, [first_own, stop_own])
        return self.new_ids(state, int(below_own_stop - in_lower_halo)) - int(in_lower_halo)

    def ties_to_take(self, wanted, count_ties):
        mine = count_ties()
        below, _ = self._below_and_all(mine)
        return max(0, min(mine, wanted - below))

    def combine_grid(self, backend, *arrays):
        for values in arrays:
            host = np.ascontiguousarray(backend.to_host(values))
            self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)  # x + 0.0 is x: exact in any order
            values[...] = backend.to_device(host)

    def after_step(self, sim):
        """The rank's table after a step made its table for the next, in place, over MPI between neighbours only,
        in two rounds: the halo (GHOST) is dropped and every own cell now in a neighbour's slab (a step moves
        none farther than a slab is deep) moves there; then each rank sends copies of its own cells within each
        neighbour's halo (no halo reaches past a neighbour's slab).  Only the slots that change move: the
        cells that stay keep theirs but for the few that fill the holes the others leave
        (gpusim.state.State.keep_slots), and the cells that come are written after them."""
        s = sim.state
        s.synchronize()
        xp, n = s.xp, s.n
        first_own, stop_own = self.own_voxels
        voxel, flags = s["voxel"][:n], s["state"][:n]
        own = (flags & (GHOST | DEAD)) == 0
        leaving = {self.rank - 1: xp.flatnonzero(own & (voxel < first_own)),
                   self.rank + 1: xp.flatnonzero(own & (voxel >= stop_own))}
        leaving = {other: slots for other, slots in leaving.items() if 0 <= other < self.ranks}
        sent, sending = self._send(s, leaving)
        kept = s.keep_slots(own & (voxel >= first_own) & (voxel < stop_own))
        arrived = self._receive(s, sending, kept, ghosts=False)
        owned = kept + arrived
        voxel = s["voxel"][:owned]
        halos = {}
        if self.rank > 0:  # the layers of this slab in the halo of the one below
            halos[self.rank - 1] = xp.flatnonzero(voxel < first_own + self.slabs[self.rank - 1].above * self.plane)
        if self.rank < self.ranks - 1:
            halos[self.rank + 1] = xp.flatnonzero(voxel >= stop_own - self.slabs[self.rank + 1].below * self.plane)
        halo_bytes, sending = self._send(s, halos)
        ghosts = self._receive(s, sending, owned, ghosts=True)
        s.n = owned + ghosts
        s.publish()
        self.received = arrived + ghosts
        self.exchanged_bytes = sent + halo_bytes
        self.imbalance = over_mean(self.comm.allgather(owned))

    def _send(self, state, sending):
        """Start sending each neighbour the slots ``sending[other]`` of the table (a count, then the slots
        packed); returns the bytes sent and, per neighbour, the sends in flight with their buffers, which
        :meth:`_receive` completes."""
        total, in_flight = 0, {}
        for other, slots in sending.items():
            count = np.array([int(slots.shape[0])], dtype=np.int64)
            payload = state.packed_slots(slots)
            in_flight[other] = (count, payload, [self.comm.Isend(count, dest=other, tag=1),
                                                 self.comm.Isend(payload, dest=other, tag=2)])
            total += payload.nbytes
        return total, in_flight

    def _receive(self, state, in_flight, first, ghosts):
        """Receive from each neighbour ``_send`` sent to what it sends, written to slots ``first`` onwards (its
        voxels counted from this rank's first held layer, marked GHOST with ``ghosts``) with occupancy, then
        complete the sends; returns how many came."""
        at = first
        for other in in_flight:
            count = np.empty(1, dtype=np.int64)
            self.comm.Recv(count, source=other, tag=1)
            payload = np.empty(int(count[0]) * state.slot_bytes_packed(), dtype=np.uint8)
            self.comm.Recv(payload, source=other, tag=2)
            state.n = at
            state.reserve(at + int(count[0]))
            came = state.put_slots(at, payload)
            shift = (self.slabs[other].held[0] - self.held[0]) * self.plane  # its voxels counted from its first layer
            state["voxel"][at : at + came] += shift
            if ghosts:
                state["state"][at : at + came] |= GHOST
            state.claim_voxels(at, at + came)
            at += came
        for _count, _payload, requests in in_flight.values():  # the buffers stay alive until their sends end
            for request in requests:
                request.Wait()
        return at - first

    def check(self, sim, previous_ids, previous_next_id):
        """Each rank's lattice invariants, then the whole run's: no cell stepped by two ranks, ids unique and
        never reused over the whole lattice."""
        s = sim.state
        s.check_invariants()
        own = (s.backend.to_host(s.view("state")) & GHOST) == 0
        voxel = s.backend.to_host(s.view("voxel"))[own]
        first_own, stop_own = self.own_voxels
        if voxel.size and (voxel.min() < first_own or voxel.max() >= stop_own):
            raise AssertionError(f"rank {self.rank}: lattice invariants broken: a cell it steps is outside its slab")
        ids = np.sort(np.concatenate(self.comm.allgather(s.backend.to_host(s.view("agent_id"))[own])))
        problems = id_problems(ids, self.next_id, previous_ids, previous_next_id)  # the cells every rank steps
        if problems:
            raise AssertionError(f"rank {self.rank}: the whole run's lattice invariants broken: " + "; ".join(problems))
        return ids
