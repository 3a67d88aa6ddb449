"""The ``gpusim`` command line.

Exit status: 0 on success, 2 on bad input or usage (nothing is written),
1 on a failure while running, 130 when interrupted.
"""

import argparse
import math
import sys
import time
from collections import deque

from gpusim import __version__
from gpusim.units import format_minutes

EXIT_OK, EXIT_RUNTIME, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"gpusim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _fail_input(problems):
    if _speaks():
        for line in problems:
            print(f"gpusim: error: {printable(line)}", file=sys.stderr)
    return EXIT_INPUT


def _speaks():
    """Whether this process speaks for the run: always, but for the ranks past 0 of a run under mpiexec."""
    from gpusim.parallel import launched_rank

    return launched_rank() == 0


def _parsed(text, convert, what):
    """``convert(text)``, or argparse's error saying what was expected."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _positive_int(text):
    """argparse type: a whole number of at least 1."""
    value = _parsed(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _hours(text):
    """argparse type: a simulated time in hours, finite and not negative."""
    value = _parsed(text, float, "a number of hours")
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number of hours, not negative, got {text!r}")
    return value


def _agent_counts(text):
    """argparse type of ``bench --agents``: comma-separated agent counts such as 1e5,1e6 (each a whole number from
    1 to 2**31 - 1)."""
    sizes = []
    for item in text.split(","):
        value = _parsed(item, float, f"comma-separated numbers such as 1e5,1e6 in {text!r}")
        if not (1 <= value < 2**31) or value != int(value):
            raise argparse.ArgumentTypeError(f"{item.strip()!r} is not a whole number of agents from 1 to 2**31 - 1")
        sizes.append(int(value))
    return sizes


def output_file_problem(option, path, suffix=".png"):
    """Why a figure cannot be written to ``path`` (``option`` names where it came from), or None: it must name a
    ``suffix`` file in a folder that exists."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() != suffix:
        return f"{option} {path}: name a {suffix} file"
    if path.is_dir():
        return f"{option} {path}: is a folder; name a {suffix} file"
    if not path.parent.is_dir():
        return f"{option} {path}: no folder {path.parent} to write it in"
    return None


def outputs_problem(*outputs):
    """The first problem (:func:`output_file_problem`) among ``(option, path or None, suffix)`` outputs asked for,
    or None."""
    for option, path, suffix in outputs:
        problem = path and output_file_problem(option, path, suffix)
        if problem:
            return problem
    return None


_STOP_AT_HELP = ("stop at this simulated time (e.g. '12 h') with a checkpoint; `gpusim resume` continues, on this "
                 "machine or another, on either backend")


