"""The simulation state: agent columns (structure of arrays) and the occupancy grid.

Agents live in dense slots ``0..n-1`` of per-attribute columns allocated with
spare capacity, grown geometrically; the columns of one dtype are the rows of
one ``[row, slot]`` array, with the scratch arrays of that dtype as its free
rows (:class:`RowBlock`).  ``occ`` (flat, one int32 per voxel)
holds the slot of the cell in each voxel or -1.  A dead cell leaves the grid
at once but keeps its slot until the table is compacted (stable order; the
engine decides when, :meth:`State.compact`), and the table is periodically
sorted by voxel (stable) so that neighbours sit close in memory.  Both reorderings keep every
relation intact because relations between cells are directions on the
lattice, never slots.

The number of cells and the next id live on the backend (``counters``), so
that births and compaction, which change them, need no word from the host.
The host keeps ``n`` and ``next_id`` too: exact after :meth:`State.settle`
or :meth:`State.synchronize`, upper bounds while the step runs (``exact``
False), which is all a launch needs (:class:`gpusim.kernels.cpu_launcher.Count`).
"""

import numpy as np

from gpusim.kernels.cell_cycle import TABLE_DTYPES
from gpusim.kernels.cells import DEAD
from gpusim.kernels.cpu_launcher import Count
from gpusim.kernels.decorators import launch_named
from gpusim.kernels.molecules import N_SET_POINTS, N_SPECIES
from gpusim.kernels.occupancy import (
    claim_own_voxel, gather_slots, list_by_rank, list_occupied, mark_occupied, mark_survivor,
)

# name -> (dtype, rows); rows > 1 is a table column indexed [row, slot]
# (one contiguous column per species).  The order is the agent table's order in the store, which holds
# every row; a run's table holds only the rows of PER_RUN_ROWS columns that the run uses.
COLUMNS = {
    "agent_id": (np.int64, 1),  # unique, never reused
    "voxel": (np.int64, 1),  # flat voxel index
    "kind": (np.uint8, 1),  # kernels.cells.TUMOUR, CAR_T, ...
    "state": (np.uint8, 1),  # kernels.cells flags
    "heading": (np.int8, 1),  # direction 0..25 of a migrating effector
    "cycle_timer": (np.int32, 1),  # steps until a cell is due to divide (debris: until it is cleared)
    "anoxic_steps": (np.int32, 1),  # steps a tumour cell has been anoxic without a break
    "partner": (np.int8, 1),  # direction 0..25 of the synapse partner, or -1
    "synapse_steps": (np.int16, 1),  # steps spent in the current synapse
    "refractory_steps": (np.int16, 1),  # steps until an effector may engage again
    "stimulation": (np.int32, 1),  # cumulative stimulation (exhaustion), in stimulated steps
    "damage": (np.int16, 1),  # lytic hits received, not yet repaired
    "bites": (np.int16, 1),  # trogocytic bites received, not yet repaired
    "divisions_left": (np.int8, 1),  # an effector's remaining division budget
    "pools": (np.int32, N_SPECIES),  # molecules per species (kernels.molecules)
    "set_points": (np.int32, N_SET_POINTS),  # a tumour cell's heritable antigen A and B set points
}
# the table columns of which a run holds only the rows it uses: a species no cell can carry, and a set point of
# such an antigen, stay 0 all run (kernels.pools), so they take no memory
PER_RUN_ROWS = ("pools", "set_points")
# per-slot scratch written and read within one phase
SCRATCH = {
    "contact": (np.int8, 1),  # direction of the cell an effector struck this step, or -1
    "taken_a": (np.int32, 1),  # antigen A an effector takes from its partner this step
    "taken_b": (np.int32, 1),  # antigen B likewise
    "car_given": (np.int32, 1),  # CAR an effector gives its partner (negative: bitten off the partner)
    "strike": (np.uint8, 1),  # hit / bite / engulf flags (kernels.synapse.STRUCK_*)
    "touched": (np.uint8, 1),  # 1 if an effector was in contact with this cell this step
}
# scratch that shares the row of a SCRATCH array of its dtype, the two never in use in the same phase
SHARED_SCRATCH = {
    # the inclusive prefix sum of marked slots (division winners, survivors): births and compaction (divide, die,
    # a depletion), in the row of the synapse phase's taken_a; a reorder overwrites it, so compaction reads the
    # count of survivors from it before it gathers
    "rank": "taken_a",
    "won": "touched",  # claims won in the move and divide phases, in the row of the synapse phase's touched
    # the direction of the voxel a cell claims in the move and divide phases, or -1 (kernels.claims), in the row
    # of the synapse phase's contact
    "claim": "contact",
}
# per-slot work arrays of births, compaction and sorting (never reordered themselves); slots are int32
# (the occupancy grid's type), so a table has fewer than 2**31 slots (MAX_SLOTS)
WORK = {
    "listing": (np.int32, 1),  # the marked slots in slot order (parents of daughters, survivors), or in voxel order
}
MAX_SLOTS = 2**31 - 1
VOXEL_CHUNK = 1 << 24  # voxels visited at a time by what walks the lattice (placing cells, sorting, painting)
CELLS, NEXT_ID = 0, 1  # the entries of State.counters

