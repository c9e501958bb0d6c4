"""The comparison folder's layout, its atomic writes, and the typed records stored in it.

    DIR/
      data/                 the split and groups, written once (`harness.prepared`)
      data-probe/           on measured data: the same, staged with the source row's refined probe
                            for the learned rows (`harness.probe`)
      runs/<name>/          one (generator, seed): DONE, run.json, run.log, history.json, recon.npz,
                            probe.npy, positions.npy, model/, and after scoring metrics.json, object.npz
      runs/.<name>.partial  a run being written; renamed to runs/<name>/ when complete
      metrics.csv, metrics.json, comparison.png, frc.png, training.png, report.html

Every file is written atomically (a temporary name in the same folder, then `os.replace`), and
every JSON file follows one rule: strict JSON, NaN and infinities become null, numpy scalars and
arrays become numbers and lists, paths become strings, keys keep their order.

`RunRecord` is a run's `run.json`; `Row` is a scored run, one line of the table; `Summary` is one
generator's line of `metrics.csv` (its seeds summarised). All are plain dataclasses with `to_dict`
/ `from_dict` (what a results store keeps); their numbers are a `metrics` dict keyed by
`ptycho_core.metric_registry`, spread into the files as top-level keys. Standard library only at
module level; numpy is imported by the functions that write arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptycho_core import metric_registry

DATA_DIR = "data"
RUNS_DIR = "runs"
DONE = "DONE"
RUN_JSON = "run.json"
ERROR_JSON = "error.json"
HISTORY_JSON = "history.json"
RECON_NPZ = "recon.npz"
RUN_LOG = "run.log"
MODEL_DIR = "model"
METRICS_JSON = "metrics.json"
OBJECT_NPZ = "object.npz"
#: The two interleaved half-sets' reconstructions (`ptycho_core.agreement`, half-set FRC).
HALVES_NPZ = "halves.npz"
PREPARED_JSON = "prepared.json"
#: Every finished run's final probe (complex64 (N, N)) and positions (float64 (n, 2), (y, x) on the
#: object grid, the frame of object.npz's `positions`): what its result goes with (issue 21).
PROBE_NPY = "probe.npy"
POSITIONS_NPY = "positions.npy"


@dataclass(frozen=True)
class Layout:
    """Paths inside one comparison folder."""

    out_dir: Path

    @property
    def data_dir(self) -> Path:
        return Path(self.out_dir) / DATA_DIR

    @property
    def runs_dir(self) -> Path:
        return Path(self.out_dir) / RUNS_DIR

    def run_dir(self, name: str) -> Path:
        return self.runs_dir / name

    def partial_dir(self, name: str) -> Path:
        return self.runs_dir / f".{name}.partial"


# --- atomic writes ---------------------------------------------------------------------------------


def atomic_path(path: Path) -> Path:
    """The temporary name `path` is written under before `os.replace` (same folder)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files (`atomic_path`) under `folder` whose writer process is gone (a
    process killed mid-write leaves one; no reader ever trusts it). Returns what was removed."""
    removed = []
    for path in Path(folder).rglob(".*.tmp*"):
        pid = path.name.rpartition(".tmp")[2]
        if not path.is_file() or not pid.isdigit() or _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def json_safe(obj):
    """`obj` as strict JSON data: NaN/inf -> None, numpy scalars/arrays -> numbers/lists, keys str."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return json_safe(obj.tolist())
    return obj


def dumps(payload) -> str:
    """The one JSON text format of every file ptycho writes (indent 2, strict, order kept)."""
    return json.dumps(json_safe(payload), indent=2, allow_nan=False, default=str) + "\n"


@contextlib.contextmanager
def atomic(path) -> Iterator[Path]:
    """Yield the temporary path to write `path` under; then `os.replace` it onto `path`.

    If writing or renaming fails the temporary file is deleted and `path` is untouched: a reader
    sees the old file or none, never half of one. As in sqlite's atomic commit, the new file's
    data reach the disk (fsync) before the rename makes it visible, so that a power cut cannot
    leave a complete name over incomplete content (a DONE before the files it vouches for).
    """
    path = Path(path)
    tmp = atomic_path(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path, payload) -> Path:
    """Write `payload` as strict JSON (see `json_safe`), atomically."""
    return write_text(path, dumps(payload))


def write_text(path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_json(path) -> dict:
    """A JSON object from `path`, or {} when the file is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_npz(path, digest=None, **arrays) -> Path:
    """Atomic np.savez (never pickled); optionally feed every array into a hashlib digest."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    path = Path(path)
    with atomic(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    if digest is not None:
        for key in sorted(arrays):
            a = np.ascontiguousarray(arrays[key])
            digest.update(f"{path.name}:{key}:{a.dtype.str}:{a.shape}".encode())
            digest.update(a.tobytes())
    return path


def write_npy(path, array) -> Path:
    """Atomic np.save of one array (never pickled)."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    path = Path(path)
    with atomic(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
    return path


def publish(partial: Path, final: Path) -> None:
    """Atomically replace `final` by `partial` (rename; an older `final` is moved aside first)."""
    partial, final = Path(partial), Path(final)
    if final.exists():
        trash = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, trash)
        os.replace(partial, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(partial, final)


def remove(path: Path) -> None:
    """Delete a folder so that no reader ever sees it half-deleted (rename first)."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.trash{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


# --- typed records -----------------------------------------------------------------------------------


def _from_dict(cls, data: dict, **extra):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names and k not in extra}, **extra)