def build_parser():
    parser = _Parser(prog="gpusim", description="Cell-by-cell simulation of CAR immune-cell therapy against a 3D tumour.")
    parser.add_argument("--version", action="version", version=f"gpusim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a preset or a TOML config, writing an OME-Zarr store")
    run.add_argument("config", metavar="PRESET_OR_FILE", help="a preset name (see `gpusim presets`) or a TOML file")
    run.add_argument("-o", "--output", required=True, metavar="OUT.ome.zarr", help="the store to write")
    run.add_argument("--seed", type=int, help="random seed (overrides run.seed)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a config key; the value is read as TOML, else as a string (repeatable)")
    run.add_argument("--backend", choices=["auto", "cpu", "cuda"], help="where to run (default: config, GPUSIM_BACKEND, auto)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing store")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    run.add_argument("--debug", action="store_true", help="check the lattice invariants after every step (slow)")
    run.add_argument("--stop-at", metavar="TIME", help=_STOP_AT_HELP)

    resume = sub.add_parser("resume", help="continue a run from the newest checkpoint in its store")
    resume.add_argument("store")
    resume.add_argument("--backend", choices=["auto", "cpu", "cuda"], help="where to run (default: as configured)")
    resume.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    resume.add_argument("--stop-at", metavar="TIME", help=_STOP_AT_HELP)

    info = sub.add_parser("info", help="summarise a store")
    info.add_argument("store")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.add_argument("--config", action="store_true",
                      help="print the run's config as TOML (to start a new run from it: gpusim run FILE.toml)")

    view = sub.add_parser("view", help="open a store in napari: fields, cell kinds and the run dashboard")
    view.add_argument("store")
    view.add_argument("--3d", dest="three_d", action="store_true", help="start in the 3D view")
    view.add_argument("--time", dest="hours", type=_hours, metavar="HOURS",
                      help="start at the snapshot nearest this simulated time (hours)")
    view.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and exit")

    sub.add_parser("presets", help="list the presets shipped with gpusim")

    report = sub.add_parser("report", help="write a PNG figure of a store's populations over time")
    report.add_argument("store")
    report.add_argument("-o", "--output", help="PNG path (default: beside the store, NAME.png)")

    validate = sub.add_parser("validate", help="run the validation suite: the model against published observations")
    validate.add_argument("--quick", action="store_true", help="co-cultures of 1,000 targets instead of 2,000")
    validate.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    validate.add_argument("--rows", help="comma-separated row keys (default: every row)")
    validate.add_argument("--figure", metavar="PNG", help="also draw the model against the criteria")
    validate.add_argument("--record", metavar="MD", help="also write the table to this Markdown file")

    bench = sub.add_parser("bench", help="measure step throughput (agent-steps per second)")
    bench.add_argument("--agents", type=_agent_counts, default="1e5,1e6,4e6",
                       help="comma-separated agent counts (default 1e5,1e6,4e6)")
    bench.add_argument("--steps", type=_positive_int, default=20, help="timed steps per size (default 20)")
    bench.add_argument("--backend", choices=["cpu", "cuda"], default="cpu")
    bench.add_argument("--record", metavar="RESULTS.md",
                       help="update the current table at the top of this Markdown file (and append the full table "
                            "to JOURNAL.md beside it)")
    bench.add_argument("--json", metavar="FILE",
                       help="also write every size's figures (per-rule times with --kernels) as JSON, for "
                            "benchmarks/compare_variants.py")
    bench.add_argument("--fields", action="store_true", help="with oxygen and chemokine at their defaults")
    bench.add_argument("--kernels", action="store_true",
                       help="also time every rule's launches (the device waited for around each) and list the slowest")
    bench.add_argument("--snapshot-cost", action="store_true",
                       help="measure what writing snapshots costs (first --agents size) instead of step throughput")
    bench.add_argument("--snapshot-every", type=_positive_int, default=60, metavar="MIN",
                       help="snapshot interval for --snapshot-cost")
    bench.add_argument("--snapshots", type=_positive_int, default=4, help="snapshot intervals to run for --snapshot-cost")
    bench.add_argument("--repeats", type=_positive_int, default=1,
                       help="alternating pairs of runs for --snapshot-cost (medians)")
    bench.add_argument("--ranks", type=_rank_counts, metavar="K,K,...",
                       help="scaling across MPI ranks (launches mpiexec itself): strong at the first --agents size "
                            "and weak (that many agents per rank), e.g. --ranks 1,2")
    bench.add_argument("--threads-per-rank", type=_positive_int, metavar="T",
                       help="numba threads of each rank with --ranks (default: the cores shared among the ranks)")
    bench.add_argument("--plot", metavar="PNG", help="with --ranks: also draw agent-steps/s against ranks")
    return parser


def _rank_counts(text):
    """argparse type of ``bench --ranks``: comma-separated rank counts such as 1,2,4 (each from 1 to 1024)."""
    counts = set()
    for item in text.split(","):
        value = _parsed(item, int, f"comma-separated whole numbers such as 1,2 in {text!r}")
        if not 1 <= value <= 1024:
            raise argparse.ArgumentTypeError(f"{item.strip()!r} is not a number of ranks from 1 to 1024")
        counts.add(value)
    return sorted(counts)


# --- run ---------------------------------------------------------------------------------


