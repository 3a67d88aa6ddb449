"""One distribution, one namespace: kernels/ and viewers/ install as gpusim.kernels and gpusim.viewers."""

import os
import shutil
import subprocess
import sys
import zipfile

from helpers import ROOT


def test_wheel_holds_the_three_packages_the_presets_and_the_cuda_c_sources(tmp_path):
    # built from a copy without build/ (setuptools packs whatever an older tree left there), and without the
    # tests and benchmarks/ (the GPU-analysis tools, gputools, live there): the package needs neither
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", "build", "dist", "*.egg-info", ".whl", "__pycache__", "*.ome.zarr",
        "benchmarks", "tests"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("gpusim-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in (("gpusim", "gpusim"), ("kernels", "gpusim/kernels"), ("viewers", "gpusim/viewers")):
        assert {n for n in names if n.startswith(f"{package}/") and n.count("/") == package.count("/") + 1
                and n.endswith(".py")} == {f"{package}/{p.name}" for p in (ROOT / folder).glob("*.py")}, folder
    # the hand-written CUDA C kernels and the headers they include (kernels.cuda_c reads them at run time)
    cuda_c = {f"gpusim/kernels/{p.name}" for suffix in ("*.cu", "*.cuh") for p in (ROOT / "kernels").glob(suffix)}
    assert len(cuda_c) >= 5 and cuda_c <= names, sorted(cuda_c - names)
    for expected in ("gpusim/__init__.py", "gpusim/kernels/rng.py", "gpusim/kernels/codegen.py",
                     "gpusim/viewers/__init__.py", "gpusim/viewers/reader.py", "gpusim/viewers/napari.yaml",
                     "gpusim/presets/demo.toml"):
        assert expected in names, expected
    assert not any(n.startswith(("kernels/", "viewers/", "tests/", "benchmarks/", "gputools/")) for n in names)
    # installed by pip from the wheel alone (as benchmarks/gpu_check.sh installs it): what a user runs imports,
    # and every CUDA C kernel compiles
    installed = tmp_path / "installed"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                             str(installed), str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    check = ("import gpusim, gpusim.kernels, gpusim.viewers, gpusim.bench, gpusim.cli, gpusim.kernels.gpu_launcher; "
             "from gpusim.kernels import cuda_c; rules = cuda_c.rules_with_cuda_c(); "
             "print(cuda_c.FOLDER, sorted(rules)); [cuda_c.compile_program(f, (9, 0)) for f in rules.values()]")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(installed), "PYTHONSAFEPATH": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(str(installed)) and "census" in result.stdout, result.stdout


def test_installed_namespace_points_at_the_repository_folders():
    import gpusim.kernels
    import gpusim.viewers

    assert gpusim.kernels.__path__[0].endswith("kernels")
    assert gpusim.viewers.__path__[0].endswith("viewers")
