"""The GPU check's variants beside its main run, rule by rule.

    python benchmarks/compare_variants.py OUT [--record FILE]

Reads what benchmarks/gpu_check.sh left in OUT: ``bench-*.json``, the main
install's throughput runs, and ``variant-NAME.json``, each variant's
(``gpusim bench --kernels --json``), and prints for every size that both ran
the median step and each rule's time per step side by side, the fastest in
bold, and per variant the rules it runs at least 5% faster than the main
install: which rules should take a CUDA C form or a strided launch by
default (GPUSIM_CUDA_C, GPUSIM_CUDA_GRID).  With ``--best`` it prints instead
the settings that run each rule in its fastest form among the variants whose
equality run (``equality-NAME.json``) matched the CPU
(``gputools.variants.best_settings``), which gpu_check.sh then times as the
variant ``best``.
"""

import argparse
import json
import sys
from pathlib import Path


def _equal(path):
    """Whether benchmarks/gpu_equality.py's JSON at ``path`` says the GPU matched the CPU (not if cut short)."""
    try:
        return json.loads(path.read_text()).get("equal") is True
    except ValueError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the GPU check's output folder")
    parser.add_argument("--record", help="also write the comparison to this Markdown file")
    parser.add_argument("--best", action="store_true",
                        help="print instead the settings that run each rule in its fastest form, joined by + (nothing "
                             "when that is how the main run ran)")
    args = parser.parse_args()
    import gputools.variants as variants

    reports = {"main": []}
    for path in sorted(args.out.glob("bench-*.json")):
        reports["main"] += json.loads(path.read_text())["rows"]
    for path in sorted(args.out.glob("variant-*.json")):
        if not path.stem.endswith(".md"):  # not an equality report on its way into variant-NAME.md
            reports[path.stem[len("variant-"):]] = json.loads(path.read_text())["rows"]
    if not reports["main"] or len(reports) < 2:
        sys.exit(f"{args.out}: no main run (bench-*.json) or no variant (variant-*.json) to compare")
    if args.best:
        equal = {path.stem[len("equality-"):] for path in args.out.glob("equality-*.json") if _equal(path)}
        best = variants.best_settings(reports, equal)
        main_run = variants.best_settings({"main": reports["main"]}, set())
        if best != main_run:
            print("+".join(f"{variable}={value}" for variable, value in best.items()))
        return
    table = variants.compare(reports)
    if not table:
        sys.exit(f"{args.out}: no variant ran at a size the main run did")
    print(table)
    if args.record:
        Path(args.record).write_text(table + "\n")


if __name__ == "__main__":
    main()
