"""The GPU check's variants against its main run: per-rule times side by side, and the settings that run every
rule in its fastest form (benchmarks/compare_variants.py)."""


FASTER = 0.95  # a variant runs a rule faster where it takes at most this share of the reference's time


def _at_size(reports, names, lattice):
    """``{name: its row of the size with lattice edge ``lattice``}`` for those of ``names`` that ran it."""
    found = {name: next((row for row in reports[name] if row["lattice"] == lattice), None) for name in names}
    return {name: row for name, row in found.items() if row is not None}


def compare(reports):
    """Per-rule times of runs of the same scenario side by side: ``reports`` is ``{name: rows of run()}`` (the
    first the reference, e.g. the GPU check's main run, the others its variants), compared size by size (by
    lattice edge). Returns markdown: per size, the median step and every rule's time per step in each, the
    fastest in bold, and per variant the rules it runs at least 5% faster than the reference."""
    names = list(reports)
    reference = names[0]
    lines = []
    for row in reports[reference]:
        edge = row["lattice"]
        same = _at_size(reports, names, edge)
        present = list(same)
        if len(present) < 2:
            continue
        lines += [f"### {row['agents']:,.0f} agents ({edge}³): {', '.join(present)}", "",
                  "| | " + " | ".join(f"{name}: {same[name]['backend']}" for name in present) + " |",
                  "|---|" + "---:|" * len(present)]

        def line(label, values):
            best = min(v for v in values if v is not None)
            return f"| {label} | " + " | ".join(
                "-" if v is None else (f"**{v:.2f}**" if v == best else f"{v:.2f}") for v in values) + " |"

        lines.append(line("median step (ms)", [same[name]["median_step_ms"] for name in present]))
        rules = sorted({rule for name in present for rule in (same[name]["rules_ms"] or {})},
                       key=lambda rule: (-(same[reference]["rules_ms"] or {}).get(rule, 0.0), rule))
        for rule in rules:
            lines.append(line(rule, [(same[name]["rules_ms"] or {}).get(rule) for name in present]))
        lines.append("")
        base = same[reference]["rules_ms"] or {}
        for name in present[1:]:
            theirs = same[name]["rules_ms"] or {}
            faster = [rule for rule in rules if rule in base and rule in theirs and theirs[rule] <= FASTER * base[rule]]
            lines.append(f"{name}: {same[name]['median_step_ms']:.2f} ms a step against {row['median_step_ms']:.2f}; "
                         f"at least 5% faster in {', '.join(faster) or 'no rule'}.")
        lines.append("")
    return "\n".join(lines)


def best_settings(reports, equal, margin=FASTER):
    """The GPU settings that run every rule in the fastest form the GPU check timed: ``reports`` as for
    :func:`compare` (the main run first, rows with the forms each rule ran in), ``equal`` the variants whose
    equality run matched the CPU (no other is chosen).  A rule takes a variant's form (CUDA C, or strided) where
    that variant ran it at least ``1 - margin`` faster than the main run at the same size, the fastest such;
    direct launches where a variant with them took a median step that much shorter.  Returns
    ``{variable: value}`` for GPUSIM_CUDA_C, GPUSIM_CUDA_GRID and GPUSIM_CUDA_DIRECT, each explicit ("0" for
    none), so that the defaults do not add to it."""
    names = list(reports)
    cuda_c, strided, direct = set(), set(), False
    for row in reports[names[0]]:
        cuda_c |= set(row.get("cuda_c", ()))  # the main run's own forms stand unless a variant beats them
        strided |= set(row.get("strided", ()))
        direct |= bool(row.get("direct"))
        same = _at_size(reports, [name for name in names[1:] if name in equal], row["lattice"])
        for rule, main_ms in (row["rules_ms"] or {}).items():
            timed = [(other["rules_ms"][rule], name) for name, other in same.items()
                     if rule in (other["rules_ms"] or {}) and other["rules_ms"][rule] <= margin * main_ms]
            if not timed:
                continue
            fastest = same[min(timed)[1]]
            cuda_c.discard(rule)
            strided.discard(rule)
            if rule in fastest.get("cuda_c", ()):
                cuda_c.add(rule)
            elif rule in fastest.get("strided", ()):
                strided.add(rule)
        direct |= any(other.get("direct") and other["median_step_ms"] <= margin * row["median_step_ms"]
                      for other in same.values())
    return {"GPUSIM_CUDA_C": ",".join(sorted(cuda_c)) or "0", "GPUSIM_CUDA_GRID": ",".join(sorted(strided)) or "0",
            "GPUSIM_CUDA_DIRECT": "1" if direct else "0"}