class _Progress:
    """A progress bar with simulated time, cell counts and agent-steps per second."""

    def __init__(self, sim, quiet):
        self.sim = sim
        self.quiet = quiet
        self.started = time.perf_counter()
        self.first_step_s = None
        self.agent_steps = 0
        self.window = deque(maxlen=64)
        self.last_draw = 0.0
        self.bar = None
        if not quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.fields[clock]}"),
                BarColumn(),
                TextColumn("{task.fields[cells]}"),
                TextColumn("[cyan]{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.bar.add_task("run", total=sim.end_step, completed=sim.clock, clock="", cells="", rate="")
            self.bar.start()

    def __call__(self, sim):
        now = time.perf_counter()
        if self.first_step_s is None:
            self.first_step_s = now - self.started
        self.agent_steps += sim.cell_count
        self.window.append((now, self.agent_steps))
        if self.bar is not None and (now - self.last_draw > 0.2 or sim.done):
            self.last_draw = now
            self._draw()

    def _draw(self):
        self.bar.update(self.task, completed=self.sim.clock, clock=self.clock_text(), cells=self.cells_text(),
                        rate=self.rate_text())

    def clock_text(self):
        sim = self.sim
        return f"t = {format_minutes(sim.time_min)} / {format_minutes(sim.end_step * sim.dt)}"

    def cells_text(self):
        from gpusim.kernels.cells import KIND_LABELS, KIND_NAMES

        last = self.sim.timeseries.last()
        parts = [f"{KIND_LABELS[k]} {last[f'cells_{n}']:,}" for k, n in enumerate(KIND_NAMES) if last[f"cells_{n}"]]
        imbalance = self.sim.domain.imbalance  # a run split across MPI ranks: max / mean cells a rank steps
        return " · ".join(parts or ["no cells"]) + (f" · imbalance {imbalance:.2f}" if imbalance is not None else "")

    def rate(self):
        if len(self.window) < 2:
            return 0.0
        (t0, a0), (t1, a1) = self.window[0], self.window[-1]
        return (a1 - a0) / (t1 - t0) if t1 > t0 else 0.0

    def rate_text(self):
        return f"{self.rate():.2e} agent-steps/s"

    def close(self):
        if self.bar is not None:
            self._draw()  # where the run ended, stopped early too
            self.bar.stop()


class _StopRequest:
    """Ctrl-C asks the run to stop at the next step boundary (a second Ctrl-C interrupts at once)."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        import signal

        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        import signal

        if self.requested:
            signal.signal(signal.SIGINT, self.previous)
            raise KeyboardInterrupt
        self.requested = True
        print("\ngpusim: stopping after this step and writing a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def __call__(self):
        return self.requested

    def __exit__(self, *exc):
        import signal

        signal.signal(signal.SIGINT, self.previous)


def _stop_step(text, cfg, clock):
    """The step at which ``--stop-at TEXT`` stops a run that is at step ``clock``; None without it.  Raises
    ConfigError (one line) for a time that is not one, not a whole number of steps, or not ahead of the run."""
    from gpusim.config import ConfigError, not_whole_steps
    from gpusim.units import UnitError, parse_quantity

    if text is None:
        return None
    try:
        minutes = parse_quantity(text, "time")
    except UnitError as exc:
        raise ConfigError([f"--stop-at: {exc}"]) from None
    problem = not_whole_steps("--stop-at", minutes, cfg.run.dt)
    if problem:
        raise ConfigError([problem])
    step = cfg.steps_of(minutes)
    if not clock < step <= cfg.steps:
        raise ConfigError([f"--stop-at: {text} must come after the run's present time ({format_minutes(clock * cfg.run.dt)}) "
                           f"and no later than its end ({format_minutes(cfg.steps * cfg.run.dt)})"])
    return step


def _execute(sim, store, args, wall_start, stop_step=None, comm=None):
    """Run ``sim`` into ``store`` to its end (or to ``stop_step``) with progress and summary; returns the exit
    status.  Under mpiexec (``comm``) every rank runs this together: they stop at the step any of them is asked
    to, and a rank that fails aborts the job."""
    from gpusim.store import disk_usage

    progress = _Progress(sim, args.quiet)
    try:
        with _StopRequest() as stop:
            planned = (lambda: stop() or sim.clock >= stop_step) if stop_step is not None else stop
            if comm is not None:
                from gpusim.mpi_run import any_rank

                asked = planned
                planned = lambda: any_rank(comm, asked())  # noqa: E731
            sim.run(store=store, progress=progress, should_stop=planned)
    except KeyboardInterrupt:
        progress.close()
        if comm is not None:
            from gpusim.mpi_run import abort

            print(f"gpusim: aborted; `gpusim resume {args.output}` continues from the last checkpoint", file=sys.stderr)
            abort(comm, 130)
        if store.building is not None:
            store.abandon()
            print(f"gpusim: aborted before the first checkpoint; {args.output} is as it was", file=sys.stderr)
            return 130
        store.finish(sim)
        print(f"gpusim: aborted at {format_minutes(sim.time_min)}; `gpusim resume {args.output}` continues from "
              "the last checkpoint", file=sys.stderr)
        return 130
    except Exception as exc:  # a failure at run time, after the input was accepted
        progress.close()
        store.close_after_failure()
        print(f"gpusim: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if comm is not None:
            from gpusim.mpi_run import abort

            abort(comm, EXIT_RUNTIME)
        return EXIT_RUNTIME
    progress.close()
    if stop.requested:
        store.finish(sim)
        print(f"gpusim: stopped at {format_minutes(sim.time_min)} with a checkpoint; `gpusim resume {args.output}` "
              "continues", file=sys.stderr)
        return 130
    if not sim.done:  # stopped where --stop-at asked (run() has written the checkpoint and marked the store)
        if not args.quiet:
            print(f"gpusim: stopped at {format_minutes(sim.time_min)} as asked, with a checkpoint; "
                  f"`gpusim resume {args.output}` continues")
        return EXIT_OK
    wall = time.perf_counter() - wall_start
    if not args.quiet:
        from gpusim.kernels.cells import KIND_LABELS, KIND_NAMES

        last = sim.timeseries.last()
        steady = progress.agent_steps / max(wall - (progress.first_step_s or 0), 1e-9)
        cells = " · ".join(f"{KIND_LABELS[k]} {last[f'cells_{n}']:,}" for k, n in enumerate(KIND_NAMES) if last[f"cells_{n}"])
        size = disk_usage(args.output)
        print(f"gpusim: wrote {args.output}  ({format_minutes(sim.time_min)} simulated in {sim.clock} steps, "
              f"{store.meta['snapshots_written']} snapshots, {size / 2**20:.1f} MiB)")
        print(f"  wall time   {wall:.1f} s (first step incl. compilation {progress.first_step_s or 0:.1f} s) "
              f"on {_label(sim.backend, comm)}")
        print(f"  throughput  {progress.agent_steps:.3g} agent-steps, {steady:.3g} agent-steps/s after the first step")
        print(f"  final cells {cells or 'none'}")
        print(f"  look at it  gpusim view {args.output}   |   gpusim report {args.output}   |   "
              f"gpusim info {args.output}")
    return EXIT_OK


def _world():
    """MPI's world communicator when the launcher started this process among several, else None; raises
    ValueError or gpusim.mpi_run.MPIMissing (one line) when it cannot be had."""
    from gpusim.parallel import launched_ranks

    ranks = launched_ranks()
    if ranks == 1:
        return None
    from gpusim.mpi_run import world

    return world(ranks)


def _agreed_problems(comm, problems):
    """Input problems found by any rank (the first rank's that found some), on every rank; ``problems`` alone
    in one process."""
    if comm is None:
        return problems
    return next((found for found in comm.allgather(problems) if found), None)


def _on_root(comm, make):
    """``make()`` on rank 0 (in one process: here), its failure told to every rank: (value or None, None) or
    (None, (exit status, line))."""
    from gpusim.store import StoreError

    value, failure = None, None
    if comm is None or comm.Get_rank() == 0:
        try:
            value = make()
        except StoreError as exc:
            failure = (EXIT_INPUT, f"gpusim: error: {printable(str(exc))}")
        except Exception as exc:
            failure = (EXIT_RUNTIME, f"gpusim: run failed: {type(exc).__name__}: {exc}")
    if comm is not None:
        from gpusim.mpi_run import agreed

        failure = agreed(comm, failure)
    if failure is not None and (comm is None or comm.Get_rank() == 0):
        print(failure[1], file=sys.stderr)
    return value, failure


def _split(comm, cfg):
    """The slabs a run under mpiexec steps (DecompositionError, one line, when the lattice is too shallow for
    them); None in one process."""
    from gpusim.parallel import plan_slabs

    if comm is None:
        return None
    return plan_slabs(cfg.lattice.shape[0], comm.Get_size(), align=cfg.fields.coarsening)


def _simulation(make, store, comm):
    """``make()`` (a Simulation), a store still being built abandoned if it fails; under mpiexec a failure
    aborts the job."""
    try:
        return make()
    except BaseException as exc:
        if store is not None:
            store.abandon()
        if not isinstance(exc, Exception):
            raise
        print(f"gpusim: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if comm is not None:
            from gpusim.mpi_run import abort

            abort(comm, EXIT_RUNTIME)
        raise SystemExit(EXIT_RUNTIME) from None


def _run_new(path, cfg, raw, backend, args, comm, slabs, stop_step=None, overwrite=False):
    """A new run of ``cfg`` into a new store at ``path``; returns the exit status."""
    from gpusim.engine import Simulation
    from gpusim.store import RunStore

    wall_start = time.perf_counter()
    store, failure = _on_root(comm, lambda: RunStore(path, cfg, raw, _label(backend, comm), overwrite=overwrite))
    if failure is not None:
        return failure[0]
    domain = None
    if comm is not None:
        from gpusim.parallel import SlabDomain

        domain = SlabDomain(comm, cfg.lattice.shape, slabs)
    sim = _simulation(lambda: Simulation(cfg, backend=backend, debug=getattr(args, "debug", False), domain=domain), store, comm)
    if comm is not None:
        from gpusim.mpi_run import SplitStore

        store = SplitStore(comm, store, domain)
    return _execute(sim, store, args, wall_start, stop_step, comm)


def _label(backend, comm):
    """Where a run runs, as its store records it: the backend, and the ranks of a run under mpiexec."""
    return backend.label if comm is None else f"{backend.label}, {comm.Get_size()} MPI ranks"


def cmd_run(args):
    from gpusim import backend as backends
    from gpusim import config
    from gpusim.engine import preflight
    from gpusim.kernels.codegen import CacheFolderError, private_cache_dir
    from gpusim.mpi_run import MPIMissing
    from gpusim.parallel import DecompositionError
    from gpusim.store import StoreError, check_target

    try:
        comm = _world()
    except (ValueError, MPIMissing) as exc:
        return _fail_input([str(exc)])
    problems = None
    try:
        cfg, raw = config.load(args.config, args.overrides, seed=args.seed)
        check_target(args.output, args.overwrite)
        private_cache_dir()
        stop_step = _stop_step(args.stop_at, cfg, 0)
        slabs = _split(comm, cfg)
        backend = backends.select(args.backend, cfg.run.backend, device=_device(comm))
        preflight(cfg, backend, layers=_held_layers(comm, slabs))
    except config.ConfigError as exc:
        problems = exc.problems
    except (StoreError, backends.BackendError, CacheFolderError, DecompositionError) as exc:
        problems = [str(exc)]
    problems = _agreed_problems(comm, problems)
    if problems:
        return _fail_input(problems)
    if comm is not None and comm.Get_rank() != 0:
        args.quiet = True
    status = _run_new(args.output, cfg, raw, backend, args, comm, slabs, stop_step, overwrite=args.overwrite)
    if status != EXIT_OK or stop_step is not None and stop_step < cfg.steps or not cfg.arms:
        return status
    return _run_arms(args.output, cfg, raw, backend, args, comm)


def _held_layers(comm, slabs):
    """The layers this rank holds (None in one process: the whole lattice)."""
    if comm is None:
        return None
    first, stop = slabs[comm.Get_rank()].held
    return stop - first


def _device(comm):
    """The GPU a rank takes: the one of its rank on its node (None in one process: the current one)."""
    from gpusim.parallel import local_rank

    return None if comm is None else local_rank()


def _run_arms(store_path, cfg, raw, backend, args, comm=None):
    """Run the control arms of a complete run (cfg.arms), each with the run's seed into STORE/arms/NAME: a store of
    its own, resumed where one was stopped and skipped where one is complete.  The run's store stays locked
    meanwhile.  Returns the exit status."""
    from gpusim import assays
    from gpusim.config import validate
    from gpusim.store import arm_path, arm_status
    from gpusim.mpi_run import agreed
    from gpusim.store_lock import WriterLock

    def lock_arms():
        lock = WriterLock(store_path, "run").acquire()
        folder = arm_path(store_path, "")
        if not folder.exists():
            import zarr

            zarr.open_group(str(folder), mode="w-", zarr_format=3).attrs["description"] = (
                "the run's control arms, each a gpusim store of its own")
        return lock

    lock, failure = _on_root(comm, lock_arms)
    if failure is not None:
        return failure[0]
    root = comm is None or comm.Get_rank() == 0
    try:
        for number, name in enumerate(cfg.arms, 1):
            path = arm_path(store_path, name)
            arm_args = argparse.Namespace(**{**vars(args), "output": str(path), "quiet": True, "store": str(path)})
            found, failure = _on_root(comm, lambda: (arm_status(store_path, name), path.exists()))
            if failure is not None:
                return failure[0]
            status, exists = found if comm is None else agreed(comm, found)
            if status == "complete":
                continue
            if root:
                doing = "resuming" if exists else "running"
                print(f"gpusim: {doing} control arm {name} ({number} of {len(cfg.arms)}): {path}", file=sys.stderr)
            if exists:
                status = cmd_resume(arm_args)
            else:
                arm_raw = assays.arm_config(raw, name)
                status = _run_new(path, validate(arm_raw), arm_raw, backend, arm_args, comm, _split(comm, cfg))
            if status != EXIT_OK:
                return status
    finally:
        if lock is not None:
            lock.release()
    if not args.quiet:
        print(f"gpusim: control arms {', '.join(cfg.arms)} in {arm_path(store_path, '')}; gpusim report "
              f"{store_path} draws the run against them")
    return EXIT_OK


def cmd_resume(args):
    from gpusim import backend as backends
    from gpusim.config import ConfigError
    from gpusim.engine import Simulation, cells_to_come, preflight
    from gpusim.kernels.codegen import CacheFolderError, private_cache_dir
    from gpusim.mpi_run import MPIMissing, agreed
    from gpusim.parallel import DecompositionError
    from gpusim.store import RunStore, StoreError, arm_status

    try:
        comm = _world()
    except (ValueError, MPIMissing) as exc:
        return _fail_input([str(exc)])
    root = comm is None or comm.Get_rank() == 0
    store, plan, problems = None, None, None
    if root:  # rank 0 holds the store: it reads and checks it
        try:
            private_cache_dir()
            store = RunStore.reopen(args.store)
        except (StoreError, CacheFolderError) as exc:
            problems = [str(exc)]
        if store is not None:
            try:
                plan = _resume_plan(store, args, arm_status)
            except ConfigError as exc:
                problems = exc.problems
            except StoreError as exc:
                problems = [str(exc)]
            if problems:
                store.close_after_failure()
    if comm is not None:
        problems, plan = agreed(comm, (problems, plan))
    if problems:
        return _fail_input(problems)
    cfg, raw = plan["cfg"], plan["raw"]
    try:  # every rank: its backend and, under mpiexec, its slab
        backend = backends.select(args.backend, cfg.run.backend, device=_device(comm))
        slabs = _split(comm, cfg)
        if not plan["arms"]:
            preflight(cfg, backend, cells=cells_to_come(cfg, plan["clock"], plan["cells"]),
                      layers=_held_layers(comm, slabs))
    except (StoreError, backends.BackendError, DecompositionError) as exc:
        problems = [str(exc)]
    except ConfigError as exc:
        problems = exc.problems
    problems = _agreed_problems(comm, problems)
    if problems:
        if store is not None:
            store.close_after_failure()
        return _fail_input(problems)
    if comm is not None and not root:
        args.quiet = True
    if plan["arms"]:
        if store is not None:
            store.close()
        return _run_arms(args.store, cfg, raw, backend, args, comm)
    loaded, failure = _on_root(comm, lambda: _load_checkpoint(store))  # read once every check has passed
    if failure is not None:
        return failure[0]
    checkpoint, series = loaded if root else (None, None)
    if root:
        changed = store.code_changed()
        if changed:
            print(f"gpusim: warning: {changed}: the run goes on under this version's rules, and its store notes "
                  "where they changed (gpusim info)", file=sys.stderr)
    wall_start = time.perf_counter()
    domain = None
    if comm is not None:
        from gpusim.mpi_run import SplitStore, scatter_checkpoint
        from gpusim.parallel import SlabDomain

        domain = SlabDomain(comm, cfg.lattice.shape, slabs)
        checkpoint = scatter_checkpoint(comm, domain, checkpoint)
        series = agreed(comm, series)
    sim = _simulation(lambda: Simulation.restore(cfg, checkpoint, series, backend=backend, domain=domain), None, comm)
    if root:
        store.continue_on(_label(backend, comm), sim.clock)
    if comm is not None:
        store = SplitStore(comm, store, domain)
        store.checkpoint_clock = sim.clock
    if not args.quiet:
        print(f"gpusim: resuming {args.store} at {format_minutes(sim.time_min)} (step {sim.clock} of {sim.end_step}) "
              f"on {_label(backend, comm)}")
    args.output = args.store
    status = _execute(sim, store, args, wall_start, plan["stop_step"], comm)
    if status != EXIT_OK or not sim.done or not cfg.arms:
        return status
    return _run_arms(args.store, cfg, raw, backend, args, comm)


def _load_checkpoint(store):
    """The store's checkpoint and time series; the store closed if they cannot be read."""
    try:
        return store.load_checkpoint()
    except BaseException:
        store.close_after_failure()
        raise


def _resume_plan(store, args, arm_status):
    """What resuming a reopened store does (rank 0 decides): continue the run from its checkpoint, or run the
    control arms of a complete run; StoreError when there is nothing left to do."""
    from gpusim.store import StoreError

    plan = {"cfg": store.cfg, "raw": store.meta["config"], "arms": False, "stop_step": None}
    if store.meta["status"] == "complete":
        if not any(arm_status(args.store, name) != "complete" for name in store.cfg.arms):
            raise StoreError(f"{args.store}: the run is already complete ({store.meta['steps_done']} steps)")
        return {**plan, "arms": True}
    clock, cells, _next_id = store.checkpoint_header()
    return {**plan, "clock": clock, "cells": cells, "stop_step": _stop_step(args.stop_at, store.cfg, clock)}


# --- other commands ------------------------------------------------------------------------


def printable(text):
    """``text`` with every control character (a terminal escape sequence, a carriage return) written as its Python
    escape: what a store says is shown, never obeyed by the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def cmd_info(args):
    from gpusim.store import StoreError, stored_config, summary, to_json

    if args.config:
        import tomli_w

        try:
            print(tomli_w.dumps(stored_config(args.store)), end="")
        except StoreError as exc:
            return _fail_input([str(exc)])
        except (TypeError, ValueError) as exc:  # a value TOML cannot hold (a null) in an edited config
            return _fail_input([f"{args.store}: the stored config cannot be written as TOML ({exc})"])
        return EXIT_OK
    try:
        info = summary(args.store)
    except StoreError as exc:
        return _fail_input([str(exc)])
    if args.json:
        print(to_json(info))
        return EXIT_OK
    lines = []
    z, y, x = info["lattice_shape"]
    lines.append(f"{info['path']}  (gpusim {info['gpusim_version']}, {info['status']})")
    if info["description"]:
        lines.append(f"  {info['description']}")
    lines.append(f"  backend      {info['backend']}, seed {info['seed']}, created {info['created']}")
    if info["edited"]:
        lines.append("  config       edited after the run began (its digest no longer matches): the data were made "
                     "with another config, and the run cannot be resumed")
    resumed = []
    for before, stretch in zip(info["segments"], info["segments"][1:]):
        code = [f"{key.replace('_', ' ')} {stretch[key]}" for key in ("gpusim_version", "source_revision")
                if before[key] != stretch[key]]
        resumed.append(f"at {format_minutes(stretch['from_step'] * info['dt_min'])} on {stretch['backend']}"
                       + (f" ({', '.join(code)})" if code else ""))
    if resumed:
        lines.append(f"  resumed      {', '.join(resumed)}")
    lines.append(f"  lattice      {z} x {y} x {x} voxels of {info['voxel_size_um']:g} um "
                 f"({z * info['voxel_size_um'] / 1000:.2f} x {y * info['voxel_size_um'] / 1000:.2f} x "
                 f"{x * info['voxel_size_um'] / 1000:.2f} mm)")
    lines.append(f"  progress     {info['steps_done']} of {info['steps_total']} steps of {info['dt_min']:g} min "
                 f"({format_minutes(info['simulated_min'])} simulated), {info['snapshots']} snapshots "
                 f"(levels {', '.join(info['labels_levels'])})")
    if info["diffusing_fields"]:
        fields = ", ".join(f"{name} ({unit})" for name, unit in info["diffusing_fields"].items())
        lines.append(f"  fields       {fields} on a grid of {info['field_grid_coarsening']}^3 lattice voxels per grid "
                     "voxel")
    cells = ", ".join(f"{k[len('cells_'):]} {v:,}" for k, v in info["final_counts"].items() if v)
    totals = ", ".join(f"{k} {v:,}" for k, v in info["totals"].items() if v)
    lines.append(f"  final cells  {cells or 'none'}")
    lines.append(f"  totals       {totals or 'none'}")
    if info["arms"]:
        lines.append(f"  arms         {', '.join(f'{name} ({status})' for name, status in info['arms'].items())}")
    lines.append(f"  on disk      {info['bytes_on_disk'] / 2**20:.1f} MiB")
    for line in lines:
        print(printable(line))
    return EXIT_OK


SCREENSHOT_SIZE = (1600, 1000)  # window pixels of `gpusim view --screenshot`


def _display_problem():
    """Why Qt could not open a window here, or None."""
    import os

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        return "no display to open napari on (DISPLAY is not set); on a headless machine use xvfb-run gpusim view ..."
    return None


def cmd_view(args):
    from gpusim.store import StoreError, open_store

    try:
        open_store(args.store)
    except StoreError as exc:
        return _fail_input([str(exc)])
    try:
        import napari
    except ImportError:
        return _fail_input(["napari is not installed: pip install 'gpusim[viewer]'"])
    problem = _display_problem() or (args.screenshot and output_file_problem("--screenshot", args.screenshot))
    if problem:
        return _fail_input([problem])
    from gpusim.viewers.window import open_viewer

    viewer = open_viewer(args.store, three_d=args.three_d, hours=args.hours,
                         size=SCREENSHOT_SIZE if args.screenshot else None)
    if args.screenshot:
        viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
        viewer.close()
        print(f"gpusim: wrote {args.screenshot}")
        return EXIT_OK
    napari.run()
    return EXIT_OK


def cmd_presets(_args):
    from gpusim import config

    names = config.preset_names()
    width = max(len(n) for n in names)
    for name in names:
        raw = config.read_source(name)
        print(f"{name:<{width}}  {raw.get('description', '')}")
    return EXIT_OK


def cmd_report(args):
    from gpusim.report import write_report
    from gpusim.store import StoreError

    from gpusim.report import default_output

    output = args.output or default_output(args.store)
    problem = output_file_problem("-o", output)
    if problem:
        return _fail_input([problem])
    try:
        path = write_report(args.store, output)
    except StoreError as exc:
        return _fail_input([str(exc)])
    print(f"gpusim: wrote {path}")
    return EXIT_OK


def cmd_bench(args):
    from gpusim import backend as backends
    from gpusim import bench, config
    from gpusim.kernels.codegen import CacheFolderError, private_cache_dir

    sizes = args.agents
    try:
        private_cache_dir()
    except CacheFolderError as exc:
        return _fail_input([str(exc)])
    problem = outputs_problem(("--record", args.record, ".md"), ("--json", args.json, ".json"),
                              ("--plot", args.plot, ".png"))
    if problem:
        return _fail_input([problem])
    if args.ranks:
        return _bench_ranks(args)
    try:
        if args.snapshot_cost:
            table = bench.snapshot_markdown(bench.snapshot_cost(sizes[0], every_min=args.snapshot_every,
                                                                snapshots=args.snapshots, repeats=args.repeats),
                                            args.snapshot_every)
        else:
            rows = bench.run(sizes, steps=args.steps, backend_name=args.backend, fields=args.fields,
                             kernels=args.kernels, echo=print)
            table = bench.markdown(rows, args)
            if args.json:
                bench.write_json(args.json, rows)
    except config.ConfigError as exc:
        return _fail_input(exc.problems)
    except backends.BackendError as exc:
        return _fail_input([str(exc)])
    print(table)
    if args.record:
        bench.record(args.record, table, rows=None if args.snapshot_cost else rows, args=args)
        print(f"gpusim: recorded in {args.record} (and JOURNAL.md beside it)")
    return EXIT_OK


def _bench_ranks(args):
    """``gpusim bench --ranks``: scaling across MPI ranks (gpusim.scaling)."""
    import json

    from gpusim import bench, config, scaling

    command = f"gpusim bench --ranks {','.join(map(str, args.ranks))} --agents {bench.agents_text(args).split(',')[0]} " \
              f"--steps {args.steps}" + (f" --threads-per-rank {args.threads_per_rank}" if args.threads_per_rank else "")
    try:
        import mpi4py  # noqa: F401  (the ranks need it; say so before launching them)
    except ImportError:
        return _fail_input(["--ranks: mpi4py cannot be imported; install it with pip install 'gpusim[mpi]'"])
    try:
        rows = scaling.run(args.ranks, args.agents[0], steps=args.steps, threads=args.threads_per_rank)
    except config.ConfigError as exc:
        return _fail_input(exc.problems)
    except RuntimeError as exc:
        print(f"gpusim: bench failed: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    table = scaling.markdown(rows, command)
    print(table)
    if args.plot:
        scaling.plot(rows, args.plot)
        print(f"gpusim: drew {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": bench.machine(), "rows": rows}, f, indent=1)
    if args.record:
        bench.record(args.record, table)
        print(f"gpusim: appended to JOURNAL.md beside {args.record}")
    return EXIT_OK


def cmd_validate(args):
    from gpusim import validation
    from gpusim.kernels.codegen import CacheFolderError, private_cache_dir

    try:
        seeds = tuple(_parsed(text, int, "comma-separated whole seeds such as 1,2,3") for text in args.seeds.split(","))
    except argparse.ArgumentTypeError as exc:
        return _fail_input([f"--seeds: {exc}"])
    known = [row.key for row in validation.ROWS]
    rows = None
    if args.rows:
        rows = {key.strip() for key in args.rows.split(",")}
        unknown = sorted(rows - set(known))
        if unknown:
            return _fail_input([f"--rows: no row {unknown[0]!r}; the rows: {', '.join(known)}"])
    problem = outputs_problem(("--figure", args.figure, ".png"), ("--record", args.record, ".md"))
    if problem:
        return _fail_input([problem])
    try:
        private_cache_dir()
    except CacheFolderError as exc:
        return _fail_input([str(exc)])
    results = validation.run(seeds=seeds, quick=args.quick, rows=rows,
                             echo=lambda line: print(line, file=sys.stderr, flush=True))
    table = validation.markdown(results, seeds)
    print(table)
    if args.record:
        from pathlib import Path

        Path(args.record).write_text(table + "\n")
    if args.figure:
        validation.figure(results, args.figure)
        print(f"gpusim: wrote {args.figure}")
    failed = [r.row.key for r in results if not r.passed]
    print(f"gpusim: {len(results) - len(failed)} of {len(results)} rows pass" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return EXIT_OK if not failed else EXIT_RUNTIME


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "resume": cmd_resume, "info": cmd_info, "view": cmd_view, "presets": cmd_presets,
            "report": cmd_report, "bench": cmd_bench}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C outside a run's steps (reading, compiling, building a store)
        print("\ngpusim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gpusim info STORE | head`: the reader left, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
