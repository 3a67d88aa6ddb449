"""The diffusing fields on the host side: grid, coefficients, vessels, and the update of every field.

The rules live in :mod:`gpusim.kernels.diffusion`; this module holds the
field values on the backend (``values[field, grid voxel]``, float64), turns
the config into per-field coefficients, places the vessels, and runs one
solver step (reaction terms from the cells, then for each field the residual,
three line sweeps and the update).
"""

import numpy as np

from gpusim.domain import WholeLattice
from gpusim.kernels.cells import KIND_NAMES, N_KINDS
from gpusim.kernels.diffusion import apply_update, diffusion_residual, line_solve, reaction_terms
from gpusim.kernels.decorators import launch_named
from gpusim.kernels.rng import VESSEL, draw, probability_threshold

FACE_BITS = {"z-": 0, "z+": 1, "y-": 2, "y+": 3, "x-": 4, "x+": 5}
OXYGEN, CHEMOKINE = "oxygen", "chemokine"


def face_mask(faces):
    """Bit mask of the supplied faces (bit 2 * axis + high)."""
    mask = 0
    for face in faces:
        mask |= 1 << FACE_BITS[face]
    return mask


def vessel_mask(section, grid_shape, seed, field_index):
    """uint8 mask over the grid: the listed vessel voxels, those of the mask file, and ``vessel_density`` of all
    voxels at random.

    The random ones are chosen by the run's counter-based hash of the voxel
    index, so the same seed places the same vessels on every backend.
    """
    size = int(np.prod(grid_shape))
    mask = np.zeros(size, dtype=np.uint8)
    if section.vessel_density > 0:
        with np.errstate(over="ignore"):  # the hash multiplies modulo 2**64 on purpose
            draws = draw(seed, 0, np.arange(size, dtype=np.uint64), VESSEL + field_index) >> np.uint64(32)
        mask[draws < np.uint64(probability_threshold(section.vessel_density))] = 1
    for z, y, x in section.vessels:
        mask[(z * grid_shape[1] + y) * grid_shape[2] + x] = 1
    if section.vessel_mask:
        mask[np.load(section.vessel_mask, allow_pickle=False).reshape(-1) != 0] = 1
    return mask


def pseudo_steps(section, spacing_um, grid_shape, ratio=4.0):
    """The cycle of ADI steps tau (minutes) that drives a quasi-steady field to its steady state.

    From diffusion across the whole grid (the smoothest error) down to the
    grid's finest time scale (D tau / h^2 = 1/4, the finest ripples), a factor
    ``ratio`` apart: each error mode meets a tau near its own time scale.
    """
    if section.diffusion <= 0:
        return [1.0]
    finest = 0.25 * spacing_um**2 / section.diffusion
    slowest = max((max(grid_shape) * spacing_um) ** 2 / section.diffusion, finest)
    count = int(np.ceil(np.log(slowest / finest) / np.log(ratio))) + 1
    return [slowest / ratio**k for k in range(count)]


def memory_needed(cfg):
    """Bytes the fields take: per grid voxel, each field's value, loss rate, source (float64) and vessel mask,
    plus the solver's two shared work arrays."""
    n = len(cfg.fields.active)
    if n == 0:
        return 0
    grid_voxels = cfg.voxels // cfg.fields.coarsening**3
    return grid_voxels * (n * (3 * 8 + 1) + 2 * 8)


