"""The step pipeline: one dt of the model, phase by phase (docs/model.md).

Each phase reads the state as it was at the phase's start and is made of
rules from :mod:`gpusim.kernels`, launched on the chosen backend:

1. engage  - free effectors pick a synapse partner (tumour cells; effectors wearing antigen)
2. synapse - binding, lytic hits, trogocytosis both ways, stimulation, synapse ends
3. express - pools relax to their set points; exhaustion, damage and bites recover
4. move    - effectors take a persistent random-walk step (claim, resolve, commit)
5. divide  - due tumour cells and activated effectors put a daughter in a free voxel
6. die     - lethal damage, engulfment, trogoptosis, apoptosis, necrosis; dead slots compacted away once many
7. fields  - diffusion-reaction of oxygen and chemokine with the cells as sources and sinks
8. dose    - scheduled infusions add effectors
9. observe - the census and the step's ledger become one row of the time series

Tumour cells sense oxygen (hypoxia, anoxia) at the start of the divide phase;
effectors sense the chemokine when they turn (move phase).
"""

import contextlib
import time

import numpy as np

from gpusim import backend as backends
from gpusim import parameters
from gpusim.config import ConfigError
from gpusim.domain import WholeLattice
from gpusim.dosing import Placement, add_cells, placement_bytes
from gpusim.kernels.cell_cycle import TABLE_DTYPES, choose_division_site, copy_parent, place_daughter, start_cycle
from gpusim.kernels.census import census, flow_cytometry
from gpusim.fields import CHEMOKINE, OXYGEN, Fields
from gpusim.fields import memory_needed as fields_memory_needed
from gpusim.kernels.cells import KIND_NAMES, N_KINDS, NECROTIC, QUIESCENT, TUMOUR
from gpusim.kernels.claims import resolve_claim
from gpusim.kernels.death import deplete, die
from gpusim.kernels.expression import express_and_recover
from gpusim.kernels.migration import choose_step, commit_step
from gpusim.kernels.oxygen import sense_oxygen
from gpusim.kernels.molecules import HIST_BINS, N_SPECIES
from gpusim.kernels.occupancy import FIELD_NAMES, claim_own_voxel, list_by_rank, paint_field, paint_kind
from gpusim.kernels.rng import DIVISION_PRIORITY, MOVE_PRIORITY
from gpusim.kernels.synapse import (
    choose_partner, release_partner, synapse_apply, synapse_exchange, synapse_receive,
)
from gpusim.kernels.census import CENSUS_ROW, CENSUS_SIZE, DEAD_SLOTS, DIVISION_CANDIDATES, LIVE, NECROTIC_COUNT
from gpusim.kernels.cpu_launcher import Count
from gpusim.kernels.decorators import launch_named, reach, tally_size
from gpusim.kernels.tally import BIRTHS, STEP_TALLY, TABLE_FULL
from gpusim.observables import Timeseries
from gpusim.state import HEADROOM, State, bytes_per_agent, chunk_size, sort_bytes, voxel_chunks

# the initial tumour's placement (tumour.placement): a ball at the lattice centre, or cells scattered uniformly at
# random as in a co-culture well
TUMOUR_PLACEMENTS = {"ball": Placement.BALL, "well_mixed": Placement.UNIFORM}
PHASES = ("engage", "synapse", "express", "move", "divide", "die", "fields", "dose", "sort", "observe", "exchange")
# The rules a step launches over its cells, in order, at most (the fields, placing infused cells, compaction, the
# sort and the census come besides: over the fields' grid, or each cell or voxel on its own).  Each rule reads and writes
# within its reach of a cell's voxel (kernels.decorators.rule), so a cell's state after a step depends on the
# cells within the sum of their reaches: the layers of lattice beyond its own a process holding a slab of the
# lattice needs to step its own cells exactly.  tests/test_lattice_invariants.py holds this list to what a step
# launches.
STEP_LAUNCHES = (
    choose_partner,  # engage
    synapse_exchange, synapse_apply, synapse_receive,  # synapse
    express_and_recover,  # express
    choose_step, resolve_claim, commit_step,  # move
    sense_oxygen, choose_division_site, resolve_claim, list_by_rank, copy_parent, place_daughter,  # divide
    die, release_partner,  # die
    deplete, release_partner,  # dose, when a depletion is due
)
STEP_REACH = sum(reach(r) for r in STEP_LAUNCHES)  # voxels
# the die phase compacts the table once the dead cells in it (counted by the last census) are this share of
# its slots in use: compacting gathers every column, and a dead slot costs the other rules only a look at its
# flags.  A sort, a snapshot, a checkpoint and a table that would otherwise grow compact it too.
COMPACT_DEAD_SHARE = 1 / 32