GROWTH = 1.5  # the table grows by this factor when the next step's daughters would not fit (memory allowing)
HEADROOM = 1.05  # a run's first table has room for this many times its initial cells


class RowBlock:
    """The agent table's rows of one dtype, in one ``[row, slot]`` array: the columns' rows, then one free row
    per scratch array of the dtype (or one spare row if it has none).

    Reordering the table gathers the column rows into the free rows a block
    of as many rows at a time, each block into the rows the block before it
    has just left, so the column rows end up shifted to the other end and
    the free rows (the scratch arrays, whose contents no phase reads across a
    step) with them; nothing else is held.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.columns = {}  # name -> (first row among the column rows, rows; None: a plain column)
        self.used = 0  # column rows
        self.free = []  # the scratch array held by each free row, or None for a spare row

    def add_column(self, name, rows, table):
        """A column of ``rows`` rows: a ``[row, slot]`` table if ``table`` (even of one row), else a plain one."""
        self.columns[name] = (self.used, rows if table else None)
        self.used += rows

    @property
    def rows(self):
        return self.used + len(self.free)

    def moves(self, low):
        """The gathers of a reorder, in order, when the column rows start at storage row ``low`` (0: the free
        rows follow them; else they precede them): ``(first, end, shift)`` moves storage rows
        ``low + first .. low + end`` by ``shift``.  The column rows then start at ``len(self.free) - low``."""
        step = len(self.free)
        if low == 0:  # move up, the top block first
            return [(max(top - step, 0), top, step) for top in range(self.used, 0, -step)]
        return [(first, min(first + step, self.used), -step) for first in range(0, self.used, step)]


def every_row():
    """The held rows of a table that holds every row of the PER_RUN_ROWS columns: row r at row r."""
    return {name: np.arange(COLUMNS[name][1]) for name in PER_RUN_ROWS}


def table_rows(held):
    """Rows a table allocates for each PER_RUN_ROWS column, given ``held`` (name -> the table row of each of the
    column's rows, or -1): the rows held, and at least one, so that no rule is handed an empty array."""
    return {name: max(int(np.count_nonzero(np.asarray(rows) >= 0)), 1) for name, rows in held.items()}


def row_blocks(held=None):
    """The RowBlock of each dtype of a table that holds the rows ``held`` (default: every row)."""
    allocated = table_rows(every_row() if held is None else held)
    blocks = {}
    for name, (dtype, rows) in COLUMNS.items():
        blocks.setdefault(np.dtype(dtype).str, RowBlock(dtype)).add_column(name, allocated.get(name, rows), rows > 1)
    for name, (dtype, rows) in SCRATCH.items():
        if rows != 1:
            raise ValueError(f"scratch array {name} must have one row: it is a free row of its dtype's block")
        blocks.setdefault(np.dtype(dtype).str, RowBlock(dtype)).free.append(name)
    for name, host in SHARED_SCRATCH.items():
        if host not in SCRATCH:
            raise ValueError(f"scratch array {name} shares the row of {host}, which is not a scratch array")
    for block in blocks.values():
        if not block.free:
            block.free.append(None)
    return blocks


def id_problems(sorted_ids, next_id, previous_ids=None, previous_next_id=0):
    """What is wrong with the ids of a table's live cells (``sorted_ids``, sorted), against the id counter
    ``next_id`` and the last check's ids and counter: none shared, none beyond the counter, no new one below
    the last counter (an id reused)."""
    problems = []
    if sorted_ids.size and np.any(sorted_ids[1:] == sorted_ids[:-1]):
        problems.append("two cells share an id")
    if sorted_ids.size and sorted_ids[-1] >= next_id:
        problems.append("an id beyond the id counter")
    if previous_ids is not None:
        new = np.setdiff1d(sorted_ids, previous_ids, assume_unique=True)
        if new.size and new.min() < previous_next_id:
            problems.append("an id was reused")
    return problems


def chunk_size(voxels):
    """Voxels in the largest chunk of a lattice of ``voxels`` (what a lattice walk holds buffers for)."""
    return min(int(voxels), VOXEL_CHUNK)


def voxel_chunks(voxels):
    """``(first voxel, voxels)`` of each chunk of at most VOXEL_CHUNK voxels of a lattice of ``voxels``."""
    chunk = chunk_size(voxels)
    return [(start, min(chunk, voxels - start)) for start in range(0, voxels, chunk)]


def sort_bytes(voxels):
    """Device memory held while the table is sorted by voxel (a chunk's marks and prefix sum)."""
    return chunk_size(voxels) * 8


def bytes_per_agent(held=None):
    """Bytes per slot of an agent table holding the rows ``held`` (default: every row): the columns, the scratch
    arrays, the spare rows for reordering (RowBlock) and the work arrays."""
    blocks = sum(block.dtype.itemsize * block.rows for block in row_blocks(held).values())
    return blocks + sum(np.dtype(t).itemsize * rows for t, rows in WORK.values())


class ScratchRowConflict(RuntimeError):
    """Debug mode: one phase used two scratch arrays that share a row (SHARED_SCRATCH), so one overwrote the
    other."""


class State:
    """Agent columns and occupancy grid on one backend."""

    def __init__(self, backend, shape, capacity=1024, held=None):
        self.backend = backend
        self.held = every_row() if held is None else {name: np.asarray(rows) for name, rows in held.items()}
        self.blocks = row_blocks(self.held)
        self.slot_bytes = bytes_per_agent(self.held)  # what one slot of this table takes
        self.xp = backend.xp
        self.shape = tuple(int(s) for s in shape)
        self.n = 0  # slots in use: the cells, and dead cells not yet compacted away (holds_dead)
        self.next_id = 0
        self.exact = True
        self.holds_dead = False  # whether slots below n may hold dead cells (compact() reclaims them)
        self.voxel_ordered = False  # whether the cells are known to sit in voxel order (sort_by_voxel)
        self.counters = self.xp.zeros(2, dtype=np.int64)  # [cells, next id] on the backend
        self.capacity = 0
        self.columns = {}
        self.scratch = {}
        self.work = {}
        self.spares = []  # the spare rows (RowBlock)
        self.storage = {}  # dtype -> the [row, slot] array of its RowBlock
        self.low_row = {}  # dtype -> the storage row of the first column row: 0, or the number of free rows
        self.occ = self.xp.full(int(np.prod(self.shape)), -1, dtype=np.int32)
        self._scratch_users = None  # debug mode: row -> the scratch array using it in the phase running
        self._phase = None
        self._allocate(max(int(capacity), 16))

    # --- storage ---------------------------------------------------------------
    def _allocate(self, capacity):
        xp = self.xp
        self.columns, self.scratch, self.spares = {}, {}, []  # no view keeps an old block alive once it is copied
        for key, block in self.blocks.items():
            fresh = xp.zeros((block.rows, capacity), dtype=block.dtype)
            if key in self.storage:
                fresh[: block.used, : self.n] = self._column_rows(key)[:, : self.n]
            self.storage[key], self.low_row[key] = fresh, 0
        for name, (dtype, rows) in WORK.items():
            self.work[name] = xp.zeros(capacity, dtype=dtype)
        self.capacity = capacity
        self._bind()

    def _bind(self):
        """Point the columns, scratch arrays and spare rows at their rows of the storage."""
        self.spares = []
        for key, block in self.blocks.items():
            storage, low = self.storage[key], self.low_row[key]
            for name, (first, rows) in block.columns.items():
                row = low + first
                self.columns[name] = storage[row] if rows is None else storage[row : row + rows]
            first_free = block.used if low == 0 else 0
            for f, name in enumerate(block.free):
                if name is None:
                    self.spares.append(storage[first_free + f])
                else:
                    self.scratch[name] = storage[first_free + f]
        for name, host in SHARED_SCRATCH.items():
            self.scratch[name] = self.scratch[host]
        self.columns = {name: self.columns[name] for name in COLUMNS}  # the table's order

    def _column_rows(self, key):
        """The column rows of dtype ``key``'s block, where they are now (after the free rows or before them)."""
        low = self.low_row[key]
        return self.storage[key][low : low + self.blocks[key].used]

    def column_rows(self, dtypes):
        """Every column's rows, as one ``[row, slot]`` table per dtype (RowBlock), in the order of ``dtypes``
        (numpy dtype strings; kernels.cell_cycle.TABLE_DTYPES names every dtype of COLUMNS, a test holds it)."""
        return [self._column_rows(key) for key in dtypes]

    def reserve(self, needed):
        """Make room for ``needed`` agents, growing geometrically as far as the backend's memory allows."""
        if needed <= self.capacity:
            return
        self._require_exact("grow the table")
        grown = min(max(int(needed), int(self.capacity * GROWTH) + 1), MAX_SLOTS, self.affordable_slots())
        if grown < needed:
            raise RuntimeError(
                f"the agent table cannot grow to {needed} cells (at most {MAX_SLOTS} slots, and "
                f"{self.backend.memory_available() / 2**30:.1f} GiB free on {self.backend.label} for "
                f"{self.slot_bytes} bytes a slot)"
            )
        self._allocate(grown)

    def make_room(self, extra):
        """Room for ``extra`` cells after the slots in use; dead slots are compacted away first (the host then
        waits for the count) if the table would otherwise grow."""
        if self.n + extra > self.capacity and self.holds_dead:
            self.compact()
            self.synchronize()
        self.reserve(self.n + extra)

    def table_bytes(self):
        """Bytes the agent table holds now: capacity x slot_bytes."""
        return self.capacity * self.slot_bytes

    def affordable_slots(self):
        """The most slots a grown table could have: the rows of one dtype are copied at a time, so the free
        memory and the old table, less its largest block of rows (held while its copy is made), with 5% to
        spare."""
        largest = max(a.nbytes for a in self.storage.values())
        return int((self.backend.memory_available() + self.table_bytes() - largest) * 0.95) // self.slot_bytes

    def __getitem__(self, name):
        """The full-capacity column (or scratch array) ``name``."""
        return self.columns[name] if name in self.columns else self._scratch_array(name)

    # --- debug mode: which phase owns each shared scratch row ------------------------
    def watch_scratch(self):
        """Debug mode: from now on every use of a scratch array is recorded against the phase running
        (:meth:`enter_phase`), and a phase that uses two scratch arrays sharing one row (``SHARED_SCRATCH``:
        rank and taken_a, won and touched, claim and contact) raises :class:`ScratchRowConflict` naming both."""
        self._scratch_users = {}
        self._phase = "set-up"

    def enter_phase(self, name):
        """Debug mode: the phase ``name`` starts; the shared rows are free again (none is read across phases)."""
        if self._scratch_users is not None:
            self._scratch_users = {}
            self._phase = name

    def _scratch_array(self, name):
        array = self.scratch[name]
        if self._scratch_users is not None:
            row = SHARED_SCRATCH.get(name, name)
            user = self._scratch_users.setdefault(row, name)
            if user != name:
                raise ScratchRowConflict(
                    f"phase {self._phase}: scratch arrays {user} and {name} share one row of the agent table "
                    f"(gpusim.state.SHARED_SCRATCH), so one overwrites the other; give one of them its own row")
        return array

    def __contains__(self, name):
        return name in self.columns or name in self.scratch

    def view(self, name):
        """The live part ``[..., :n]`` of a column."""
        self._require_exact("take the live part of a column")
        return self[name][..., : self.n]

    # --- the count of cells -------------------------------------------------------
    @property
    def cells(self):
        """The extent of a launch over every cell: ``n`` when the host knows it, else a Count."""
        return self.n if self.exact else Count(self.n, self.counters[CELLS : CELLS + 1])

    def _require_exact(self, what):
        if not self.exact:
            raise RuntimeError(f"cannot {what} while the count of cells is known only on the device")

    def publish(self):
        """The host's exact count and next id, written to the backend's counters."""
        self.counters[...] = self.xp.asarray(np.array([self.n, self.next_id], dtype=np.int64))

    def settle(self, cells, next_id):
        """The host learns the exact count and next id (read from the counters with the step's record)."""
        self.n, self.next_id, self.exact = int(cells), int(next_id), True

    def synchronize(self):
        """Read the counters from the backend (waits for it): ``n`` and ``next_id`` are exact after."""
        if not self.exact:
            cells, next_id = self.backend.to_host(self.counters)
            self.settle(cells, next_id)

    def _launch(self, rule, extent, **named):
        """Launch ``rule`` with its arguments bound by name: ``named``, then the grid and the columns."""
        return launch_named(self.backend.launch, rule, extent, named, {"occ": self.occ}, self.columns)

    # --- growth, compaction and sorting -----------------------------------------
    def append(self, count, written=()):
        """Open ``count`` new slots at the end, zeroed but for the columns named in ``written`` (already filled);
        return the first slot and first id."""
        self._require_exact("append cells")
        self.reserve(self.n + count)
        first_slot, first_id = self.n, self.next_id
        for name, col in self.columns.items():
            if name not in written:
                col[..., first_slot : first_slot + count] = 0
        self.n += count
        self.next_id += count
        self.voxel_ordered = False
        self.publish()
        return first_slot, first_id

    def rank_marks(self, marks):
        """The inclusive prefix sum of ``marks`` (0 or 1 per live slot), in the rank scratch array.

        The marks go through the listing work array first: the sum is then
        never computed in place (which not every array library allows) and
        never casts on the fly (numpy's slow path, 5x slower).
        """
        self.work["listing"][: self.n] = marks
        return self._rank_listing(self.n)

    def _rank_listing(self, count):
        """The inclusive prefix sum of the first ``count`` entries of the listing work array, into the rank one."""
        rank = self["rank"]
        return self.xp.cumsum(self.work["listing"][:count], dtype=rank.dtype, out=rank[:count])

    def order_by_voxel(self, listing, count):
        """Reorder the first ``count`` entries of ``listing`` (slots; ``count`` a one-element array on the
        backend, which the host need not read) by their cells' voxels, in place.

        Daughters take their ids and slots in the order of their parents in the
        listing: in voxel order rather than slot order, the ids do not depend on
        where cells sit in the table, so a table sorted otherwise, or split
        across processes along z (rank by rank, each in voxel order), numbers
        the same daughters the same way.  Each parent is in a voxel of its own,
        so the order is total.
        """
        xp, bound = self.xp, listing.shape[0]
        if bound < 2:
            return
        listed = xp.arange(bound) < count
        keys = xp.where(listed, self["voxel"][xp.where(listed, listing, 0)], np.iinfo(np.int64).max)
        listing[...] = listing[xp.argsort(keys)]

    def add_daughters(self, rank, bound):
        """Count the daughters just placed after slot ``n`` (``rank``: inclusive prefix sum of the parents, on the
        backend) and at most ``bound`` of them: the counters grow on the backend, the host keeps bounds."""
        self._require_exact("add daughters")
        if self.n:
            self.counters += self.xp.minimum(rank[self.n - 1], bound)  # only those with a slot (see place_daughter)
        self.n += int(bound)
        self.next_id += int(bound)
        self.exact = False

    def note_deaths(self):
        """Cells may have died (marked ``DEAD``, out of the occupancy grid): their slots hold them until
        :meth:`compact`.  Every rule passes over a dead slot, so when compaction happens changes nothing but
        the slots the living occupy, and their order is kept."""
        self.holds_dead = True

    def compact_dead(self):
        """Compact the table if it may hold dead cells."""
        if self.holds_dead:
            self.compact()

    def compact(self):
        """Drop dead cells (``DEAD``), keeping the order of the rest, without the host learning how many are left.

        The survivors are listed by the prefix sum of their marks, and every
        column gathers them into a free buffer of its shape (:meth:`_gather`).
        """
        bound = self.n
        self.holds_dead = False
        if bound == 0:
            return
        survivors = self.work["listing"][:bound]
        self._launch(mark_survivor, bound, live=self.counters[CELLS : CELLS + 1], keep=survivors)
        rank = self._rank_listing(bound)
        self._launch(list_by_rank, bound, rank=rank, listing=survivors)
        self.counters[CELLS : CELLS + 1] = rank[bound - 1 : bound]
        self.exact = False
        self._gather(survivors, self.cells)

    def _gather(self, order, extent):
        """New slot k takes old slot ``order[k]`` in every column (k below ``extent``); occupancy follows.

        Each dtype's column rows are gathered into its free rows a block at a
        time (:meth:`RowBlock.moves`), so every block lands on rows that are
        free by then.
        """
        for key, block in self.blocks.items():
            storage, low = self.storage[key], self.low_row[key]
            for first, end, shift in block.moves(low):
                source, destination = storage[low + first : low + end], storage[low + first + shift : low + end + shift]
                self._launch(gather_slots, extent, order=order, source=source, destination=destination)
            self.low_row[key] = len(block.free) - low
        self._bind()
        self._launch(claim_own_voxel, self.cells)

    def sort_by_voxel(self):
        """Stable sort of the agent table by voxel index (free slots after every cell); dead cells, which are
        in no voxel, are dropped.

        The occupancy grid already holds the cells in voxel order: the
        occupied voxels are listed by prefix sum, a chunk of the lattice at a
        time (:func:`list_occupied`), and their slots are the new order.
        """
        if self.n == 0:
            return
        xp = self.xp
        marks = xp.empty(chunk_size(self.occ.shape[0]), dtype=np.int32)
        rank = xp.empty_like(marks)
        listed = xp.zeros(1, dtype=np.int64)  # slots listed so far, on the backend
        order = self.work["listing"]
        for start, extent in voxel_chunks(self.occ.shape[0]):
            self._launch(mark_occupied, extent, first_voxel=start, marks=marks)
            xp.cumsum(marks[:extent], dtype=rank.dtype, out=rank[:extent])
            self._launch(list_occupied, extent, first_voxel=start, rank=rank, listed=listed, listing=order)
            listed += rank[extent - 1 : extent]
        self.counters[CELLS : CELLS + 1] = listed
        self.exact, self.holds_dead = False, False
        self._gather(order, self.cells)
        self.voxel_ordered = True

    def put_in_voxel_order(self):
        """Sort the table by voxel unless it already is (dead slots go with the sort).

        Checkpoints and snapshots hold the cells in this order: what they hold
        then does not depend on where cells sat in the table, which a run does
        not depend on either (tests/test_determinism.py), so a run split across
        processes stores the same.
        """
        if not self.voxel_ordered:
            self.sort_by_voxel()

    # --- whole slots, for a split run's exchange of cells between ranks --------------------------------------
    def packed_slots(self, slots):
        """The column rows of ``slots`` (backend indices) in one host byte buffer: each dtype's block in the order
        of TABLE_DTYPES (kernels.cell_cycle), ``[row, slot]`` C-ordered.  A table with the same rows (a rank of the
        same run) puts them back with :meth:`put_slots`."""
        count = int(slots.shape[0])
        payload = np.empty(count * self.slot_bytes_packed(), dtype=np.uint8)
        for block, rows in self._packed_blocks(payload, count):
            if self.xp is np:
                np.take(block, slots, axis=1, out=rows)  # straight into the buffer
            else:
                rows[...] = self.backend.to_host(self.xp.take(block, slots, axis=1))
        return payload

    def slot_bytes_packed(self):
        """Bytes :meth:`packed_slots` takes per slot."""
        return sum(block.shape[0] * block.dtype.itemsize for block in self.column_rows(TABLE_DTYPES))

    def put_slots(self, first, payload):
        """Write the slots of ``payload`` (:meth:`packed_slots` of a table with the same rows) to slots ``first``
        onwards (the table has room); returns how many."""
        count = payload.shape[0] // self.slot_bytes_packed()
        for block, rows in self._packed_blocks(payload, count):
            block[:, first : first + count] = self.backend.to_device(rows)
        return count

    def _packed_blocks(self, payload, count):
        """Each dtype's column rows (TABLE_DTYPES order) with its ``[row, slot]`` view of ``count`` slots in the
        host byte buffer ``payload``: the layout :meth:`packed_slots` and :meth:`put_slots` share."""
        at = 0
        for block in self.column_rows(TABLE_DTYPES):
            size = block.shape[0] * block.dtype.itemsize * count
            yield block, payload[at : at + size].view(block.dtype).reshape(block.shape[0], count)
            at += size

    def keep_slots(self, keep):
        """Keep the slots marked in ``keep`` (a backend bool array over the ``n`` slots), the others dropped: the
        kept slots past the new count fill the holes below it, the rest of the table stays where it is (a few
        slots move, not the table).  Occupancy follows: the voxels of the dropped cells that were in one are
        freed.  Returns the new count."""
        xp = self.xp
        self._require_exact("keep slots")
        n = self.n
        kept = int(keep.sum())
        dropped = xp.flatnonzero(~keep)
        in_voxel = dropped[(self["state"][dropped] & DEAD) == 0]  # the dead left their voxels when they died
        self.occ[self["voxel"][in_voxel]] = -1
        holes = xp.flatnonzero(~keep[:kept])
        fillers = xp.flatnonzero(keep[kept:n]) + kept
        for block in self.column_rows(TABLE_DTYPES):
            block[:, holes] = block[:, fillers]
        self.occ[self["voxel"][holes]] = holes.astype(self.occ.dtype)
        self.n, self.holds_dead, self.voxel_ordered = kept, False, False
        self.publish()
        return kept

    def claim_voxels(self, first, stop):
        """Occupancy for the cells in slots ``first`` to ``stop``, just written there."""
        self.occ[self["voxel"][first:stop]] = self.xp.arange(first, stop, dtype=self.occ.dtype)

    def host_columns(self):
        """Host copies of every column for the cells (dead slots compacted away first), in slot order, with every
        row of the PER_RUN_ROWS columns (those the table does not hold are 0)."""
        self.compact_dead()
        self.synchronize()
        out = {name: self.backend.to_host(self.view(name)).copy() for name in COLUMNS}
        for name in self.held:
            out[name] = self.every_row_of(name, out[name])
        return out

    def every_row_of(self, name, held_values):
        """Host values ``[table row, ...]`` of the PER_RUN_ROWS column ``name`` as ``[row, ...]`` of every row
        of the column (zeros where the table holds none)."""
        rows = self.held[name]
        out = np.zeros((rows.shape[0],) + held_values.shape[1:], dtype=held_values.dtype)
        out[rows >= 0] = held_values[rows[rows >= 0]]
        return out

    def load_columns(self, columns, n):
        """Fill the first ``n`` slots from host ``columns`` holding every row (as :meth:`host_columns` gives
        them); a row this table does not hold must be 0 there."""
        self._require_exact("load columns")
        for name in COLUMNS:
            values = np.asarray(columns[name])
            if name in self.held:
                rows = self.held[name]
                if np.any(values[rows < 0]):
                    raise ValueError(f"{name}: a row this run's table does not hold is not 0")
                table = np.zeros((self[name].shape[0], n), dtype=values.dtype)
                table[rows[rows >= 0]] = values[rows >= 0]
                values = table
            self[name][..., :n] = self.backend.to_device(values)

    def snapshot(self):
        """Host copies of the cells' columns in voxel order (:meth:`put_in_voxel_order`) and of the occupancy
        grid."""
        self.put_in_voxel_order()
        out = self.host_columns()
        out["occ"] = self.backend.to_host(self.occ).copy()
        out["next_id"] = self.next_id
        return out

    def check_invariants(self, previous_ids=None, previous_next_id=0):
        """Assert the lattice invariants; returns the sorted ids for the next check.

        Occupancy and the cells' columns agree one-to-one (dead cells not yet
        compacted away are in no voxel), no voxel holds two cells, ids are
        unique, and ids that appear are new ids, never reused.  Reads the
        table as it is: checking compacts nothing.
        """
        self.synchronize()
        occ = self.backend.to_host(self.occ)
        live = (self.backend.to_host(self.view("state")) & DEAD) == 0
        slots = np.flatnonzero(live)
        voxel = self.backend.to_host(self.view("voxel"))[live]
        ids = self.backend.to_host(self.view("agent_id"))[live]
        n = slots.size
        problems = []
        if n and (voxel.min() < 0 or voxel.max() >= occ.size):
            problems.append("a cell sits outside the lattice")
        elif np.unique(voxel).size != n:
            problems.append("two cells share a voxel")
        elif n and not np.array_equal(occ[voxel], slots.astype(occ.dtype)):
            problems.append("occupancy grid and agent voxels disagree")
        if np.count_nonzero(occ >= 0) != n:
            problems.append(f"occupancy grid holds {np.count_nonzero(occ >= 0)} cells, agent table {n}")
        sorted_ids = np.sort(ids)
        problems += id_problems(sorted_ids, self.next_id, previous_ids, previous_next_id)
        if problems:
            raise AssertionError("lattice invariants broken: " + "; ".join(problems))
        return sorted_ids
