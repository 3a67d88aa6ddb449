"""gputools.memory_traffic: the sectors a launch touches, counted exactly, and a recorded run left as it was."""

import hashlib

import numpy as np
import pytest

from gputools import memory_traffic

from gpusim import bench
from gpusim.backend import select
from gpusim.config import validate
from gpusim.engine import Simulation
from gpusim.kernels.cpu_launcher import Count
from gpusim.kernels.decorators import fuse, rule
from gpusim.kernels.tally import tally_add

SECTOR_VALUES = memory_traffic.SECTOR_BYTES // 4  # int32 values in a sector


@rule(reach=0)
def copy_value(i, source, target):
    target[i] = source[i]


@rule(reach=0)
def add_right_neighbour(i, source, target):
    target[i] = source[i] + source[i + 1]


@rule(reach=0, tally=2)
def count_positive(i, source, scale, tally):
    if source[i] * scale[0] > 0:
        tally_add(tally, 0, 1)


@rule(reach=0, tally=2)
def count_large(i, source, tally):
    if source[i] > 50:
        tally_add(tally, 1, 1)


copy_value_and_add_right_neighbour = fuse(copy_value, add_right_neighbour)


def sector_aligned(values):
    """An int32 vector of ``values`` whose first element starts a sector."""
    room = np.zeros(values + 2 * SECTOR_VALUES, dtype=np.int32)
    skip = (-room.__array_interface__["data"][0] % memory_traffic.SECTOR_BYTES) // 4
    return room[skip : skip + values]


def test_a_stream_reads_and_writes_each_sector_once():
    source, target = sector_aligned(4096), sector_aligned(4096)
    source[:] = np.arange(4096)
    sectors = memory_traffic.launch_sectors(copy_value, 64, (source, target))
    assert len(sectors.read) == len(sectors.written) == 64 // SECTOR_VALUES
    assert sectors.footprint == 2 * 64 // SECTOR_VALUES
    assert sectors.warp_sectors == sectors.footprint  # two warps, each its own four sectors a vector
    assert not target.any(), "the launch ran on copies: the arrays given are as they were"


def test_the_footprint_is_split_among_the_arrays_it_lies_in():
    source, target = sector_aligned(4096), sector_aligned(4096)
    sectors = memory_traffic.launch_sectors(add_right_neighbour, 63, (source, target))
    # source[0..63] spans 8 sectors, target[0..62] 8: every sector counted once, for the parameter it lies in
    assert sectors.footprint_by_array() == {"source": 8, "target": 8}
    rows = sector_aligned(2 * 4096).reshape(2, 4096)  # a [row, slot] table: its rows lie in it
    both = memory_traffic.launch_sectors(copy_value, 64, (rows[0], rows[1]))
    assert both.footprint_by_array() == {"source": 8, "target": 8}


def test_a_neighbour_read_shares_a_sector_between_warps_once_in_the_footprint():
    source, target = sector_aligned(4096), sector_aligned(4096)
    sectors = memory_traffic.launch_sectors(add_right_neighbour, 63, (source, target))
    # warp 0 reads source[0..32] (5 sectors), warp 1 source[32..63] (4); 8 distinct
    assert len(sectors.read) == 8 and len(sectors.written) == 8
    assert sectors.warp_sectors == (5 + 4) + (4 + 4)


def test_small_arrays_and_the_tally_are_not_counted_and_a_count_bounds_the_extent():
    source = sector_aligned(4096)
    source[:] = np.arange(4096)
    scale = np.ones(1, dtype=np.int32)  # a parameter: in the caches
    live = np.array([40])
    sectors = memory_traffic.launch_sectors(count_positive, Count(4096, live), (source, scale))
    assert len(sectors.read) == 40 // SECTOR_VALUES and not sectors.written  # the tally is in shared memory


def test_tally_adds_are_counted_as_written_and_as_each_warp_would_sum_them():
    """39 of the first 40 values are positive: 39 adds to one counter; a warp summing its lanes first adds once
    per warp (2). Over 64 values, those above 50 add to a second counter: in warp 1 only."""
    source = sector_aligned(4096)
    source[:] = np.arange(4096)
    sectors = memory_traffic.launch_sectors(count_positive, Count(4096, np.array([40])), (source, np.ones(1, np.int32)))
    assert (sectors.tally_adds, sectors.warp_tally_adds) == (39, 2)
    both = memory_traffic.launch_sectors(fuse(count_positive, count_large), 64, (source, np.ones(1, np.int32)))
    assert (both.tally_adds, both.warp_tally_adds) == (63 + 13, 2 + 1)
    source[:64] = 63 - np.arange(64)  # now the large values are in warp 0 and warp 1 adds nothing
    first_warp = memory_traffic.launch_sectors(count_large, 64, (source,))
    assert (first_warp.tally_adds, first_warp.warp_tally_adds) == (13, 1)


