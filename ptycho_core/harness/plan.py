"""Planning a comparison: which generators run, with which options and budget, into which
folders, and which finished runs can be reused (docs/design.md#compare, resume).

Nothing here imports numpy or a framework.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ptycho_core import __version__, rundir
from ptycho_core.errors import UsageError
from ptycho_core.generator import TrainConfig, train_settings
from ptycho_core.registry import GeneratorSpec, Registry


@dataclass
class RunPlan:
    """One (generator, seed): its folder name, resolved options, TrainConfig and input hash."""

    name: str
    label: str
    spec: GeneratorSpec
    options: dict
    seed: int
    config: TrainConfig
    hash: str = ""
    reuse: bool = False
    reason: str = ""


@dataclass
class Selection:
    """What a request selects, checked against the registry before any data is touched.

    specs: generators to run; skipped: [{generator, reason}]; explicit: generators were named;
    option_values: typed options by `spec.qualified_name`; stitcher / stitch_options: the stitcher and its
    typed options; train: explicit TrainConfig values; base_config: TrainConfig from `train` alone
    (the split's seed and val_fraction, provenance).
    """

    specs: list[GeneratorSpec]
    skipped: list[dict]
    explicit: bool
    option_values: dict
    stitcher: object
    stitch_options: dict
    train: dict
    base_config: TrainConfig


def select(request, registry: Registry) -> Selection:
    """Check a CompareRequest's usage against the registry; raise UsageError before any work."""
    request.check()
    fields = {s.field for s in train_settings()}
    base_config = TrainConfig(**{k: v for k, v in request.train.items() if k in fields})
    specs, skipped, explicit = select_generators(registry, request.generators)
    stitcher = registry.stitcher(request.stitcher)
    if not stitcher.available:
        raise UsageError(f"stitcher {request.stitcher!r} is {stitcher.status()}")
    option_values, stitch_options = resolve_compare_options(request.options, specs, registry, stitcher)
    for spec in specs:
        spec.train_config(request.train)  # a bad value, or an engine setting it lacks, fails here: before any work
    return Selection(
        specs, skipped, explicit, option_values, stitcher, stitch_options, dict(request.train), base_config
    )


def select_generators(registry: Registry, names) -> tuple[list[GeneratorSpec], list[dict], bool]:
    """(specs to run, skipped [{generator, reason}], explicit?) for `names` (list, "a,b" or None).

    Named generators that are unknown or unavailable raise UsageError listing what is installed;
    with no names every available generator (learned and iterative) runs and the rest are skipped.
    """
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    names = list(names or [])
    installed = registry.generators()
    if not names:
        specs, skipped = [], []
        for spec in installed:
            shown = display_name(spec, registry)
            if not spec.available:
                skipped.append({"generator": shown, "reason": spec.status()})
            else:
                specs.append(spec)
        return specs, skipped, False
    specs = []
    for name in names:
        spec = registry.generator(name)
        if not spec.available:
            usable = ", ".join(display_name(s, registry) for s in installed if s.available) or "none"
            raise UsageError(f"generator {name!r} is {spec.status()} (available: {usable})")
        if spec not in specs:
            specs.append(spec)
    return specs, [], True


def parse_option_args(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """["NAME.key=value", ...] -> {NAME: {key: "value"}} (typing happens against the spec)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        left, sep, value = str(item).partition("=")
        name, dot, key = left.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise UsageError(f"--option expects NAME.KEY=VALUE (e.g. fno.width=16), got {item!r}")
        out.setdefault(name, {})[key] = value.strip()
    return out


def resolve_compare_options(options, specs, registry: Registry, stitcher_spec) -> tuple[dict, dict]:
    """Typed options per generator (by spec name) and for the stitcher, unknown keys rejected."""
    if options is None:
        given = {}
    elif isinstance(options, Mapping):
        given = {str(k): dict(v) for k, v in options.items()}
    else:
        given = parse_option_args(options)
    per_spec: dict[int, dict] = {}
    stitch_options: dict = {}
    for name, values in given.items():
        target = next((s for s in specs if name in (s.name, s.qualified_name)), None)
        if target is None and name in (stitcher_spec.name, stitcher_spec.qualified_name):
            stitch_options.update({k: v for k, v in stitcher_spec.resolve_options(values).items() if k in values})
            continue
        if target is None:
            compared = ", ".join(s.name for s in specs)
            raise UsageError(f"--option {name}.*: {name!r} is not a generator being compared ({compared})")
        per_spec.setdefault(target.qualified_name, {}).update(values)
    resolved = {spec.qualified_name: spec.resolve_options(per_spec.get(spec.qualified_name, {})) for spec in specs}
    return resolved, stitch_options


def drop_supervised(specs, skipped: list[dict], explicit: bool, has_ground_truth: bool) -> list[GeneratorSpec]:
    """Without ground truth, supervised generators cannot train: an error when named explicitly,
    otherwise skipped. Returns the specs that can run; raises UsageError when none can."""
    if has_ground_truth:
        return list(specs)
    keep = []
    for spec in specs:
        if not spec.supervised:
            keep.append(spec)
        elif explicit:
            raise UsageError(
                f"generator {spec.name!r} is supervised and the training data has no ground-truth object; "
                "choose unsupervised generators or give data with an object"
            )
        else:
            skipped.append({"generator": spec.name, "reason": "supervised: the data has no ground truth"})
    return keep


def require_some(specs, registry: Registry) -> None:
    if not specs:
        available = ", ".join(s.name for s in registry.generators() if s.available) or "none"
        raise UsageError(f"no generator to run (available: {available}); see `ptycho list-generators`")


def make_plans(specs, option_values: dict, train: dict, seeds: int) -> list[RunPlan]:
    """One RunPlan per (generator, seed); folder names `<name>` or `<name>-seed<k>` (k = the seed).

    Each generator's TrainConfig: `train` (explicit values) over its spec's train_defaults over
    TrainConfig's defaults; the seed of run k is the base seed + k.
    """
    bare = [s.name for s in specs]
    plans = []
    for spec in specs:
        label = spec.name if bare.count(spec.name) == 1 else f"{spec.distribution}-{spec.name}"
        label = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
        base = spec.train_config(train)
        for k in range(seeds):
            s = base.seed + k
            name = label if seeds == 1 else f"{label}-seed{s}"
            config = dataclasses.replace(base, seed=s)
            plans.append(
                RunPlan(
                    name=name, label=label, spec=spec, options=option_values[spec.qualified_name], seed=s, config=config
                )
            )
    return plans


def run_hash(plan: RunPlan, fingerprint: str, prepared_hash: str, split_info: dict) -> str:
    """sha256 over everything a run's result depends on (docs/design.md#compare, resume)."""
    payload = {
        "data": fingerprint,
        "prepared": prepared_hash,
        "split": split_info,
        "generator": {
            "name": plan.spec.name,
            "distribution": plan.spec.distribution,
            "factory": plan.spec.factory,
            "framework": plan.spec.framework,
            "supervised": plan.spec.supervised,
        },
        "options": plan.options,
        "versions": {"ptycho": __version__, "plugin": plan.spec.version},
        "train_config": _budget(plan),
    }
    return sha256(json.dumps(payload, sort_keys=True, default=str))


#: The TrainConfig fields an iterative generator uses: the training budget does not change its run.
ITERATIVE_SETTINGS = ("seed", "device", "timeout")


def _budget(plan: RunPlan) -> dict:
    config = plan.config.to_dict()
    return config if plan.spec.kind == "learned" else {k: config[k] for k in ITERATIVE_SETTINGS}


def resume_decision(run_dir: Path, expected_hash: str, force: bool) -> tuple[bool, str]:
    """(reuse?, reason): reuse only a folder with DONE whose run.json hash matches."""
    if force:
        return False, "--force" if run_dir.exists() else "new"
    if not run_dir.exists():
        return False, "new"
    record = rundir.RunRecord.read(run_dir) or rundir.RunRecord(name="", hash="", status="")
    if not (run_dir / rundir.DONE).is_file():
        if record.status == "failed":
            return False, f"the previous attempt failed: {record.reason or 'unknown'}"
        return False, "the previous attempt did not finish (no DONE marker)"
    if record.hash != expected_hash:
        return False, "inputs changed since the finished run (data, split, options, versions or budget)"
    if not (run_dir / rundir.RECON_NPZ).is_file():
        return False, f"{rundir.RECON_NPZ} is missing"
    return True, "finished with the same inputs"


def display_name(spec: GeneratorSpec, registry: Registry) -> str:
    """A generator's name in tables: bare unless two plugins registered it."""
    return spec.name if spec.name not in registry.duplicates("generator") else spec.qualified_name


def sha256(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
