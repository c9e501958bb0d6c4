"""Sweeps: a comparison over a grid of generator options (`ptycho sweep`).

`--option fno.width=16,32,64 --option fno.modes=8,12` is a grid: every combination of the listed
values is one setting of the generator, and every setting runs `seeds` times on the comparison's
one dataset, split and budget. Each setting is a row of the report, named `fno[width=16,modes=8]`
(only the swept keys appear), its runs in folders `runs/fno_width=16_modes=8[-seedK]/`. A sweep
is a `CompareRequest` with a `grid`: planning, resume by hash, the executor, scoring and the report
are the comparison's own (`harness.compare.run`), so they behave exactly as for `ptycho compare`,
and whatever records a comparison (the results store) records a sweep with one record per
setting and seed.

Nothing here imports numpy or a framework.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

from ptycho_core.errors import UsageError
from ptycho_core.harness.plan import parse_option_args


def split_grid(items: Iterable[str]) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """`--option` items -> (fixed items "NAME.key=value", grid {NAME: {key: [value, ...]}}).

    An item whose value holds a comma is a grid axis ("16,32,64"); the others are fixed options
    (also the stitcher's). Empty or repeated values are a UsageError.
    """
    fixed, grid = [], {}
    for item in items:
        parsed = parse_option_args([item])
        ((name, values),) = parsed.items()
        ((key, text),) = values.items()
        if "," not in text:
            fixed.append(item)
            continue
        axis = [part.strip() for part in text.split(",")]
        if any(not value for value in axis) or len(set(axis)) != len(axis):
            raise UsageError(f"--option {name}.{key}: expected distinct comma-separated values, got {text!r}")
        grid.setdefault(name, {})[key] = axis
    return fixed, grid


def variants(grid, selection) -> dict[str, list[tuple[str, dict]]]:
    """{spec.qualified_name: [("key=value,...", typed options), ...]} for the generators a grid sweeps ({} for
    no grid). Each combination is typed and checked by the spec's declared options, over the
    comparison's fixed options, before any work; a grid naming a generator that is not being
    compared, or an unknown key, is a UsageError."""
    if not grid:
        return {}
    out = {}
    for name, axes in grid.items():
        spec = next((s for s in selection.specs if name in (s.name, s.qualified_name)), None)
        if spec is None:
            compared = ", ".join(s.name for s in selection.specs)
            raise UsageError(f"--option {name}.*: {name!r} is not a generator being swept ({compared})")
        keys = list(axes)
        rows = []
        for combination in itertools.product(*(axes[k] for k in keys)):
            given = dict(zip(keys, combination, strict=True))
            options = spec.resolve_options({**selection.option_values[spec.qualified_name], **given})
            rows.append((",".join(f"{k}={v}" for k, v in given.items()), options))
        out[spec.qualified_name] = rows
    return out


def expand(plans: list, variants: dict) -> list:
    """Each (generator, seed) RunPlan once per setting of its generator in `variants` (the others
    unchanged): label `fno[width=16]` (the row), name `fno_width=16[-seedK]` (the folder)."""
    if not variants:
        return plans
    out = []
    for plan in plans:
        if plan.spec.qualified_name not in variants:
            out.append(plan)
            continue
        suffix = plan.name[len(plan.label) :]  # "" or "-seedK"
        for setting, options in variants[plan.spec.qualified_name]:
            folder = "".join(c if c.isalnum() or c in "-_.=" else "-" for c in setting.replace(",", "_"))
            out.append(
                dataclasses.replace(
                    plan, label=f"{plan.label}[{setting}]", name=f"{plan.label}_{folder}{suffix}", options=options
                )
            )
    return _setting_major(out)


def _setting_major(plans: list) -> list:
    """Runs grouped by row (setting), seeds in order within each: the report's row order."""
    order = {}
    for plan in plans:
        order.setdefault(plan.label, len(order))
    return sorted(plans, key=lambda p: order[p.label])