class Fields:
    """The configured fields of a run and their solver."""

    def __init__(self, cfg, backend, domain=None):
        self.backend = backend
        self.domain = WholeLattice(cfg.lattice.shape) if domain is None else domain
        xp = backend.xp
        fields = cfg.fields
        self.names = [name for name, _section in fields.active]
        self.sections = [section for _name, section in fields.active]
        self.coarsening = int(fields.coarsening)
        self.lattice_shape = tuple(cfg.lattice.shape)
        self.grid_shape = tuple(edge // self.coarsening for edge in self.lattice_shape)
        self.every_steps = cfg.steps_of(fields.every) if self.names else 0
        self.grid_size = int(np.prod(self.grid_shape))
        self.spacing_um = cfg.lattice.voxel_size * self.coarsening
        self.dt_min = cfg.run.dt * self.every_steps
        n = len(self.names)
        cells = self.grid_size if n else 0  # a run without fields allocates nothing for them
        per_grid_voxel = float(self.coarsening**3)
        uptake = np.zeros((n, N_KINDS))
        secretion = np.zeros((n, N_KINDS))
        attacked = np.zeros((n, N_KINDS))
        decay = np.zeros(n)
        self.faces = []
        self.steps = []  # per field: the coefficient vectors of its solver steps, one per tau
        fixed = np.zeros((n, cells), dtype=np.uint8)
        initial = np.zeros((n, cells))
        for f, section in enumerate(self.sections):
            for kind, value in section.uptake.items():
                uptake[f, KIND_NAMES.index(kind)] = value / per_grid_voxel
            for kind, value in getattr(section, "secretion", {}).items():
                k = KIND_NAMES.index(kind)
                secretion[f, k] = value / per_grid_voxel
                attacked[f, k] = secretion[f, k] * getattr(section, "attacked_secretion", 1.0)
            decay[f] = section.decay
            taus = pseudo_steps(section, self.spacing_um, self.grid_shape) if section.quasi_steady else [self.dt_min]
            self.steps.append([
                backend.to_device(np.asarray([section.diffusion * tau / self.spacing_um**2, section.supply, tau]))
                for tau in taus
            ])
            self.faces.append(face_mask(section.supply_faces))
            fixed[f] = vessel_mask(section, self.grid_shape, int(cfg.run.seed), f)
            initial[f] = section.supply if section.quasi_steady else 0.0
        to = backend.to_device
        self.uptake, self.secretion, self.attacked_secretion, self.decay = to(uptake), to(secretion), to(attacked), to(decay)
        self.fixed = [to(np.ascontiguousarray(m)) for m in fixed]
        self.values = to(initial)
        self.rate = xp.zeros((n, cells))
        self.source = xp.zeros((n, cells))
        self.delta = xp.zeros(cells)
        self.scratch = xp.zeros(cells)

    def __bool__(self):
        return bool(self.names)

    def index(self, name):
        """Row of field ``name`` in :attr:`values`, or -1 when the run has no such field."""
        return self.names.index(name) if name in self.names else -1

    def update(self, state, live_flags):
        """One update of every field (``every_steps`` steps of the model), with the cells as they are now."""
        if not self.names:
            return
        nz, ny, nx = self.lattice_shape
        grid_plane = self.grid_shape[1] * self.grid_shape[2]
        first, stop = (min(layer // self.coarsening, self.grid_shape[0]) for layer in self.domain.own)
        if self.domain.splits:  # each rank the grid voxels over its own layers, then every rank the whole grid
            self.rate[...] = 0
            self.source[...] = 0
        self._launch(reaction_terms, (stop - first) * grid_plane, first_grid_voxel=first * grid_plane,
                     first_layer=self.domain.held[0], ny=ny, nx=nx, occ=state.occ, kind=state["kind"],
                     state=state["state"], damage=state["damage"], live_flags=live_flags)
        self.domain.combine_grid(self.backend, self.rate, self.source)
        for f in range(len(self.names)):
            for coefficients in self.steps[f]:
                self.adi_step(f, coefficients)

    def _launch(self, rule, extent, **named):
        """Launch ``rule`` with its arguments bound by name: ``named``, then the grid's extent and arrays."""
        nzf, nyf, nxf = self.grid_shape
        grid = {"nzf": nzf, "nyf": nyf, "nxf": nxf, "coarsening": self.coarsening, "uptake": self.uptake,
                "secretion": self.secretion, "attacked_secretion": self.attacked_secretion, "decay": self.decay,
                "rate": self.rate, "source": self.source, "delta": self.delta, "scratch": self.scratch}
        return launch_named(self.backend.launch, rule, extent, named, grid)

    def adi_step(self, f, coefficients):
        """One Douglas ADI step of field ``f`` (tau and the rest in ``coefficients``, see kernels.diffusion)."""
        nzf, nyf, nxf = self.grid_shape
        this = {"field": self.values[f], "rate": self.rate[f], "source": self.source[f], "fixed": self.fixed[f],
                "faces": self.faces[f], "coefficients": coefficients}
        self._launch(diffusion_residual, self.grid_size, **this)
        for axis, lines in ((2, nzf * nyf), (1, nzf * nxf), (0, nyf * nxf)):
            self._launch(line_solve, lines, axis=axis, **this)
        self._launch(apply_update, self.grid_size, **this)

    def host_values(self):
        """A host copy of the fields ``[field, z, y, x]`` (float64, grid resolution), safe to hand to the store's
        writer thread while the run goes on (on the CPU backend the live values are host arrays)."""
        return np.array(self.backend.to_host(self.values)).reshape((len(self.names),) + self.grid_shape)
