"""Helpers the tests share: a small scenario, running the command line or a script in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

from gpusim.config import validate

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the GPU-analysis tools, gputools, live there, outside the package


def small_config(**sections):
    """A small scenario with every phase busy: divisions, deaths, migration, a rim dose."""
    raw = {
        "run": {"duration": "2 h", "snapshot_every": "30 min", "sort_every": "20 min", "seed": 3},
        "lattice": {"shape": [16, 16, 16]},
        "tumour": {"initial_cells": 500, "cycle_time": "3 h", "apoptosis_rate": "0.2 /h"},
        "effectors": {"car_t": {"lifespan": "5 h"}},
        "dose": [{"time": "10 min", "count": 80, "placement": "rim"}],
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values) if isinstance(values, dict) else raw.__setitem__(name, values)
    return validate(raw), raw


def run_gpusim(*args, cwd=None, env=None):
    """``gpusim ARGS`` in a subprocess; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gpusim", *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600
    )


def run_script(script, *args, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / script), *map(str, args)], env=full_env, capture_output=True, text=True,
        timeout=900,
    )
