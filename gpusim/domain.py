"""The part of the lattice a process steps, and what the engine asks of the others.

A run in one process steps the whole lattice (:class:`WholeLattice`): every
question below has the answer the process already holds.  A run split across
MPI ranks (:class:`gpusim.parallel.SlabDomain`) steps a slab of layers along z
and holds the cells of a halo around it; there the same questions are asked
of every rank together, and the answers make each rank's cells step exactly as
they would in one process:

* counts and sums (census, ledger, histograms of placement keys) are exact
  integer sums over the ranks (:meth:`sum`);
* new agent ids are numbered in voxel order across the whole lattice: a rank's
  new cells take the ids after those of the ranks below it
  (:meth:`new_ids`, :meth:`first_daughter_id`);
* the fields' reaction terms of each grid voxel come from the rank that steps
  its cells, and every rank solves the whole grid (:meth:`combine_grid`);
* after a step the ranks trade the cells that crossed into a neighbour's slab
  and refresh their halos (:meth:`after_step`).
"""


class WholeLattice:
    """The whole lattice, stepped by this one process."""

    rank = 0
    ranks = 1
    splits = False

    def __init__(self, shape):
        self.shape = tuple(int(edge) for edge in shape)
        self.held = (0, self.shape[0])  # the layers (z) this process holds, halo included
        self.own = (0, self.shape[0])  # the layers whose cells it steps and counts
        self.received = 0  # cells the last exchange brought (none here)
        self.imbalance = None  # a split run's: the most cells a rank steps over the mean, after the last exchange

    @property
    def held_shape(self):
        return (self.held[1] - self.held[0],) + self.shape[1:]

    @property
    def plane(self):
        """Voxels in one layer."""
        return self.shape[1] * self.shape[2]

    @property
    def own_voxels(self):
        """The flat voxels of the held lattice whose cells this process steps: ``(first, stop)``."""
        first = (self.own[0] - self.held[0]) * self.plane
        return first, first + (self.own[1] - self.own[0]) * self.plane

    def sum(self, values):
        """``values`` (a host integer array or number) summed over the processes."""
        return values

    def new_ids(self, state, count):
        """The first id of ``count`` cells this process is about to add, the run's id counter moved past the
        new cells of every process (all call this together); the state's counter follows at :meth:`settle_ids`
        (in one process it counts the cells itself)."""
        return state.next_id

    def settle_ids(self, state):
        """The state's id counter set to the run's, after cells were added."""

    def first_daughter_id(self, state, parents, count):
        """The id of the first daughter of this step in this process's listing ``parents`` (slots in voxel
        order, ``count`` of them on the backend); as :meth:`new_ids`, the run's counter moved past them."""
        return state.next_id

    def ties_to_take(self, wanted, count_ties):
        """How many of the voxels whose placement key equals the threshold this process takes, of ``wanted``
        over the whole lattice; ``count_ties()`` counts its own (only called where the lattice is split)."""
        return wanted

    def combine_grid(self, backend, *arrays):
        """Each process computed the rows of the fields' grid over its own layers, zeros elsewhere: make every
        process hold the whole (in place)."""

    def after_step(self, sim):
        """The cells held for the next step (nothing to trade in one process)."""

    def check(self, sim, previous_ids, previous_next_id):
        """The lattice invariants (gpusim.state.State.check_invariants); returns what the next check needs."""
        return sim.state.check_invariants(previous_ids, previous_next_id)
