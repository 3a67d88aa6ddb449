"""The diffusion-reaction solver against exact solutions, and bad field configs refused.

The solver alone (no cells): 1D steady state with linear uptake (a cosh
profile), a point source spreading as the Gaussian, and the total of a field
under pure diffusion conserved to round-off.
"""

import numpy as np
import pytest

from gpusim.backend import select
from gpusim.config import ConfigError, validate
from gpusim.fields import Fields
from gpusim.kernels.cells import NECROTIC
from gpusim.state import State

from helpers import run_gpusim


def solver(shape, dt="1 min", **field):
    """Fields of an empty lattice with one field, 'chemokine' (a plain diffusing species), on a 1:1 grid."""
    section = {"secretion": {}, "uptake": {}, **field}
    cfg = validate({"run": {"dt": dt}, "lattice": {"shape": list(shape)}, "tumour": {"initial_cells": 0},
                    "fields": {"coarsening": 1, "every": dt, "chemokine": section}})
    backend = select("cpu")
    return Fields(cfg, backend), State(backend, cfg.lattice.shape, capacity=16)


@pytest.mark.parametrize("quasi_steady, updates", [(True, 3), (False, 150)])
def test_steady_state_with_linear_uptake_is_the_cosh_profile(quasi_steady, updates):
    """u'' = (lambda / D) u on [0, L], u = supply at x = 0, no flux at x = L: u = cosh((L - x) / l) / cosh(L / l).

    Reached by a quasi-steady field within a few updates, and by a field stepping in time at its end.
    """
    fields, state = solver((4, 4, 64), diffusion="1e5 um^2/min", decay="10 /min", supply="38 nM", supply_faces=["x-"],
                           quasi_steady=quasi_steady)
    for _ in range(updates):
        fields.update(state, NECROTIC)
    u = fields.host_values()[0]
    assert np.ptp(u, axis=(0, 1)).max() < 1e-9  # one-dimensional: equal across y and z
    h, length = 10.0, 640.0
    x = (np.arange(64) + 0.5) * h  # voxel centres; the supplied face's ghost voxel centre is at x = -h/2
    decay_length = np.sqrt(1e5 / 10.0)
    exact = 38.0 * np.cosh((length - x) / decay_length) / np.cosh((length + h / 2) / decay_length)
    assert np.max(np.abs(u[0, 0] - exact) / exact) < 0.01


def test_point_source_spreads_as_the_gaussian():
    n, D, t = 32, 100.0, 10.0
    fields, state = solver((n, n, n), dt="0.1 min", diffusion=f"{D} um^2/min", decay="0 /min")
    centre = n // 2
    fields.values[0, (centre * n + centre) * n + centre] = 1000.0  # nM in one voxel of 1000 um^3
    for _ in range(100):
        fields.update(state, NECROTIC)
    u = fields.host_values()[0]
    axis = (np.arange(n) - centre) * 10.0
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    gaussian = 1000.0 * 1000.0 / (4 * np.pi * D * t) ** 1.5 * np.exp(-(x**2 + y**2 + z**2) / (4 * D * t))
    assert abs(u.sum() - 1000.0) < 1e-9  # nothing leaves through no-flux faces
    for coordinate in (x, y, z):
        variance = (u * coordinate**2).sum() / u.sum()
        assert variance == pytest.approx(2 * D * t, rel=0.01)  # <x^2> = 2 D t along each axis
    assert np.abs(u - gaussian).max() < 0.05 * gaussian.max()


def test_pure_diffusion_conserves_the_total_to_round_off():
    fields, state = solver((12, 10, 14), diffusion="6000 um^2/min", decay="0 /min")
    rng = np.random.default_rng(4)
    fields.values[0] = fields.backend.to_device(rng.random(12 * 10 * 14) * 50.0)
    before = float(fields.values[0].sum())
    for _ in range(25):
        fields.update(state, NECROTIC)
    after = fields.host_values()[0]
    assert abs(after.sum() - before) <= 1e-12 * before


