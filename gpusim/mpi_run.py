"""A run under ``mpiexec``: every rank steps its slab (gpusim.parallel), and the run's one store is fed by all.

Rank 0 holds the store (gpusim.store.RunStore) and writes it; at a snapshot or checkpoint every rank hands it
what it holds: the label and field images of its own layers, its own cells, its share of the flow
cytometer's counts.  Put together in rank order they are the whole lattice's in voxel order, so the store
holds what a single process writes, and a checkpoint holds the whole state: a run checkpointed on K ranks
resumes on any number, one included.

Decisions that every rank must take alike (stop at this step; the store failed) are agreed on collectively;
a rank that fails at run time aborts the whole job (``MPI_Abort``), and the store resumes from its last
checkpoint.
"""

import numpy as np

from gpusim.parallel import global_columns, imbalance, local_columns, plan_slabs, route

REBALANCE_GAIN = 0.05  # the least share of the imbalance new slab boundaries must remove to be taken


class MPIMissing(RuntimeError):
    """The launcher started several processes but mpi4py cannot be imported."""


def world(ranks):
    """MPI's world communicator for a run the launcher started on ``ranks`` processes; MPIMissing (one line)
    without mpi4py."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MPIMissing(f"the MPI launcher started {ranks} processes, but mpi4py cannot be imported ({exc}); "
                         "install it with pip install 'gpusim[mpi]'") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != ranks:
        raise MPIMissing(f"the launcher's variables say {ranks} processes, MPI's world has {comm.Get_size()}: "
                         "mpi4py is built for another MPI than the one that started this run")
    return comm


def agreed(comm, value):
    """``value`` (anything picklable) as rank 0 has it, on every rank."""
    return comm.bcast(value, root=0)


def any_rank(comm, flag):
    """Whether ``flag`` holds on any rank (every rank calls this together)."""
    return bool(comm.allreduce(bool(flag), op=_mpi().LOR))


def abort(comm, status):
    """End every rank of the job with exit status ``status`` (a rank that failed: the others would wait for it
    for ever)."""
    comm.Abort(status)


def _mpi():
    from mpi4py import MPI

    return MPI


class _Whole:
    """What the store reads of a run (gpusim.store.RunStore), put together from every rank on rank 0."""

    def __init__(self, sim, **parts):
        self.clock, self.done, self.timeseries, self.fields = sim.clock, sim.done, sim.timeseries, sim.fields
        self.domain = sim.domain
        self._parts = parts
        self.state = self

    def kind_volume(self):
        return self._parts["volume"]

    def field_volumes(self, channels=None):
        return self._parts["fields"]

    def snapshot(self):  # the store asks sim.state.snapshot() for the agent table
        return self._parts["table"]

    def flow_cytometry(self):
        return self._parts["cytometer"]

    def checkpoint(self):
        return self._parts["checkpoint"]


class SplitStore:
    """A split run's store on every rank: rank 0's RunStore (``inner``; None on the other ranks), written from
    what every rank holds (``domain``, its gpusim.parallel.SlabDomain).  The run loop calls it as it calls a
    RunStore, on every rank at once."""

    def __init__(self, comm, inner, domain):
        self.comm, self.inner, self.domain = comm, inner, domain
        self.root = comm.Get_rank() == 0
        wants = (bool(inner.image), bool(inner.agent_arrays), list(inner.field_channels)) if self.root else None
        self._images, self._tables, self._channels = agreed(comm, wants)
        self.checkpoint_clock = None

    # what the command line asks of a store
    @property
    def building(self):
        return agreed(self.comm, self.inner.building if self.root else None)

    @property
    def meta(self):
        return self.inner.meta if self.root else {}

    def abandon(self):
        if self.root:
            self.inner.abandon()

    def close_after_failure(self):
        if self.root:
            self.inner.close_after_failure()

    # what the run loop asks of a store
    def start(self, sim):
        if agreed(self.comm, self.inner.first_snapshot_due(sim.clock) if self.root else None):
            self.snapshot(sim)
            self.checkpoint(sim)
        if self.root:
            self.inner.take_path()

    def snapshot(self, sim):
        due = agreed(self.comm, sim.clock in self.inner.snapshot_clocks if self.root else None)
        parts = {}
        if due:
            parts["volume"] = self._layers(sim.kind_volume(), axis=0)
            parts["fields"] = self._layers(sim.field_volumes(self._channels), axis=1) if self._images else None
            parts["table"] = self._cells(sim.state.snapshot()) if self._tables else None
            parts["cytometer"] = self.domain.sum(sim.flow_cytometry())
        if self.root:
            self.inner.snapshot(_Whole(sim, **parts))

    def checkpoint(self, sim):
        state = sim.checkpoint()
        columns = self._cells(state["columns"])
        whole = None  # rank 0's
        if self.root:
            if "field_values" in state["columns"]:  # the same on every rank
                columns["field_values"] = state["columns"]["field_values"]
            whole = {"clock": state["clock"], "n": int(columns["agent_id"].shape[-1]),
                     "next_id": self.domain.next_id, "columns": columns}
            self.inner.checkpoint(_Whole(sim, checkpoint=whole))
        self.checkpoint_clock = state["clock"]
        self._rebalance(sim, whole)

    def _rebalance(self, sim, whole):
        """At a checkpoint, with the whole table on rank 0: move the slab boundaries to where the cells divide
        evenly if that lowers the imbalance by REBALANCE_GAIN or more (a tumour at the centre leaves the outer
        slabs nearly empty), every rank then taking its new slab from the checkpoint."""
        domain = self.domain
        slabs = None
        if self.root and not sim.done:
            depth, plane = domain.shape[0], domain.plane
            layer_cells = np.bincount(whole["columns"]["voxel"] // plane, minlength=depth)
            balanced = plan_slabs(depth, domain.ranks, layer_cells=layer_cells, align=sim.fields.coarsening)
            now, then = imbalance(layer_cells, domain.slabs), imbalance(layer_cells, balanced)
            if then <= now * (1 - REBALANCE_GAIN):
                slabs = balanced
        slabs = agreed(self.comm, slabs)
        if slabs is None:
            return
        domain.take_slabs(slabs)
        sim.take_layers(scatter_checkpoint(self.comm, domain, whole))

    def finish(self, sim):
        if self.root:
            self.inner.finish(_Whole(sim))

    def _layers(self, volume, axis):
        """The whole lattice's image on rank 0 from each rank's own layers (along ``axis``); None elsewhere."""
        parts = self.comm.gather(volume, root=0)
        return np.concatenate(parts, axis=axis) if self.root else None

    def _cells(self, table):
        """The whole run's cells on rank 0 in voxel order, from each rank's table (its own cells, not its halo's);
        None elsewhere."""
        mine = {name: values for name, values in table.items() if name not in ("occ", "next_id", "field_values")}
        parts = self.comm.gather(mine, root=0)
        return global_columns(parts, self.domain.slabs, self.domain.shape) if self.root else None


def scatter_checkpoint(comm, domain, checkpoint):
    """Each rank's part of a whole checkpoint that rank 0 read (None on the other ranks): its table (own cells,
    then its halo's, as gpusim.parallel.local_columns makes it) with the run's clock and next id, as
    gpusim.engine.Simulation.restore takes it; ``domain.received`` is set to its halo's cells."""
    parts = None
    if comm.Get_rank() == 0:
        columns = checkpoint["columns"]
        cells = {name: values for name, values in columns.items() if name != "field_values"}
        parts = []
        for slab, (owned, halo) in zip(domain.slabs, route(cells["voxel"], domain.shape, domain.slabs)):
            parts.append((local_columns(cells, owned, halo, slab, domain.shape), int(halo.size)))
    table, halo = comm.scatter(parts, root=0)
    header = agreed(comm, {key: checkpoint[key] for key in ("clock", "next_id")} if checkpoint else None)
    fields = agreed(comm, checkpoint["columns"].get("field_values") if checkpoint else None)
    if fields is not None:
        table["field_values"] = fields
    domain.next_id, domain.received = int(header["next_id"]), halo
    return {"clock": header["clock"], "n": int(table["agent_id"].shape[-1]), "next_id": header["next_id"],
            "columns": table}