def test_a_tallying_launch_of_a_split_run_reads_each_index_ghost_flag():
    """With the launchers' ``ghosts`` (a split run's), a tallying rule that takes no ``state`` reads the flags
    it is given, a byte an index, before it runs: 64 indices, 64 bytes, apart from the rule's own reads."""
    source = sector_aligned(4096)
    source[:] = np.arange(4096)
    flags = sector_aligned(1024).view(np.uint8)  # 4096 bytes, sector-aligned
    plain = memory_traffic.launch_sectors(count_positive, 64, (source, np.ones(1, np.int32)))
    gated = memory_traffic.launch_sectors(count_positive, 64, (source, np.ones(1, np.int32)), ghosts=(flags, 0))
    assert gated.footprint_by_array() == {**plain.footprint_by_array(), "ghost_flags": 64 // memory_traffic.SECTOR_BYTES}


def test_a_fused_launch_counts_its_rules_together():
    source, target = sector_aligned(4096), sector_aligned(4096)
    sectors = memory_traffic.launch_sectors(copy_value_and_add_right_neighbour, 63, (source, target))
    assert len(sectors.read) == 8 and len(sectors.written) == 8
    both = memory_traffic.launch_sectors(fuse(count_positive, count_large), 64, (source, np.ones(1, np.int32)))
    assert len(both.read) == 8 and not both.written


def _digest(sim):
    h = hashlib.sha256()
    for name in ("agent_id", "voxel", "kind", "state", "pools", "stimulation", "partner"):
        h.update(np.ascontiguousarray(sim.state[name][..., : sim.state.n]).tobytes())
    h.update(sim.state.occ.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def recorded():
    cfg = validate(bench.scenario(3000, 6))
    plain, traced = Simulation(cfg, backend=select("cpu")), Simulation(cfg, backend=select("cpu"))
    for sim in (plain, traced):
        for _ in range(3):
            sim.step()
    agents = traced.state.n
    totals = memory_traffic.step_traffic(traced, steps=2, echo=lambda *_: None)
    for _ in range(2):
        plain.step()
    return plain, traced, agents, totals


def test_a_recorded_run_goes_on_exactly_as_an_unrecorded_one(recorded):
    plain, traced, _agents, _totals = recorded
    assert _digest(traced) == _digest(plain)
    assert traced.launch is traced.backend.launch  # the recording is taken off


def test_every_launch_of_the_step_is_recorded_with_the_columns_it_must_read(recorded):
    plain, _traced, agents, totals = recorded
    assert {"choose_partner", "synapse_exchange", "express_and_recover", "choose_step", "resolve_claim",
            "choose_division_site", "die", "census"} <= set(totals)
    assert totals["resolve_claim"][0] == 4  # twice a step: the move and the divide phase
    rows, step = memory_traffic.traffic_table(totals, agents, steps=2)
    by_launch = {row["launch"]: row for row in rows}
    # every rule reads at least the kind or the flags of every slot: a byte each
    assert all(by_launch[name]["footprint_bytes"] >= 0.99 for name in ("choose_partner", "census", "die"))
    # expression reads and writes the pools of every live cell (int32 rows): more than one row's 4 bytes
    assert by_launch["express_and_recover"]["footprint_bytes"] > 4
    assert all(row["warp_bytes"] >= row["footprint_bytes"] for row in rows)
    # the same footprint by array: nothing lost or counted twice, and the pools are what expression moves most
    by_array = {row["array"]: row for row in memory_traffic.array_table(totals, agents, steps=2)}
    assert sum(row["bytes"] for row in by_array.values()) == pytest.approx(step["footprint_bytes"], rel=1e-3)
    assert by_array["pools"]["launches"][0][0] == "express_and_recover"
    assert {"kind", "state", "occ", "voxel"} <= set(by_array)
    # the census counts every cell (its kind and flags at least); a warp summing first adds far less
    assert by_launch["census"]["tally_adds"] >= 2 and by_launch["census"]["warp_tally_adds"] < 1
    assert all(0 <= row["warp_tally_adds"] <= row["tally_adds"] for row in rows)
    assert by_launch["choose_step"]["tally_adds"] == 0  # a rule that tallies nothing
    assert step["floor_ms"] == pytest.approx(sum(row["floor_ms"] for row in rows))
    table = memory_traffic.markdown(rows, step, agents)
    assert "| **the step** | 16 |" in table and "agent-steps/s at 1e+08 agents" in table
    assert f"| {step['tally_adds']:.3f} | {step['warp_tally_adds']:.3f} |" in table
