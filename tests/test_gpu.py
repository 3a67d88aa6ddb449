"""The CUDA backend on a real GPU (skipped without one), and the GPU check's equality script in the simulator.

On a machine with a usable NVIDIA GPU (cupy and numba-cuda installed) these
run the same scenarios on the CPU and on the device and require bitwise
equality; ``benchmarks/gpu_check.sh`` runs them there.  Without a GPU, only
the tests marked ``without_gpu`` run: the equality script and the step's device reads in the CUDA
simulator, and backend selection with a cupy that finds no GPU (benchmarks/gpu_check.sh skips them).
"""

import inspect
import json
import os
import subprocess
import sys

import pytest

from gpusim.backend import cuda_problem

from helpers import run_gpusim, run_script

def _python(code, env=None):
    """``python -c code`` with numba-cuda itself (not its simulator), ``env`` added to the environment."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {}), "NUMBA_ENABLE_CUDASIM": "0"})


_SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
needs_gpu = pytest.mark.skipif(
    _SIMULATED or cuda_problem() is not None,
    reason="numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM): these need a real GPU" if _SIMULATED
    else f"no usable CUDA GPU here ({cuda_problem()})",
)


@pytest.mark.without_gpu
def test_the_equality_script_compares_cpu_and_cuda_step_by_step():
    """benchmarks/gpu_equality.py, run with the CUDA simulator as its GPU on a tiny lattice."""
    result = run_script("../benchmarks/gpu_equality.py", "--edge", "8", "--steps", "3",
                        env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["equal"] and report["first_differing_step"] is None
    assert report["gpu"] == "cuda (CUDA simulator)" and report["cells"] > 0


@pytest.mark.without_gpu
def test_the_equality_script_checks_a_gpu_run_against_an_earlier_cpu_run(tmp_path):
    """--against: only the GPU runs (how gpu_check.sh checks variants), compared with an earlier run's CPU
    digests; a reference that differs at step 2 is caught there."""
    earlier = tmp_path / "earlier.json"
    first = run_script("../benchmarks/gpu_equality.py", "--edge", "8", "--steps", "3", "--json", earlier,
                       env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_script("../benchmarks/gpu_equality.py", "--edge", "8", "--steps", "3", "--against", earlier,
                       env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["equal"] and set(report["seconds"]) == {"cuda"} and report["cpu_from"] == str(earlier)
    altered = json.loads(earlier.read_text())
    altered["step_digests"]["cpu"][1] = "0" * 16
    earlier.write_text(json.dumps(altered))
    caught = run_script("../benchmarks/gpu_equality.py", "--edge", "8", "--steps", "3", "--against", earlier,
                        env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert caught.returncode == 1
    assert json.loads(caught.stdout.strip().splitlines()[-1])["first_differing_step"] == 2
    wrong_size = run_script("../benchmarks/gpu_equality.py", "--edge", "8", "--steps", "4", "--against", earlier,
                            env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert wrong_size.returncode == 2 and "--steps 4" in wrong_size.stderr


@pytest.mark.without_gpu
def test_a_step_waits_for_the_device_once():
    """On the CUDA launch path a step reads the device once, at its end, and asks nothing a GPU must wait for
    inside it; an infusion step also reads to place the new cells (tests/device_reads_run.py, in the simulator
    with an array module that refuses host reads)."""
    result = run_script("device_reads_run.py", "5", env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["births"] > 0 and report["deaths"] > 0 and report["moves"] > 0  # every phase had work
    for step in report["steps"]:
        assert step["refused"] == [], step
        if not step["dose"]:
            assert step["reads"] == 1, step
    assert any(step["dose"] for step in report["steps"])


def _trace_run(backend, env):
    """tests/trace_run.py's 30 steps on a 12^3 lattice: a digest of every array after every launch."""
    from test_determinism import _trace

    return _trace(backend, {"NUMBA_ENABLE_CUDASIM": "0", **env}, steps=30, density=1 / 6)


@pytest.fixture(scope="module")
def cpu_trace():
    return _trace_run("cpu", {})


