"""Where a comparison's data come from: files, `Dataset` objects or a simulation, and the split.

`load_data` returns the training and test datasets and a source record (a one-line description,
the kind, and for a spatial split its line, guard band and counts) for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ptycho_core.errors import DataError, UsageError
from ptycho_core.harness.plan import sha256
from ptycho_core.harness.request import SIMULATIONS
from ptycho_core.registry import Registry


@dataclass
class Staged:
    """The data of a comparison, split, grouped and written to `DIR/data/` once.

    fingerprint: sha256 of the train and test datasets; prepared_hash: of what was written;
    info: the groups' counts and scales (`pipeline.Prepared.info`); split_info: the split and
    grouping parameters that enter every run's hash.
    """

    train: object
    test: object
    source: dict
    info: dict
    split_info: dict
    fingerprint: str
    prepared_hash: str


def stage(train_ds, test_ds, source: dict, selection, gridsize: int, layout) -> Staged:
    """Group the data once for every generator and write it for the children."""
    from ptycho_core import pipeline  # lazy: loaded when listing; the target imports numpy
    from ptycho_core.harness.prepared import save_prepared  # lazy: loaded when listing; the target imports numpy

    config = selection.base_config
    supervised = any(s.supervised for s in selection.specs)
    prepared = pipeline.prepare(train_ds, test_ds, gridsize, config.seed, config.val_fraction, supervised)
    layout.runs_dir.mkdir(parents=True, exist_ok=True)
    record = save_prepared(prepared, layout.data_dir)
    split_info = {**source.get("split", {}), **{k: v for k, v in prepared.info.items() if k != "grouping"}}
    fingerprint = sha256(train_ds.fingerprint(), test_ds.fingerprint())
    return Staged(train_ds, test_ds, source, prepared.info, split_info, fingerprint, record["hash"])


def load_data(data, test_data, simulate, registry: Registry):
    """(train Dataset, test Dataset, source record) for the compare options.

    source has "description" (one line), "kind" (simulate / files / split) and, for a spatial
    split, "split" (line, guard band, counts).
    """
    if test_data is not None and data is None:
        raise UsageError("--test-data needs --data (the training data)")
    if data is not None and simulate is not None:
        raise UsageError("give either --data or --simulate, not both")
    if data is None:
        return simulated(simulate)
    train, train_src = read(data, "training", registry)
    if test_data is not None:
        test, test_src = read(test_data, "test", registry)
        if test.patch_size != train.patch_size:
            raise DataError(
                f"{test_src}: patterns are {test.patch_size}x{test.patch_size}, the training data's "
                f"{train.patch_size}x{train.patch_size}"
            )
        desc = f"{train_src} ({train.n} patterns) / test {test_src} ({test.n} patterns)"
        return train, test, {"kind": "files", "description": desc, "data": train_src, "test_data": test_src}
    from ptycho_core.data import spatial_split  # lazy: loaded when listing; the target imports numpy

    train_part, test_part, split = spatial_split(train)
    desc = (
        f"{train_src} split along {split['axis']} at {split['line']:.1f} px with an N/2 guard band: "
        f"{split['train']} train / {split['test']} test patterns ({split['dropped']} dropped)"
    )
    return train_part, test_part, {"kind": "split", "description": desc, "data": train_src, "split": split}


def simulated(simulate):
    """Train and test datasets simulated with DEFAULT_SIM (or `simulate`: an object name or a SimConfig)."""
    from ptycho_core import simulate as sim  # lazy: loaded when listing; the target imports numpy

    cfg = simulate
    if cfg is None:
        cfg = sim.DEFAULT_SIM
    elif isinstance(cfg, str):
        if cfg not in SIMULATIONS:
            raise UsageError(f"--simulate must be one of {', '.join(SIMULATIONS)}, not {cfg!r}")
        cfg = sim.DEFAULT_SIM.replace(object=cfg)
    train, test = sim.simulate_pair(cfg)
    default = " (DEFAULT_SIM)" if cfg == sim.DEFAULT_SIM.replace(object=cfg.object) else ""
    side = f"{cfg.object_size}x{cfg.object_size}"
    desc = (
        f"simulated {cfg.object} data{default}: N={cfg.patch_size}, {cfg.train_objects} training + 1 test "
        f"{side} objects, {cfg.probe} probe, {cfg.phase} phase, {cfg.nphotons:g} photons, step {cfg.step:g}, "
        f"{train.n} train / {test.n} test patterns"
    )
    return train, test, {"kind": "simulate", "description": desc, "simulation": cfg.to_dict()}


def read(item, role: str, registry: Registry):
    """(Dataset, source text) from a file path, a `ptycho_core.io.DataFile` or a `Dataset` object."""
    from ptycho_core.data import Dataset  # lazy: loaded when listing; the target imports numpy

    if isinstance(item, Dataset):
        return item.validate(source=f"{role} dataset"), f"<{role} dataset>"
    from ptycho_core.io import DataFile, load_dataset  # lazy: loaded when listing; the target imports numpy

    path = Path(str(item))
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return load_dataset(item if isinstance(item, DataFile) else str(path), registry), str(path)
