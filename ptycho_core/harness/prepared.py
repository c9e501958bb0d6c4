"""The data exchange between a comparison and its children: the split and groups, written once
to `DIR/data/` as plain `.npz` files (`allow_pickle=False`) and one JSON record.

Ground-truth patches go to separate files read only by supervised generators; the test object is
never written (children never see test ground truth).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from ptycho_core.data import Dataset, Groups
from ptycho_core.generator import TrainingSet
from ptycho_core.pipeline import Prepared
from ptycho_core.rundir import PREPARED_JSON, write_json, write_npz


def save_prepared(prepared, directory) -> dict:
    """Write a `pipeline.Prepared` to `directory` (train/val/test .npz + prepared.json), atomically
    per file. Ground-truth patches go to separate files read only by supervised generators; the
    test object is not written (children never see test ground truth).

    Returns the JSON record (it includes a content hash of everything written: `hash`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    record: dict = {"gridsize": prepared.gridsize, "info": prepared.info, "sets": {}}
    flags: dict = {}
    for role in ("train", "val"):
        ts = getattr(prepared, role)
        arrays, scalars, gt = {}, {}, None
        for f in dataclasses.fields(ts):
            value = getattr(ts, f.name)
            if f.name == "gt_patches":
                gt = value
            elif isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif value is not None:
                scalars[f.name] = value
        write_npz(directory / f"{role}.npz", digest=digest, **arrays)
        # Ground-truth patches are derived from the object (already in the data fingerprint): they
        # stay out of the hash, so adding a supervised generator does not invalidate other runs.
        if gt is not None:
            write_npz(directory / f"{role}_gt.npz", gt_patches=gt)
        else:
            (directory / f"{role}_gt.npz").unlink(missing_ok=True)
        record["sets"][role] = {"scalars": scalars}
        flags[role] = gt is not None
    test, groups = prepared.test, prepared.test_groups
    test_arrays = {"diffraction": test.diffraction, "positions": test.positions, "probe": test.probe}
    if test.mask is not None:
        test_arrays["mask"] = test.mask
    test_arrays.update(
        {"group_indices": groups.indices, "group_positions": groups.positions, "group_offsets": groups.offsets}
    )
    write_npz(directory / "test.npz", digest=digest, **test_arrays)
    record["test_metadata"] = test.metadata
    digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    record["hash"] = digest.hexdigest()
    record["ground_truth"] = flags
    # The test object's grid (not the object): iterative generators reconstruct on it. Derived from
    # the object, which the data fingerprint already covers, so it stays out of the hash.
    record["test_object_shape"] = None if test.object_shape is None else list(test.object_shape)
    write_json(directory / PREPARED_JSON, record)
    return record


def load_prepared(directory, supervised: bool = False):
    """Read what `save_prepared` wrote back into a `pipeline.Prepared`.

    Ground-truth patches are loaded only when `supervised` (PINNs never see ground truth).
    """
    directory = Path(directory)
    record = json.loads((directory / PREPARED_JSON).read_text())
    sets = {}
    for role in ("train", "val"):
        with np.load(directory / f"{role}.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        gt = None
        if supervised and record["ground_truth"][role]:
            with np.load(directory / f"{role}_gt.npz", allow_pickle=False) as z:
                gt = z["gt_patches"]
        sets[role] = TrainingSet(**arrays, **record["sets"][role]["scalars"], gt_patches=gt)
    with np.load(directory / "test.npz", allow_pickle=False) as z:
        t = {k: z[k] for k in z.files}
    test = Dataset(
        diffraction=t["diffraction"],
        positions=t["positions"],
        probe=t["probe"],
        mask=t.get("mask"),
        metadata=dict(record.get("test_metadata") or {}),
        object_shape=record.get("test_object_shape") or None,
    )
    groups = Groups(indices=t["group_indices"], positions=t["group_positions"], offsets=t["group_offsets"])
    return Prepared(
        train=sets["train"],
        val=sets["val"],
        test=test,
        test_groups=groups,
        gridsize=record["gridsize"],
        info=record["info"],
    )