def test_quasi_steady_field_smooths_ripples_of_every_wavelength():
    """White noise on a uniform steady state (supply on every face, no loss): every update removes more than
    half of it, wavelengths from the grid spacing to the domain alike."""
    fields, state = solver((12, 10, 14), diffusion="1e5 um^2/min", decay="0 /min", supply="20 nM",
                           supply_faces=["z-", "z+", "y-", "y+", "x-", "x+"], quasi_steady=True)
    rng = np.random.default_rng(5)
    fields.values[0] = fields.backend.to_device(20.0 + rng.standard_normal(12 * 10 * 14) * 5.0)
    errors = [np.abs(fields.host_values()[0] - 20.0).max()]
    for _ in range(10):
        fields.update(state, NECROTIC)
        errors.append(np.abs(fields.host_values()[0] - 20.0).max())
    assert all(later < 0.5 * earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-3 * errors[0]


def test_supplied_faces_and_vessels_hold_the_supply_level():
    fields, state = solver((8, 8, 8), diffusion="1000 um^2/min", decay="1 /min", supply="5 nM", supply_faces=["z+"],
                           vessels=[[2, 3, 4]])
    for _ in range(40):
        fields.update(state, NECROTIC)
    u = fields.host_values()[0]
    assert u[2, 3, 4] == 5.0
    assert u[7].mean() > u[0].mean()  # fed from the z+ face
    assert 0 < u.min() and u.max() <= 5.0


def test_a_vessel_mask_file_places_vessels(tmp_path):
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[4, 2:6, 3] = True
    np.save(tmp_path / "vessels.npy", mask)
    fields, state = solver((8, 8, 8), diffusion="1000 um^2/min", supply="7 nM", vessel_mask=str(tmp_path / "vessels.npy"))
    fields.update(state, NECROTIC)
    u = fields.host_values()[0]
    assert np.all(u[mask] == 7.0) and np.all(u[~mask] < 7.0)
    np.save(tmp_path / "wrong.npy", np.zeros((4, 8, 8)))
    with pytest.raises(ConfigError) as caught:
        validate({"lattice": {"shape": [16, 16, 16]}, "tumour": {"initial_cells": 10},
                  "fields": {"oxygen": {"vessel_mask": str(tmp_path / "wrong.npy")}}})
    assert caught.value.problems[0].startswith("fields.oxygen.vessel_mask:")
    assert "has shape (4, 8, 8), the field grid is (8, 8, 8)" in caught.value.problems[0]


def test_random_vessels_follow_the_seed():
    cfg = validate({"lattice": {"shape": [16, 16, 16]}, "tumour": {"initial_cells": 0},
                    "fields": {"oxygen": {"vessel_density": 0.05}}})
    backend = select("cpu")
    a, b = Fields(cfg, backend), Fields(cfg, backend)
    mask = backend.to_host(a.fixed[0])
    assert np.array_equal(mask, backend.to_host(b.fixed[0]))
    assert 0.02 < mask.mean() < 0.09  # about 5% of the 8^3 grid voxels


@pytest.mark.parametrize("fields, message", [
    ({"oxygen": {"diffusion": "-1e5 um^2/min"}}, "fields.oxygen.diffusion: must not be negative"),
    ({"oxygen": {"diffusion": "1e5 um/min"}}, "fields.oxygen.diffusion: unit 'um/min' is not a diffusivity"),
    ({"coarsening": 3, "oxygen": {}}, "fields.coarsening: 3 does not divide the lattice (16 x 16 x 16 voxels)"),
    ({"chemokine": {"vessels": [[0, 8, 2]]}}, "fields.chemokine.vessels.0: [0, 8, 2] is outside the field grid"),
    ({"oxygen": {"supply_faces": ["top"]}}, "fields.oxygen.supply_faces.0: input should be"),
    ({"oxygen": {"decay": "-0.1 /min"}}, "fields.oxygen.decay: must not be negative"),
])
def test_bad_field_configs_are_refused_before_the_run(fields, message, tmp_path):
    raw = {"lattice": {"shape": [16, 16, 16]}, "tumour": {"initial_cells": 100}, "fields": fields}
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems
    config = tmp_path / "bad.toml"
    name = "oxygen" if "oxygen" in fields else "chemokine"
    section = fields[name]
    lines = ["[lattice]", "shape = [16, 16, 16]", "[fields]"]
    if "coarsening" in fields:
        lines.append(f"coarsening = {fields['coarsening']}")
    lines.append(f"[fields.{name}]")
    for key, value in section.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    config.write_text("\n".join(lines) + "\n")
    result = run_gpusim("run", config, "-o", tmp_path / "out.ome.zarr")
    assert result.returncode == 2 and message.split(":")[0] in result.stderr
    assert not (tmp_path / "out.ome.zarr").exists()


# --- coupling to the cells ---------------------------------------------------------------------


def spheroid(edge, cells, seed=2):
    from gpusim.engine import Simulation

    raw = {"run": {"duration": "2 h", "snapshot_every": "1 h", "seed": seed}, "lattice": {"shape": [edge] * 3},
           "tumour": {"initial_cells": cells, "necrosis_time": "1 h"}, "fields": {"oxygen": {}}}
    return Simulation(validate(raw)).run()


def distances_from_centre(sim, mask):
    s = sim.state
    voxel = sim.backend.to_host(s.view("voxel"))[mask]
    n = sim.cfg.lattice.shape[0]
    centre = n / 2 - 0.5
    z, y, x = voxel // (n * n), (voxel // n) % n, voxel % n
    return np.sqrt((z - centre) ** 2 + (y - centre) ** 2 + (x - centre) ** 2) * sim.cfg.lattice.voxel_size


def test_a_necrotic_core_emerges_in_a_large_spheroid_and_not_in_a_small_one():
    """Oxygen from the domain's faces reaches ~50 um into tissue: a 250 um spheroid starves at its centre
    (a necrotic core inside a hypoxic shell), an 80 um one does not (defaults, PhysiCell's thresholds)."""
    from gpusim.kernels.cells import HYPOXIC, NECROTIC as DEBRIS

    small = spheroid(24, 2100)
    assert small.timeseries.last()["tumour_necrotic"] == 0 and small.timeseries.last()["tumour_hypoxic"] == 0
    assert small.fields.host_values()[0].min() > 10.0  # mmHg
    large = spheroid(60, 65000)
    last = large.timeseries.last()
    assert last["tumour_necrotic"] > 0.05 * last["cells_tumour"]
    assert sum(large.timeseries.rows["deaths_necrosis"]) == last["tumour_necrotic"]  # not yet cleared (2 d)
    state = large.backend.to_host(large.state.view("state"))
    kind = large.backend.to_host(large.state.view("kind"))
    core = distances_from_centre(large, (state & DEBRIS) != 0)
    shell = distances_from_centre(large, (state & HYPOXIC) != 0)
    rim = distances_from_centre(large, (kind == 0) & ((state & (DEBRIS | HYPOXIC)) == 0))
    assert np.median(core) < np.median(shell) < np.median(rim)  # necrotic core, hypoxic shell, cycling rim
    assert core.max() < 250.0 - 40.0  # the outer 40 um breathe


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chemotaxis_brings_more_effectors_into_the_tumour(seed):
    """CAR-T cells scattered through the tissue find the chemokine-secreting tumour more often when they
    follow the gradient (300 cells, 3 h, a 3,000-cell tumour)."""
    from gpusim.engine import Simulation
    from gpusim.kernels.cells import TUMOUR

    counts = []
    for chemotaxis in (0.0, 0.9):
        raw = {"run": {"duration": "3 h", "snapshot_every": "1 h", "seed": seed}, "lattice": {"shape": [40] * 3},
               "tumour": {"initial_cells": 3000}, "effectors": {"car_t": {"chemotaxis": chemotaxis}},
               "dose": [{"time": "0 min", "count": 300, "placement": "uniform"}], "fields": {"chemokine": {}}}
        sim = Simulation(validate(raw)).run()
        kind = sim.backend.to_host(sim.state.view("kind"))
        counts.append(int((distances_from_centre(sim, kind != TUMOUR) < 120.0).sum()))
    without, with_chemotaxis = counts
    assert with_chemotaxis > 1.2 * without, counts


def test_the_store_holds_oxygen_and_chemokine_and_the_reader_shows_them(tmp_path):
    import gpusim
    from gpusim.engine import Simulation
    from gpusim.store import RunStore

    raw = {"run": {"duration": "1 h", "snapshot_every": "30 min", "seed": 4}, "lattice": {"shape": [32, 32, 32]},
           "tumour": {"initial_cells": 4000}, "dose": [{"time": "0 min", "count": 200}],
           "fields": {"oxygen": {}, "chemokine": {}}}
    cfg = validate(raw)
    sim = Simulation(cfg)
    path = tmp_path / "run.ome.zarr"
    sim.run(store=RunStore(path, cfg, raw, sim.backend.label))
    run = gpusim.open_run(path)
    assert run.diffusing == ["oxygen", "chemokine"]
    info = run_gpusim("info", path)
    assert info.returncode == 0 and "oxygen (mmHg), chemokine (nM)" in info.stdout
    from gpusim.report import write_report

    figure = write_report(path)  # with a row of field sections and the starving tumour cells
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 50_000
    oxygen = run.field("oxygen")
    assert oxygen.shape == (3, 16, 16, 16)  # 3 snapshots on the 2x coarser grid
    assert np.array_equal(oxygen[-1], sim.fields.host_values()[0].astype(np.float32))
    assert oxygen[-1].min() < 30.0 < oxygen[-1].max() <= 38.0  # mmHg, drawn down inside the tumour
    assert run.field("chemokine")[-1].max() > 0
    ome = run.root["fields"].attrs["ome"]["multiscales"][0]
    assert ome["datasets"][0]["coordinateTransformations"][0]["scale"] == [30.0, 1.0, 20.0, 20.0, 20.0]
    from ome_zarr_models.v05.image import Image

    Image.from_zarr(run.root["fields"])  # a valid NGFF 0.5 image of its own
    pytest.importorskip("napari")
    from gpusim.viewers.reader import read_store

    layers = {kwargs["name"]: (data, kwargs) for data, kwargs, _kind in read_store(path)}
    data, kwargs = layers["oxygen (mmHg)"]
    assert kwargs["scale"] == (30.0, 20.0, 20.0, 20.0) and kwargs["translate"] == (0.0, 5.0, 5.0, 5.0)
    assert "chemokine (nM)" in layers