class _PhaseTimer:
    """Wall time of one phase, the device synchronised at both ends."""

    def __init__(self, sim, name):
        self.sim, self.name = sim, name

    def __enter__(self):
        self.sim.backend.synchronize()
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.sim.backend.synchronize()
        self.sim.phase_seconds[self.name].append(time.perf_counter() - self.start)


def cells_to_come(cfg, clock=0, cells=None):
    """The cells a run holds from step ``clock`` on before any division: ``cells`` then (the tumour's initial
    cells at the start), and every dose infused from then on."""
    if cells is None:
        cells = cfg.tumour.initial_cells
    return cells + sum(d.count for d in cfg.dose if cfg.steps_of(d.time) >= clock)


def memory_needed(cfg, cells=None, layers=None):
    """Bytes the run needs: the occupancy grid, the agent table (columns, scratch, work and spare buffers) for
    ``cells`` (by default every cell placed or infused, :func:`cells_to_come`) with the first table's headroom,
    the most held for a moment (placing cells, sorting the table, or a snapshot's buffer, each a chunk of the
    lattice at a time), and the diffusing fields.  ``layers``: a rank of a split run holding that many layers
    of the lattice (its grid is those layers'; its table may hold every cell, as before the first rebalance)."""
    voxels = cfg.voxels if layers is None else cfg.voxels // cfg.lattice.shape[0] * int(layers)
    agents = max(cells_to_come(cfg) if cells is None else cells, 1024)
    table = int(agents * HEADROOM) * bytes_per_agent(parameters.build(cfg)["held"])
    transient = max(placement_bytes(voxels), sort_bytes(voxels), chunk_size(voxels) * 4)
    return voxels * 4 + table + transient + fields_memory_needed(cfg)


def preflight(cfg, backend, cells=None, layers=None):
    """Refuse, before allocating anything, a run that will not fit in the backend's memory (with ``cells``, a
    run resumed with that many cells and the doses still to come; with ``layers``, a rank of a split run)."""
    needed = memory_needed(cfg, cells, layers)
    available = backend.memory_available()
    if needed > available:
        z, y, x = cfg.lattice.shape
        holding = f"{cfg.tumour.initial_cells} initial cells" if cells is None else f"{cells:,} cells"
        raise ConfigError(
            [
                f"lattice.shape: a {z}x{y}x{x} lattice with {holding} needs "
                f"{needed / 2**30:.1f} GiB, but {backend.label} has {available / 2**30:.1f} GiB available"
            ]
        )