def assert_same_run(cpu_trace, gpu):
    """Every launch of the GPU's run left every array as the CPU's did, and the runs end alike."""
    for (rule_c, digest_c), (rule_g, digest_g) in zip(cpu_trace["trace"], gpu["trace"]):
        assert (rule_c, digest_c) == (rule_g, digest_g), f"{rule_c} differs between the CPU and the GPU"
    assert cpu_trace["final"] == gpu["final"] and cpu_trace["series"] == gpu["series"]


@needs_gpu
def test_every_rule_agrees_on_the_gpu(cpu_trace):
    from test_determinism import all_rules

    gpu = _trace_run("cuda", {})
    assert gpu["backend"] == "cuda"
    assert {name for name, _ in cpu_trace["trace"]} == all_rules()
    assert_same_run(cpu_trace, gpu)


@needs_gpu
def test_the_cuda_c_kernels_agree_with_the_rules_on_the_gpu(cpu_trace):
    """With GPUSIM_CUDA_C=all the GPU launches the hand-written CUDA C kernels (kernels/*.cu): every launch of
    the same run leaves every array as the CPU's rules do."""
    gpu = _trace_run("cuda", {"GPUSIM_CUDA_C": "all"})
    assert gpu["backend"] == "cuda (CUDA C: census, choose_division_site, choose_partner, resolve_claim, synapse_receive)"
    assert_same_run(cpu_trace, gpu)


@needs_gpu
def test_kernels_striding_over_the_cells_agree_with_the_rules_on_the_gpu(cpu_trace):
    """With GPUSIM_CUDA_GRID=all every numba kernel starts no more blocks than the GPU holds of it, each thread
    taking cells a grid apart: every launch of the same run leaves every array as the CPU's rules do."""
    gpu = _trace_run("cuda", {"GPUSIM_CUDA_GRID": "all"})
    assert gpu["backend"] == "cuda (grid-stride: every rule)"
    assert_same_run(cpu_trace, gpu)


@needs_gpu
def test_direct_launches_agree_with_the_rules_on_the_gpu(cpu_trace):
    """With GPUSIM_CUDA_DIRECT=1 numba launches each form of a kernel once (compiling it) and cuda.core every later
    launch, with the parameters gpusim lays out: every launch of the same run leaves every array as the CPU's
    rules do, and no kernel is left to numba."""
    gpu = _trace_run("cuda", {"GPUSIM_CUDA_DIRECT": "1"})
    assert gpu["backend"] == "cuda (direct launches)"
    assert gpu["direct_forms"] >= 20 and gpu["left_to_numba"] == []
    assert_same_run(cpu_trace, gpu)


