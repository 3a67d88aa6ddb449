"""One distribution, one namespace: kernels/ and viewers/ install as gpusim.kernels and gpusim.viewers."""

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_holds_the_three_packages_and_the_presets(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("gpusim-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("gpusim/__init__.py", "gpusim/kernels/rng.py", "gpusim/kernels/launch.py",
                     "gpusim/viewers/__init__.py", "gpusim/viewers/reader.py", "gpusim/viewers/napari.yaml",
                     "gpusim/presets/demo.toml"):
        assert expected in names, expected
    assert not any(n.startswith(("kernels/", "viewers/", "tests/")) for n in names)


def test_installed_namespace_points_at_the_repository_folders():
    import gpusim.kernels
    import gpusim.viewers

    assert gpusim.kernels.__path__[0].endswith("kernels")
    assert gpusim.viewers.__path__[0].endswith("viewers")