class Simulation:
    """A run of the model: state, parameters, backend and the observables so far."""

    def __init__(self, cfg, backend=None, debug=False, _populate=True, domain=None):
        self.cfg = cfg
        # the layers this process steps: the whole lattice, or an MPI rank's slab (gpusim.parallel.SlabDomain)
        self.domain = WholeLattice(cfg.lattice.shape) if domain is None else domain
        self.backend = backend if backend is not None else backends.select(configured=cfg.run.backend)
        self.xp = self.backend.xp
        self.launch = self.backend.launch
        self.debug = debug
        self.seed = int(cfg.run.seed)
        self.dt = float(cfg.run.dt)
        self.clock = 0
        inputs = parameters.build(cfg, held=self.domain.held if self.domain.splits else None)
        self.tables = self.backend.to_device(inputs["tables"])
        self.cycle_table = self.backend.to_device(inputs["cycle_table"])
        self.age_table = self.backend.to_device(inputs["age_table"])
        self.set_point_table = self.backend.to_device(inputs["set_point_table"])
        self.inheritance_table = self.backend.to_device(inputs["inheritance_table"])
        self.oxygen_levels = self.backend.to_device(inputs["oxygen_levels"])
        self.chemotaxis_sensitivity = self.backend.to_device(inputs["chemotaxis_sensitivity"])
        self.fields = Fields(cfg, self.backend, self.domain)
        self._no_field = self.xp.zeros(1)
        self.detection = int(cfg.synapse.trogocytosis_detection)
        self.end_step = cfg.steps
        self.snapshot_steps = cfg.steps_of(cfg.run.snapshot_every)
        self.sort_steps = cfg.steps_of(cfg.run.sort_every)
        self.checkpoint_steps = cfg.steps_of(cfg.run.checkpoint_every)
        self.depletions = sorted((cfg.steps_of(d.time), KIND_NAMES.index(d.kind)) for d in cfg.depletion)
        self.doses = sorted(
            ((cfg.steps_of(d.time), n, d) for n, d in enumerate(cfg.dose)), key=lambda item: (item[0], item[1])
        )
        # what rules take by name besides the state's columns (launch_rule): fixed for the run, but for the
        # parameters and the occupancy grid of the layers held (_hold_layers)
        self.run_arguments = {
            "seed": self.seed, "tables": self.tables, "detection": self.detection, "cycle_table": self.cycle_table,
            "age_table": self.age_table, "inheritance_table": self.inheritance_table,
            "oxygen_levels": self.oxygen_levels, "sensitivity": self.chemotaxis_sensitivity,
            "set_point_table": self.set_point_table,
        }
        initial = cfg.tumour.initial_cells + sum(d.count for d in cfg.dose if cfg.steps_of(d.time) == 0)
        self._hold_layers(initial, inputs)
        self.timeseries = Timeseries()
        self._seen_ids = None
        self._daughters_next = None  # bound on the next step's daughters, from the last census
        self._dead_slots = 0  # dead cells not yet compacted away, from the last census
        self.cell_count = 0  # the cells (live and debris), from the last census
        self.phase_seconds = None
        if _populate:
            self._seed_population()

    @classmethod
    def restore(cls, cfg, checkpoint, timeseries_rows, backend=None, debug=False, domain=None):
        """A simulation continuing from a checkpoint (see :meth:`checkpoint`): bitwise the run it was taken from.

        ``timeseries_rows`` are the observables from the start up to the checkpoint's clock.  On a rank of a
        split run (``domain``), ``checkpoint`` holds the rank's table (gpusim.parallel.local_columns: its own
        cells, then its halo's) and the whole run's next id.
        """
        sim = cls(cfg, backend=backend, debug=debug, _populate=False, domain=domain)
        sim.clock = int(checkpoint["clock"])
        for name, values in timeseries_rows.items():
            sim.timeseries.rows[name] = list(values.tolist())
        if sim.fields:
            sim.fields.values[...] = sim.backend.to_device(checkpoint["columns"]["field_values"])
        sim._load_table(checkpoint)
        return sim

    def take_layers(self, checkpoint):
        """Go on stepping other layers: a split run moved its slab boundaries (the domain's slab has changed,
        gpusim.mpi_run), and ``checkpoint`` holds this rank's new table (as :meth:`restore` takes it).  The run
        continues as it would have: what a rank holds changes, never what a cell does."""
        self._hold_layers(int(checkpoint["n"]))
        self._load_table(checkpoint)

    def _hold_layers(self, cells, inputs=None):
        """The parameters and an empty agent table (room for ``cells``) for the layers the domain holds."""
        if inputs is None:
            inputs = parameters.build(self.cfg, held=self.domain.held if self.domain.splits else None)
        self.params = self.backend.to_device(inputs["params"])
        self.state = State(
            self.backend, self.domain.held_shape, capacity=max(1024, int(cells * HEADROOM)), held=inputs["held"]
        )
        if self.debug:
            self.state.watch_scratch()  # a phase using two scratch arrays of one row raises (gpusim.state)
        self.run_arguments.update(params=self.params, occ=self.state.occ)

    def _load_table(self, checkpoint):
        """The table and occupancy of a checkpoint (its cells, count and next id), and what the next step
        learns from a census: its bound on daughters grows by a rank's halo, which the census does not
        count."""
        s = self.state
        n = int(checkpoint["n"])
        s.reserve(max(n, 16))
        s.load_columns(checkpoint["columns"], n)
        s.n = n
        s.next_id = int(checkpoint["next_id"])
        s.publish()
        s.occ[:] = -1
        self.launch_rule(claim_own_voxel, n)
        self._learn_from_census()
        self._daughters_next += self.domain.received

    def checkpoint(self):
        """The complete state as host arrays: enough to continue the run bit for bit."""
        s = self.state
        s.put_in_voxel_order()
        columns = s.host_columns()
        if self.fields:
            columns["field_values"] = self.fields.host_values().reshape(len(self.fields.names), -1)
        return {
            "clock": self.clock,
            "n": s.n,
            "next_id": s.next_id,
            "columns": columns,
        }

    # --- set-up -------------------------------------------------------------------
    def _seed_population(self):
        s = self.state
        add_cells(self, self.cfg.tumour.initial_cells, TUMOUR, TUMOUR_PLACEMENTS[self.cfg.tumour.placement])
        self.launch_rule(start_cycle, s.n, 0)
        dosed, infused = self._dose()
        for _ in range(self.cfg.fields.settle if self.fields else 0):
            self.fields.update(s, NECROTIC)
        counts = self.census()
        whole = self.domain.sum(counts)
        self.timeseries.record(0, self.dt, whole, np.zeros(STEP_TALLY, dtype=np.int64), dosed, infused)
        self._learn_from_census(counts, whole)
        self._exchange()  # a split run's halos filled
        if self.debug:
            self._check()

    # --- the step -----------------------------------------------------------------
    def step(self):
        """Advance the model by one dt.

        The step runs on the backend without waiting for it: the tallies stay
        there, births and compaction change the count of cells there, and the
        launches after them take that count from device memory
        (:class:`~gpusim.kernels.cpu_launcher.Count`).  The host reads once, at the
        end (:meth:`_observe`): the step's record, the count of cells, and the
        bound on the next step's daughters that sizes the table for it.
        """
        t = self.clock
        s = self.state
        daughters = self._daughters_next
        if self.debug:
            s.enter_phase("make room")
        s.voxel_ordered = False  # cells move and are born; the sort phase may order them again
        s.make_room(daughters)
        ledger = self.xp.zeros(STEP_TALLY, dtype=np.int64)
        with self._phase("engage"):
            ledger += self._engage(t)
        with self._phase("synapse"):
            ledger += self._synapse(t)
        with self._phase("express"):
            ledger += self._express(t)
        with self._phase("move"):
            ledger += self._move(t)
        with self._phase("divide"):
            self._divide(t, daughters, ledger)
        with self._phase("die"):
            ledger += self._die(t)
        with self._phase("fields"):
            if self.fields and t % self.fields.every_steps == 0:
                self.fields.update(self.state, NECROTIC)
        self.clock = t + 1
        with self._phase("dose"):
            self._deplete(ledger)
            dosed, infused = self._dose()
        with self._phase("sort"):
            if self.sort_steps and self.clock % self.sort_steps == 0:
                self.state.sort_by_voxel()
        with self._phase("observe"):
            self._observe(ledger, dosed, infused, daughters)
        with self._phase("exchange"):
            self._exchange()
        if self.debug:
            self._check()

    def _learn_from_census(self, counts=None, whole=None):
        """From this process's census (``counts``; the set-up takes one): at most how many daughters its next
        step can have and the dead slots its table holds; from the run's (``whole``, the sum over processes),
        its cells."""
        counts = self.census() if counts is None else counts
        whole = self.domain.sum(counts) if whole is None else whole
        per_kind = counts[: N_KINDS * CENSUS_ROW].reshape(N_KINDS, CENSUS_ROW)
        self._daughters_next = int(per_kind[:, DIVISION_CANDIDATES].sum())
        self._dead_slots = int(per_kind[:, DEAD_SLOTS].sum())
        per_kind = whole[: N_KINDS * CENSUS_ROW].reshape(N_KINDS, CENSUS_ROW)
        self.cell_count = int(per_kind[:, [LIVE, LIVE + QUIESCENT, NECROTIC_COUNT]].sum())

    def _exchange(self):
        """A split run's ranks trade the cells that crossed into a neighbour's slab and refresh their halos
        (gpusim.domain).  The census counted none of the cells that came, and each could divide in the next
        step (a halo copy too: a rank steps its halo as its own): the bound grows by their number."""
        self.domain.after_step(self)
        self._daughters_next += self.domain.received

    def _observe(self, ledger, dosed, infused, daughters):
        """The step's one read of the backend: ledger, census, the count of cells and the next step's bound.
        The record sums every process's (``dosed`` and ``infused`` are sums already); the bound is this
        process's."""
        s = self.state
        record = self.backend.to_host(self.xp.concatenate((ledger, self._census(), s.counters)))
        ledger, counts = record[:STEP_TALLY], record[STEP_TALLY : STEP_TALLY + CENSUS_SIZE]
        s.settle(*record[STEP_TALLY + CENSUS_SIZE :])
        births = int(ledger[BIRTHS : BIRTHS + N_KINDS].sum() + ledger[TABLE_FULL])  # placed, and found no room
        if births > daughters:
            raise RuntimeError(
                f"internal error at step {self.clock}: {births} daughters where at most {daughters} were possible; "
                "the bound in kernels.cell_cycle.could_divide_next_step is wrong"
            )
        whole = self.domain.sum(np.concatenate((ledger, counts)))
        self._learn_from_census(counts, whole[STEP_TALLY:])
        self.domain.settle_ids(s)
        self.timeseries.record(self.clock, self.dt, whole[STEP_TALLY:], whole[:STEP_TALLY], dosed, infused)

    def profile_phases(self):
        """Start recording the wall time of every phase of every step in ``self.phase_seconds``."""
        self.phase_seconds = {name: [] for name in PHASES}

    def _phase(self, name):
        if self.debug:
            self.state.enter_phase(name)
        if self.phase_seconds is None:
            return contextlib.nullcontext()
        return _PhaseTimer(self, name)

    def _engage(self, t):
        """Free effectors engage a recognised neighbour (kernels.synapse.choose_partner)."""
        return self.launch_rule(choose_partner, self.state.n, t)

    def launch_rule(self, rule, extent, t=None, **named):
        """Launch ``rule`` over ``extent`` with every argument bound by its parameter's name: ``named`` first,
        then ``step`` (``t``), the run's numbers and tables (:attr:`run_arguments`), and the state's columns and
        scratch.  No call restates a rule's signature, so reordering one cannot swap values.

        A tallying rule counts only the cells this process steps, not the GHOST copies of a neighbour's (a run
        split across processes): over cells from slot 0, or over new cells from ``first_slot``."""
        ghosts = (self.state["state"], named.get("first_slot", 0)) if tally_size(rule) else None
        return launch_named(self.launch, rule, extent, named, {"step": t}, self.run_arguments, self.state,
                            ghosts=ghosts)

    def _synapse(self, t):
        s = self.state
        self.launch_rule(synapse_exchange, s.n, t)
        ledger = self.launch_rule(synapse_apply, s.n, t)
        self.launch_rule(synapse_receive, s.n, t)
        return ledger

    def _express(self, t):
        """Pools relax to their set points, then each cell recovers (kernels.expression: one launch)."""
        return self.launch_rule(express_and_recover, self.state.n, t)

    def _move(self, t):
        s = self.state
        self.launch_rule(choose_step, s.n, t, chemokine=self.field_values(CHEMOKINE))
        self.launch_rule(resolve_claim, s.n, t, purpose=MOVE_PRIORITY)
        return self.launch_rule(commit_step, s.n, t)

    def field_values(self, name):
        """The values of field ``name`` on the backend (a stand-in of one zero when the run has no such field)."""
        index = self.fields.index(name)
        return self.fields.values[index] if index >= 0 else self._no_field

    def _divide(self, t, daughters, ledger):
        """Due cells claim sites; the winners are listed by prefix sum and their daughters placed after the last
        cell, all on the backend; ``daughters`` bounds their number (the table has room for it).  Births are
        tallied into ``ledger``."""
        s = self.state
        if self.fields.index(OXYGEN) >= 0:
            self.launch_rule(sense_oxygen, s.n, t, oxygen=self.field_values(OXYGEN))
        self.launch_rule(choose_division_site, s.n, t)
        self.launch_rule(resolve_claim, s.n, t, purpose=DIVISION_PRIORITY)
        n = s.n
        if n == 0:
            return
        rank = s.rank_marks(s.view("won"))
        parents = s.work["listing"][:daughters]
        ledger += self.launch_rule(list_by_rank, n, t, rank=rank, listing=parents)
        s.order_by_voxel(parents, rank[n - 1 :])  # ids in the parents' voxel order, not their slots'
        first_id = self.domain.first_daughter_id(s, parents, rank[n - 1 :])
        born = Count(daughters, rank[n - 1 :])
        rows = dict(zip(("int64_rows", "int32_rows", "int16_rows", "int8_rows", "uint8_rows"),
                        s.column_rows(TABLE_DTYPES)))
        self.launch_rule(copy_parent, born, t, first_slot=n, parents=parents, **rows)
        ledger += self.launch_rule(place_daughter, born, t, first_slot=n, first_id=first_id, parents=parents)
        s.add_daughters(rank, daughters)

    def _die(self, t):
        ledger = self.launch_rule(die, self.state.cells, t)
        self._release_and_compact()
        return ledger

    def census(self):
        """The census tally of the live table (host int64 vector, layout in kernels.census)."""
        return self.backend.to_host(self._census())

    def _census(self):
        return self.launch_rule(census, self.state.cells)

    def _deplete(self, ledger):
        """Scheduled depletions due at the current clock: every cell of the kind goes (tallied into ``ledger``)."""
        due = [kind for step, kind in self.depletions if step == self.clock]
        if not due:
            return
        for kind in due:
            ledger += self.launch_rule(deplete, self.state.cells, depleted_kind=kind)
        self._release_and_compact()

    def _release_and_compact(self):
        """Effectors whose partner died leave the synapse; dead slots are compacted away once the last census
        found them COMPACT_DEAD_SHARE of the slots in use."""
        s = self.state
        self.launch_rule(release_partner, s.cells)
        s.note_deaths()
        if self._dead_slots >= s.n * COMPACT_DEAD_SHARE:
            s.compact()

    def _dose(self):
        """Infusions due at the current clock; returns the cells added per kind and their molecules per species
        (host vectors).  An infusion is one of the few moments the host waits for the backend."""
        dosed = np.zeros(N_KINDS, dtype=np.int64)
        infused = np.zeros(N_SPECIES, dtype=np.int64)
        due = [dose for step, _n, dose in self.doses if step == self.clock]
        if not due:
            return dosed, infused
        self.state.synchronize()
        self.state.make_room(sum(dose.count for dose in due))  # before counting: it may compact the table
        before = self.state.n
        for dose in due:
            kind = KIND_NAMES.index(dose.kind)
            dosed[kind] += add_cells(self, dose.count, kind, dose.placement)
        new_pools = self.state["pools"][:, before : self.state.n]
        held = self.domain.sum(self.backend.to_host(new_pools.sum(axis=1, dtype=np.int64)))  # no int64 copy
        infused = self.state.every_row_of("pools", held)
        return dosed, infused

    def _check(self):
        previous_next = getattr(self, "_checked_next_id", 0)
        self._seen_ids = self.domain.check(self, self._seen_ids, previous_next)
        self._checked_next_id = self.state.next_id

    # --- running and looking ------------------------------------------------------
    @property
    def time_min(self):
        return self.clock * self.dt

    @property
    def done(self):
        return self.clock >= self.end_step

    def is_snapshot_step(self):
        return self.clock % self.snapshot_steps == 0 or self.clock == self.end_step

    def is_checkpoint_step(self):
        return self.clock % self.checkpoint_steps == 0 or self.clock == self.end_step

    def flow_cytometry(self):
        """Histograms of every pool per kind, ``[species, kind, bin]`` (host int64; bins in kernels.molecules)."""
        s = self.state
        counts = self.backend.to_host(self.launch_rule(flow_cytometry, s.n))
        return counts.reshape(N_SPECIES, N_KINDS, HIST_BINS)

    def field_volumes(self, channels=None):
        """The molecule fields ``[channel, z, y, x]`` (uint32; channels in kernels.occupancy.FIELD_NAMES, default
        all) on the host, painted a chunk of the lattice and one channel at a time: of the layers this process
        steps (the whole lattice in one process)."""
        channels = range(len(FIELD_NAMES)) if channels is None else channels
        volume = np.empty((len(channels),) + self._own_shape(), dtype=np.uint32)
        for row, channel in enumerate(channels):
            self._paint(volume[row], np.uint32, paint_field, "field", channel=int(channel))
        return volume

    def kind_volume(self):
        """The cell-kind map ``[z, y, x]`` (uint8: 0 empty, 1 + kind otherwise) on the host, of the layers this
        process steps."""
        volume = np.empty(self._own_shape(), dtype=np.uint8)
        self._paint(volume, np.uint8, paint_kind, "volume")
        return volume

    def _own_shape(self):
        first, stop = self.domain.own
        return (stop - first,) + tuple(self.state.shape[1:])

    def _paint(self, volume, dtype, rule, out, **named):
        """Fill the host ``volume`` with ``rule`` over the layers this process steps (its output parameter named
        ``out``), a chunk of voxels at a time through one device buffer."""
        flat = volume.reshape(-1)
        first = self.domain.own_voxels[0]
        buffer = self.xp.empty(chunk_size(flat.shape[0]), dtype=dtype)
        for start, extent in voxel_chunks(flat.shape[0]):
            self.launch_rule(rule, extent, first_voxel=first + start, **{out: buffer}, **named)
            flat[start : start + extent] = self.backend.to_host(buffer[:extent])

    def run(self, steps=None, store=None, progress=None, should_stop=None):
        """Advance ``steps`` steps (default: to the end of the run), writing snapshots and checkpoints to ``store``.

        ``should_stop()`` is asked between steps (Ctrl-C): the run then stops at
        a step boundary, and the store gets a checkpoint of that clock.  On
        return the table holds the cells only (dead slots compacted away), as
        after any read of it through ``state.host_columns()``.
        """
        target = self.end_step if steps is None else min(self.end_step, self.clock + steps)
        if store is not None:
            store.start(self)
        while self.clock < target:
            if should_stop is not None and should_stop():
                if store is not None and self.clock != store.checkpoint_clock:
                    store.checkpoint(self)
                break
            self.step()
            if store is not None and self.is_snapshot_step():
                store.snapshot(self)
            if store is not None and self.is_checkpoint_step():
                store.checkpoint(self)
            if progress is not None:
                progress(self)
        self.state.compact_dead()
        self.state.synchronize()
        if store is not None:
            store.finish(self)
        return self