@needs_gpu
def test_the_block_counters_32_bit_halves_sum_as_int64_on_the_gpu():
    """tests/tally_run.py on the GPU: amounts that carry, borrow and pass 2**32 sum as numpy's int64 does."""
    sys.path.insert(0, os.path.dirname(__file__))
    from tally_run import amounts, expected_sums

    result = run_script("tally_run.py", "cuda", env={"NUMBA_ENABLE_CUDASIM": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["sums"] == expected_sums(amounts(1000))


class _DeviceArray:
    """A cupy array as far as a direct launch asks: dtype, dimensions, contiguity, extents, strides, pointer."""

    def __init__(self, array):
        from types import SimpleNamespace

        self.array = array
        self.dtype, self.ndim, self.flags = array.dtype, array.ndim, array.flags
        self.size, self.itemsize, self.shape, self.strides = array.size, array.itemsize, array.shape, array.strides
        self.data = SimpleNamespace(ptr=array.__array_interface__["data"][0])


@pytest.mark.without_gpu
def test_a_direct_launch_lays_out_the_parameters_as_numba_does(monkeypatch):
    """GPUSIM_CUDA_DIRECT=1: a kernel form's first launch is numba's; later ones go to cuda.core with each array
    as numba-cuda passes it (two null pointers, element count, element size, data pointer, extents, byte strides)
    and each number as a numpy scalar of its numba type; a host array or a type not laid out stays with numba."""
    from types import SimpleNamespace

    import numpy as np
    import numba
    from numba import types as nbtypes

    from gpusim.kernels import gpu_launcher as launching
    from gpusim.kernels.gpu_options import GPUOptions
    from gpusim.kernels.occupancy import mark_survivor

    numba_launches, core_launches = [], []

    class Kernel:  # numba's CUDA dispatcher as far as a direct launch asks
        targetoptions = {}
        py_func = SimpleNamespace(__module__="stand_in")

        def __init__(self):
            self.overloads = {}

        @staticmethod
        def typeof_pyval(value):
            if isinstance(value, (_DeviceArray, np.ndarray)):
                return nbtypes.Array(numba.from_dtype(value.dtype), value.ndim, "C")
            return nbtypes.boolean if isinstance(value, bool) else nbtypes.int64

        def __getitem__(self, grid):
            def call(*arguments):
                numba_launches.append(grid)
                types = tuple(self.typeof_pyval(value) for value in arguments)
                function = SimpleNamespace(kernel=f"machine code of {len(self.overloads)}")
                self.overloads.setdefault(types, SimpleNamespace(
                    debug=False, cooperative=False,
                    _codelibrary=SimpleNamespace(get_cufunc=lambda: function)))
            return call

    kernel = Kernel()
    monkeypatch.setattr(launching, "launcher", lambda fn, target, counted, strided, cache: kernel)
    xp = SimpleNamespace(ndarray=_DeviceArray, zeros=np.zeros, cuda=object())
    gpu = launching.CUDALauncher(xp, options=GPUOptions(direct=True))
    gpu._core = SimpleNamespace(LaunchConfig=lambda **config: config,
                                launch=lambda stream, config, function, *parameters:
                                core_launches.append((stream, config, function, parameters)))
    gpu._stream = "default stream"
    live = _DeviceArray(np.array([7], dtype=np.int64))
    state = _DeviceArray(np.zeros(1000, dtype=np.uint8))
    keep = _DeviceArray(np.zeros((2, 1000), dtype=np.int32)[1])
    for _ in range(3):
        gpu(mark_survivor, 1000, live, state, keep)
    assert numba_launches == [(4, 256)] and len(core_launches) == 2
    stream, config, function, parameters = core_launches[-1]
    assert (stream, config, function) == ("default stream", {"grid": 4, "block": 256, "shmem_size": 0},
                                          "machine code of 0")
    assert parameters == (np.int64(1000),
                          0, 0, 1, 8, live.data.ptr, 1, 8,
                          0, 0, 1000, 1, state.data.ptr, 1000, 1,
                          0, 0, 1000, 4, keep.data.ptr, 1000, 4)
    assert [type(p) for p in parameters[:1]] == [np.int64]
    # the layout is the one the kernel's PTX declares (tests/test_determinism.py compiles every kernel's)
    assert launching.parameter_bytes([nbtypes.int64, *(kernel.typeof_pyval(a) for a in (live, state, keep))]) == (
        [8] * (1 + 3 * 7))
    # a host array: numba copies it over and back, every time; a boolean is left to numba too
    host = np.zeros(1000, dtype=np.int32)
    for _ in range(2):
        gpu(mark_survivor, 1000, live, state, host)
        gpu(mark_survivor, 1000, True, state, keep)
    assert len(numba_launches) == 5 and len(core_launches) == 2


_NUMBAS_OWN_LAYOUT = """
import ctypes, json, types
import numpy as np
import numba.cuda.dispatcher as dispatcher
from numba import types as nb
from gpusim.kernels.gpu_launcher import kernel_parameters, parameter_forms

class DeviceArray:  # a cupy array as far as both layouts ask (numba's through its device-array wrapper)
    def __init__(self, array):
        self.size, self.itemsize, self.dtype, self.shape, self.strides = (
            array.size, array.itemsize, array.dtype, array.shape, array.strides)
        self.ptr = array.__array_interface__["data"][0]
        self.data = types.SimpleNamespace(ptr=self.ptr)
        self._layout = types.SimpleNamespace(strides_in_bytes=array.strides)

dispatcher.wrap_arg = lambda value: types.SimpleNamespace(to_device=lambda retr, stream: value)
table = np.zeros((3, 40), np.int32)
arguments = [(nb.int64[::1], DeviceArray(np.zeros(1, np.int64))), (nb.int64, 1000), (nb.uint64, 2**64 - 3),
             (nb.uint8[::1], DeviceArray(np.zeros(40, np.uint8))), (nb.int32[:, ::1], DeviceArray(table[1:])),
             (nb.int32[::1], DeviceArray(table[2])), (nb.int8[::1], DeviceArray(np.zeros(9, np.int8))),
             (nb.int32, -5), (nb.float64, 0.25)]
theirs = []
for kind, value in arguments:
    dispatcher._Kernel._prepare_args(types.SimpleNamespace(extensions=[]), kind, value, 0, [], theirs)
ours = kernel_parameters(parameter_forms([kind for kind, _ in arguments]), [value for _, value in arguments])
def plain(value):  # a parameter as the bytes cuda.core passes: an int as 8, a ctypes or numpy number in its width
    if isinstance(value, int):
        return [8, value]
    if isinstance(value, ctypes._SimpleCData):
        return [ctypes.sizeof(value), value.value]
    return [value.itemsize, value.item()]
print(json.dumps({"numba": [plain(p) for p in theirs], "ours": [plain(p) for p in ours]}))
"""


@pytest.mark.without_gpu
def test_direct_launches_lay_out_parameters_as_numba_cudas_own_code_does():
    """kernel_parameters against numba-cuda's own _prepare_args (the installed version's), for arrays of one and
    two dimensions and numbers of several types: the same values in the same order and widths; a numba-cuda that
    lays them out otherwise fails here before it reaches a GPU."""
    result = _python(_NUMBAS_OWN_LAYOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    laid_out = json.loads(result.stdout.strip().splitlines()[-1])
    assert laid_out["ours"] == laid_out["numba"]
    assert len(laid_out["ours"]) == 7 + 1 + 1 + 7 + 9 + 7 + 7 + 1 + 1


@pytest.mark.without_gpu
def test_gpusim_cuda_direct_is_checked_on_every_backend(monkeypatch):
    """GPUSIM_CUDA_DIRECT: 1 or 0, unset the default (off until a GPU has shown it faster); anything else is
    refused on every backend; asked for in the CUDA simulator, which runs kernels as Python, a clear error."""
    from gpusim.backend import BackendError, select
    from gpusim.kernels import gpu_options

    assert gpu_options.read({}).direct is gpu_options.DIRECT_BY_DEFAULT is False
    assert gpu_options.read({"GPUSIM_CUDA_DIRECT": "1"}).direct is True
    assert gpu_options.read({"GPUSIM_CUDA_DIRECT": " 0 "}).direct is False
    monkeypatch.setenv("GPUSIM_CUDA_DIRECT", "yes")
    with pytest.raises(BackendError, match=r"GPUSIM_CUDA_DIRECT='yes': expected 1"):
        select("cpu")
    monkeypatch.setenv("GPUSIM_CUDA_DIRECT", "1")
    assert select("cpu").label == "cpu"
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    with pytest.raises(BackendError, match="direct launches need a GPU"):
        select("cuda")


@pytest.mark.without_gpu
def test_gpusim_cuda_grid_names_rules_and_falls_back_to_its_default(monkeypatch):
    """Unset: the rules a GPU has shown faster strided (none yet); 0 none; all every launch; a misspelt name is
    refused on every backend, naming the rules there are."""
    from gpusim.backend import BackendError, select
    from gpusim.kernels import gpu_options
    from gpusim.kernels.decorators import launched_rules

    def strided(setting):
        return gpu_options.read({"GPUSIM_CUDA_GRID": setting}).strided

    assert strided("") == gpu_options.STRIDED_BY_DEFAULT == frozenset()
    monkeypatch.setattr(gpu_options, "STRIDED_BY_DEFAULT", frozenset({"die", "commit_step"}))
    monkeypatch.delenv("GPUSIM_CUDA_GRID", raising=False)
    assert gpu_options.read().strided == {"die", "commit_step"} and strided("0") == frozenset()
    assert strided("all") == set(launched_rules()) >= {"die", "census", "express_and_recover"}
    monkeypatch.setenv("GPUSIM_CUDA_GRID", "census,dye")
    with pytest.raises(BackendError, match="GPUSIM_CUDA_GRID names dye, which are not rules of the kernels package; "
                                           "those that can be named: apply_update, census"):
        select("cpu")


@pytest.mark.without_gpu
def test_a_strided_kernel_starts_the_blocks_the_gpu_holds_of_it(monkeypatch):
    """A strided numba kernel's first launch (which compiles it) starts a block per 256 cells; later ones no
    more than an H200's multiprocessors hold of it by its registers and shared memory, counted again when
    another argument type adds a compiled form with more registers; a rule not named keeps a block per 256
    cells."""
    from types import SimpleNamespace

    import numpy as np

    from gpusim.kernels import gpu_launcher as launching
    from gpusim.kernels.death import die
    from gpusim.kernels.gpu_options import GPUOptions

    started = []

    class Kernel:  # numba's CUDA dispatcher as far as the launcher asks: its launches compile its forms
        def __init__(self, compiles):
            self.compiles, self.overloads = list(compiles), {}  # per launch, the registers of a form it compiles

        def get_regs_per_thread(self):
            return dict(self.overloads)

        def get_shared_mem_per_block(self):
            return {form: 1576 for form in self.overloads}

        def __getitem__(self, grid):
            def call(*arguments):
                started.append(grid[0])
                registers = self.compiles.pop(0)
                if registers:
                    self.overloads[len(self.overloads)] = registers
            return call

    strided, plain = Kernel([40, None, 70, None, None]), Kernel([40])
    monkeypatch.setattr(launching, "launcher", lambda fn, target, counted, stride, cache: strided if stride else plain)
    properties = {"multiProcessorCount": 132, "maxThreadsPerMultiProcessor": 2048, "regsPerMultiprocessor": 65536,
                  "maxBlocksPerMultiProcessor": 32, "sharedMemPerMultiprocessor": 233472}
    device = SimpleNamespace(Device=lambda: SimpleNamespace(id=0),
                             runtime=SimpleNamespace(getDeviceProperties=lambda device_id: properties))
    gpu = launching.CUDALauncher(SimpleNamespace(zeros=np.zeros, cuda=device), options=GPUOptions(strided={"die"}))
    for cells in (10**8, 10**8, 10**8, 10**8, 1000):
        gpu(die, cells)
    gpu.strided = frozenset()
    gpu(die, 10**8)
    # compiled at 40 registers: 6 blocks of 256 threads a multiprocessor; a second form at 70: 3
    assert started == [390625, 132 * 6, 132 * 6, 132 * 3, 4, 390625]


@needs_gpu
def test_kernel_launches_do_not_wait_for_the_device():
    """numba would otherwise synchronise the stream of every cupy array it is handed (CUDA Array Interface v3)."""
    from gpusim import backend as backends

    backends.select("cuda")
    configs = [sys.modules[m] for m in ("numba.cuda.core.config", "numba.core.config") if m in sys.modules]
    assert configs and all(getattr(c, "CUDA_ARRAY_INTERFACE_SYNC", False) is False for c in configs)


@pytest.mark.without_gpu
@pytest.mark.parametrize("setting, cache", [("1", "CUDACache"), ("0", "NullCache"), ("", "NullCache")])
def test_gpusim_cuda_cache_puts_the_kernels_in_numbas_cache_beside_their_modules(tmp_path, setting, cache):
    """GPUSIM_CUDA_CACHE=1: every CUDA kernel (plain, counted, strided, tallying or not) is a numba dispatcher
    with an on-disk cache in the launchers' folder, where the file names carry the kernels' digest (a changed
    rule is never loaded stale); unset or 0, none (making the dispatchers needs no GPU)."""
    result = _python(
        "from gpusim.kernels.codegen import launcher; from gpusim.kernels.death import die; "
        "from gpusim.kernels.migration import choose_step; from gpusim.kernels.gpu_options import read; "
        "cache = read().cache; "
        "kernels = [launcher(die, 'cuda', True, False, cache), launcher(die, 'cuda', True, True, cache), "
        "launcher(choose_step, 'cuda', cache=cache)]; "
        "print(*{type(k._cache).__name__ for k in kernels}, *{k._cache.cache_path for k in kernels if k._cache.cache_path})",
        env={"GPUSIM_CUDA_CACHE": setting, "GPUSIM_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    expected = [cache] + ([str(tmp_path / "launchers" / "__pycache__")] if cache == "CUDACache" else [])
    assert result.stdout.split() == expected


@pytest.mark.without_gpu
def test_small_launches_do_not_warn_on_a_gpu():
    """A launch of fewer than 128 blocks is normal in gpusim (few cells with work); numba-cuda's warning for each
    is turned off, and numba-cuda's own check reads the setting gpusim changes."""
    result = _python("from gpusim.backend import configure_numba_cuda; configure_numba_cuda(); "
                     "from numba.cuda.core import config; print(config.CUDA_LOW_OCCUPANCY_WARNINGS, "
                     "config.CUDA_ARRAY_INTERFACE_SYNC)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0", "False"]
    from numba.cuda import dispatcher

    assert "config.CUDA_LOW_OCCUPANCY_WARNINGS" in inspect.getsource(dispatcher)


@needs_gpu
def test_gpusim_run_on_the_gpu_writes_the_same_store_as_the_cpu(tmp_path):
    import numpy as np

    from gpusim.store import read_timeseries

    stores = {}
    for backend in ("cpu", "cuda"):
        stores[backend] = tmp_path / f"{backend}.ome.zarr"
        result = run_gpusim("run", "sample", "-o", stores[backend], "--backend", backend, "--quiet",
                            "--set", "run.duration=4 h")
        assert result.returncode == 0, result.stderr
    a, b = read_timeseries(stores["cpu"]), read_timeseries(stores["cuda"])
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name


@needs_gpu
def test_a_run_too_large_for_the_gpu_is_refused_before_allocating(tmp_path):
    result = run_gpusim("run", "tiny", "-o", tmp_path / "x.ome.zarr", "--backend", "cuda",
                        "--set", "lattice.shape=[6000, 6000, 6000]", "--set", "tumour.initial_cells=1000")
    assert result.returncode == 2 and "GiB" in result.stderr
    assert not (tmp_path / "x.ome.zarr").exists()


@pytest.mark.without_gpu
def test_with_cupy_installed_but_no_gpu_the_cpu_is_chosen_and_cuda_is_a_clear_error(tmp_path):
    """As on a laptop with cupy installed: ``import cupy`` works, every device query raises."""
    fake = tmp_path / "site" / "cupy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "class _Runtime:\n"
        "    @staticmethod\n"
        "    def getDeviceCount():\n"
        "        raise RuntimeError('cudaErrorNoDevice: no CUDA-capable device is detected')\n"
        "class cuda:\n"
        "    runtime = _Runtime\n"
        "def is_available():\n"
        "    return False\n"
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "NUMBA_ENABLE_CUDASIM": "0", "GPUSIM_BACKEND": ""}
    run = run_gpusim("run", "tiny", "-o", tmp_path / "auto.ome.zarr", "--set", "run.duration=1 h", "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    info = run_gpusim("info", tmp_path / "auto.ome.zarr", "--json", env=env)
    assert json.loads(info.stdout)["backend"] == "cpu"
    cuda = run_gpusim("run", "tiny", "-o", tmp_path / "cuda.ome.zarr", "--backend", "cuda", env=env)
    assert cuda.returncode == 2
    assert cuda.stderr.strip() == ("gpusim: error: backend cuda is not usable here: no usable CUDA driver "
                                   "(RuntimeError); use --backend cpu")
    assert not (tmp_path / "cuda.ome.zarr").exists()


@pytest.mark.without_gpu
def test_a_numba_cuda_that_cannot_compile_is_named_before_a_run():
    """Backend selection compiles a probe kernel to PTX (no GPU needed): numba-cuda 0.30 with a numpy that lacks
    np.row_stack (numpy 2.5, as on the first H200 lent) is reported in one line with the fix, not as a traceback at
    the first rule's launch."""
    probe = "from gpusim.backend import numba_cuda_compile_problem; print(numba_cuda_compile_problem())"
    fine = _python(probe)
    assert fine.returncode == 0 and fine.stdout.strip() == "None", fine.stderr[-2000:]
    broken = _python("import numpy; del numpy.row_stack; " + probe)
    assert broken.returncode == 0, broken.stderr[-2000:]
    assert broken.stdout.startswith("numba-cuda cannot compile kernels here: AttributeError")
    assert "row_stack" in broken.stdout and "pip install 'numpy<2.5'" in broken.stdout


@pytest.mark.without_gpu
@pytest.mark.parametrize("capability", ["90", "75", "70"])
def test_a_gpu_older_than_numba_cudas_toolkit_is_named_with_the_fix(capability):
    """The probe compiles for the GPU's own compute capability: CUDA 13's NVVM (gpusim[cuda13], installed here)
    compiles for 7.5 and later, so a V100 (7.0) is named with the CUDA 12 install before a run, not at its
    first kernel.  (A GPU that numba reaches and cupy finds, standing in for one.)"""
    fake_gpu = (
        "import sys, types; from numba import cuda; cuda.is_available = lambda: True; "
        "device = types.SimpleNamespace(compute_capability=%r); "
        "runtime = types.SimpleNamespace(getDeviceCount=lambda: 1); "
        "sys.modules['cupy'] = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=lambda: device)); "
        "from gpusim.backend import cuda_problem; print(cuda_problem())" % capability
    )
    probed = _python(fake_gpu)
    assert probed.returncode == 0, probed.stderr[-2000:]
    if capability != "70":
        assert probed.stdout.strip() == "None"
        return
    assert probed.stdout.startswith("numba-cuda cannot compile kernels here: CCSupportError")
    assert "(this GPU, compute capability 7.0, is older than" in probed.stdout
    assert "pip install 'gpusim[cuda]' rather than 'gpusim[cuda13]'" in probed.stdout


@pytest.mark.without_gpu
def test_the_profiling_script_runs_one_step_between_the_profilers_marks():
    """benchmarks/profile_step.py (run under ncu by the GPU check), rehearsed in the CUDA simulator; and the
    metrics it asks ncu for are the ones gputools.ncu.ncu_table reads."""
    result = run_script("../benchmarks/profile_step.py", "--agents", "200", "--warmup", "1",
                        env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "profiled one step of" in result.stderr and "cuda (CUDA simulator)" in result.stderr
    listed = run_script("../benchmarks/profile_step.py", "--metrics")
    from gputools.ncu import NCU_METRICS

    assert listed.stdout.strip().split(",") == list(NCU_METRICS)


@pytest.mark.without_gpu
def test_the_launch_overhead_script_times_three_rules(tmp_path):
    """benchmarks/launch_overhead.py (run by the GPU check), rehearsed in the CUDA simulator."""
    out = tmp_path / "launch_overhead.json"
    result = run_script("../benchmarks/launch_overhead.py", "--agents", "300", "--launches", "2", "--json", out,
                        env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["backend"] == "cuda (CUDA simulator)" and report["agents"] > 0
    assert [row["rule"] for row in report["rows"]] == ["claim_own_voxel", "mark_survivor", "census"]
    assert all(row["total_us"] >= row["host_us"] > 0 for row in report["rows"])


@needs_gpu
def test_a_run_moved_from_the_cpu_to_the_gpu_and_back_ends_as_if_it_never_moved(tmp_path):
    """A run stopped on the CPU, resumed on the GPU for a stretch, then on the CPU (tests/test_resume.py).  Last in
    this file, as the slowest of its GPU tests: a GPU check short of time loses it alone."""
    from test_resume import move_between_backends

    assert "simulator" not in move_between_backends(tmp_path, {})