def _flat(record) -> dict:
    """A record's fields with its `metrics` dict spread in place of it (keys as files store them)."""
    out = {}
    for f in dataclasses.fields(record):
        if f.name == "metrics":
            out.update(getattr(record, f.name))
        else:
            out[f.name] = getattr(record, f.name)
    return out


@dataclass
class RunRecord:
    """A run's `run.json`: what ran, with which inputs, how it ended and what it cost.

    status "ok" (then DONE exists) or "failed" with a one-line `reason`. `kind` is the generator's
    ("learned" or "iterative": no training, so no train_seconds), or "refined" (an iterative engine
    started from a learned run's object: its train_seconds are the learned run's, its
    reconstruct_seconds are start_seconds, the learned inference with the stitching and the start,
    plus refine_seconds, the engine's run). `metrics` holds the numbers the
    run records itself, the registry's `RECORDED` kinds (`ptycho_core.metric_registry`: costs such
    as train_seconds, reconstruct_seconds, peak_rss_mib, and how training ended); run.json stores
    them as top-level keys. `inference_batch` is the groups per timed predict call, `stopped` why
    training ended early; `started`/`finished` are Unix times; `hash` is the resume hash of its inputs.
    `probe_source` says which probe the result goes with (probe.npy): "data" (the data's, as
    given), "refined" (this run refined it) or "<ROW> (refined)" (the source row's, `harness.probe`);
    `positions_source`: "data" or "refined" (positions.npy).
    """

    name: str
    hash: str
    status: str = "ok"
    reason: str = ""
    exitcode: int | None = None
    generator: str = ""
    distribution: str = ""
    version: str = ""
    framework: str = ""
    factory: str = ""
    kind: str = "learned"
    options: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    stopped: str = ""
    inference_batch: int | None = None
    test_patterns: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    meta: dict = field(default_factory=dict)
    probe_source: str = "data"
    positions_source: str = "data"

    def to_dict(self) -> dict:
        return _flat(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        recorded = metric_registry.keys(metric_registry.RECORDED)
        metrics = {k: data[k] for k in recorded if k in data}
        return _from_dict(cls, {"name": "", "hash": "", **data}, metrics=metrics)

    @classmethod
    def read(cls, run_dir) -> RunRecord | None:
        """The run.json in `run_dir`, or None when there is none (or it is unreadable)."""
        data = read_json(Path(run_dir) / RUN_JSON)
        return cls.from_dict(data) if data else None


@dataclass
class Row:
    """One scored run: a line of the table before seeds are summarised.

    `metrics` holds its numbers by registry key (`ptycho_core.metric_registry`): the scores
    (`ptycho_core.metrics`, plain floats) and the numbers its run recorded (`add_costs`);
    `to_dict` flattens them into the row, as metrics.json's "runs" list stores it.
    """

    generator: str
    run: str
    seed: int = 0
    status: str = "ok"
    reason: str = ""
    reused: bool = False
    framework: str = ""
    plugin: str = ""
    version: str = ""
    run_dir: str = ""
    kind: str = "learned"
    inference_batch: int | None = None
    stopped: str = ""
    probe_source: str = ""
    positions_source: str = ""
    gpu: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fail(self, reason: str) -> Row:
        self.status, self.reason = "failed", reason
        return self

    def add_costs(self, record: RunRecord) -> None:
        """Take the numbers the run recorded, its batch, stop reason and GPU from its record."""
        self.metrics.update(record.metrics)
        self.inference_batch, self.stopped = record.inference_batch, record.stopped
        self.probe_source, self.positions_source = record.probe_source, record.positions_source
        self.gpu = (record.hardware or {}).get("gpu")

    def to_dict(self) -> dict:
        return _flat(self)

    @classmethod
    def from_dict(cls, data: dict) -> Row:
        names = {f.name for f in dataclasses.fields(cls)}
        metrics = {k: v for k, v in data.items() if k not in names}
        return _from_dict(cls, data, metrics=metrics)


@dataclass
class Summary:
    """One generator's row of `metrics.csv` and of metrics.json's "rows": its runs (one per seed)
    summarised by `report.summarise`.

    `metrics` holds, per registry key, the run's number (one seed) or the mean over the successful
    seeds; `std` the sample standard deviation per key (only with several seeds). `status` is "ok"
    or "failed: <reason>" ("failed k/K: ..." when some seeds succeeded). Read it like the dict it
    is written as: `summary["amp_ssim"]`, `summary.get("amp_ssim_std")`; `to_dict` is that dict.
    """

    generator: str
    status: str = "ok"
    framework: str | None = None
    kind: str = "learned"
    plugin: str | None = None
    version: str | None = None
    runs: int = 0
    ok_runs: int = 0
    reused: bool = False
    probe_source: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    std: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        """generator, the fields, status, then each metric followed by its `<key>_std` (file order)."""
        fields = [f.name for f in dataclasses.fields(self) if f.name not in ("status", "metrics", "std")]
        out = {name: getattr(self, name) for name in fields}
        out["status"] = self.status
        for key, value in self.metrics.items():
            out[key] = value
            if key in self.std:
                out[f"{key}_std"] = self.std[key]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Summary:
        names = {f.name for f in dataclasses.fields(cls)}
        std = {k[: -len("_std")]: v for k, v in data.items() if k.endswith("_std") and k not in names}
        metrics = {k: v for k, v in data.items() if k not in names and not (k.endswith("_std") and k[:-4] in std)}
        return _from_dict(cls, data, metrics=metrics, std=std)

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def get(self, key: str, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING


_MISSING = object()
