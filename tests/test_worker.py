"""The compare child's work, called in-process (no spawn): data exchange, atomic publication,
failure reasons."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from ptycho_core import errors, pipeline, rundir
from ptycho_core.generator import TrainConfig
from ptycho_core.harness import worker
from ptycho_core.harness.prepared import load_prepared, save_prepared
from ptycho_core.registry import spec_as_dict
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=40, step=4)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    train, test = simulate_pair(TINY)
    prepared = pipeline.prepare(train, test, gridsize=2, seed=0, val_fraction=0.2, supervised=True)
    directory = tmp_path_factory.mktemp("data")
    record = save_prepared(prepared, directory)
    return directory, prepared, record


def _job(tmp_path, data_dir, name):
    spec = next(s for s in dummies.specs() if s.name == name)
    return {
        "name": name,
        "spec": spec_as_dict(spec),
        "options": spec.resolve_options({}),
        "train_config": TrainConfig(epochs=2).to_dict(),
        "data_dir": str(data_dir),
        "partial_dir": str(tmp_path / f".{name}.partial"),
        "run_dir": str(tmp_path / name),
        "hash": "abc123",
        "threads": 1,
    }


def test_prepared_data_round_trip_keeps_ground_truth_from_unsupervised_generators(data_dir):
    directory, prepared, record = data_dir
    assert len(record["hash"]) == 64
    unsupervised = load_prepared(directory, supervised=False)
    supervised = load_prepared(directory, supervised=True)
    assert unsupervised.train.gt_patches is None and unsupervised.val.gt_patches is None
    np.testing.assert_array_equal(supervised.train.gt_patches, prepared.train.gt_patches)
    for role in ("train", "val"):
        a, b = getattr(prepared, role), getattr(unsupervised, role)
        for key in ("diffraction", "positions", "offsets", "probe"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert (a.input_scale, a.s0, a.canvas_size) == (b.input_scale, b.s0, b.canvas_size)
    np.testing.assert_array_equal(unsupervised.test_groups.indices, prepared.test_groups.indices)
    np.testing.assert_array_equal(unsupervised.test.diffraction, prepared.test.diffraction)
    assert unsupervised.test.object is None, "children never see the test ground truth"
    assert unsupervised.gridsize == 2 and unsupervised.info == json.loads(json.dumps(prepared.info))


def test_saving_the_same_prepared_data_gives_the_same_hash(data_dir, tmp_path):
    directory, prepared, record = data_dir
    assert save_prepared(prepared, tmp_path)["hash"] == record["hash"]


def test_adding_a_supervised_generator_keeps_the_data_hash(data_dir, tmp_path):
    # Otherwise every finished unsupervised run would be redone when a supervised one joins.
    _, prepared, record = data_dir
    train, test = simulate_pair(TINY)
    unsupervised = pipeline.prepare(train, test, gridsize=2, seed=0, val_fraction=0.2, supervised=False)
    assert save_prepared(unsupervised, tmp_path)["hash"] == record["hash"]
    assert not (tmp_path / "train_gt.npz").exists()


def test_execute_publishes_the_run_folder_with_done_written_last(data_dir, tmp_path, monkeypatch):
    directory, _, _ = data_dir
    job = _job(tmp_path, directory, "dummy_intensity")
    seen = {}
    publish = rundir.publish

    def spy(partial, final):
        seen["partial"] = sorted(p.name for p in partial.iterdir())
        seen["final_existed"] = final.exists()
        seen["done_is_newest"] = (partial / "DONE").stat().st_mtime_ns >= max(
            p.stat().st_mtime_ns for p in partial.iterdir()
        )
        publish(partial, final)

    monkeypatch.setattr(rundir, "publish", spy)
    record = worker.execute(job)
    final = tmp_path / "dummy_intensity"
    assert seen == {
        "partial": ["DONE", "history.json", "model", "recon.npz", "run.json"],
        "final_existed": False,
        "done_is_newest": True,
    }
    assert not (tmp_path / ".dummy_intensity.partial").exists()
    assert (final / "DONE").read_text().strip() == "abc123"
    run = json.loads((final / "run.json").read_text())
    assert run["hash"] == "abc123" and run["status"] == "ok" and record.status == "ok"
    assert run["parameters"] == 1 and run["peak_rss_mib"] > 0 and run["inference_patterns_per_s"] > 0
    with np.load(final / "recon.npz", allow_pickle=False) as z:
        assert z["patches"].shape == (run["test_patterns"], 16, 16) and z["patches"].dtype == np.complex64
    assert json.loads((final / "model" / "config.json").read_text())["generator"] == "dummy_intensity"
    assert len(json.loads((final / "history.json").read_text())["loss"]) == 2


def test_publish_replaces_an_older_run_folder(tmp_path):
    old, new = tmp_path / "run", tmp_path / ".run.partial"
    old.mkdir()
    (old / "stale").write_text("x")
    new.mkdir()
    (new / "DONE").write_text("h")
    rundir.publish(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["DONE"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failing_fit_raises_and_publishes_nothing(data_dir, tmp_path):
    directory, _, _ = data_dir
    with pytest.raises(RuntimeError, match="dummy failure in fit"):
        worker.execute(_job(tmp_path, directory, "dummy_raising"))
    assert not (tmp_path / "dummy_raising").exists()
    assert not (tmp_path / ".dummy_raising.partial" / "DONE").exists()


def test_non_finite_loss_fails_the_run_with_the_history_reason(data_dir, tmp_path):
    directory, _, _ = data_dir
    with pytest.raises(errors.RunFailed, match="non-finite loss at epoch 1"):
        worker.execute(_job(tmp_path, directory, "dummy_nan"))
    history = json.loads((tmp_path / ".dummy_nan.partial" / "history.json").read_text())
    assert history["loss"] == [None], "NaN is written as null: strict JSON"


def test_failure_reasons_name_the_cause():
    assert errors.failure_reason(MemoryError("big")) == "out of memory (MemoryError: big)"
    assert errors.failure_reason(ValueError("bad\nmore")) == "ValueError: bad"
    assert errors.failure_reason(errors.RunFailed("non-finite loss at epoch 2")) == "non-finite loss at epoch 2"
    assert worker.exit_reason(-signal.SIGKILL) == "killed by SIGKILL (out of memory?)"
    assert worker.exit_reason(-signal.SIGTERM) == "killed by SIGTERM"
    assert worker.exit_reason(3) == "child process exited with code 3"


def test_progress_is_throttled_but_every_epoch_end_passes():
    events = []
    progress = worker._throttled(events.append)
    for step in range(1, 101):
        progress({"epoch": 1, "epochs": 2, "step": step, "steps": 100, "loss": float("nan"), "val_loss": None})
    assert 1 <= len(events) <= 3
    assert events[-1]["step"] == 100 and events[-1]["loss"] is None
