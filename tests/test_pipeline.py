"""The shared train / checkpoint / predict path (ptycho_core.pipeline)."""

import json

import numpy as np
import pytest

from ptycho_core import pipeline
from ptycho_core.errors import DataError, UsageError
from ptycho_core.generator import History, TrainConfig
from ptycho_core.registry import GeneratorSpec, Option
from ptycho_core.simulate import SimConfig, simulate_pair

TINY = SimConfig(train_objects=1, patch_size=16, object_size=40, step=4)


class ScaleGenerator:
    """Predicts a flat patch of one learned amplitude: enough to exercise the pipeline."""

    def __init__(self, phase: float = 0.0):
        self.phase = phase
        self.amplitude = None

    def fit(self, train, val, config, progress):
        self.amplitude = float(train.s0)
        progress({"epoch": 1, "epochs": 1, "step": 1, "steps": 1, "loss": 1.0, "val_loss": None})
        return History(loss=[1.0], val_loss=[1.0], lr=[config.lr], seconds=[0.0])

    def predict(self, diffraction, offsets):
        value = self.amplitude * np.exp(1j * self.phase)
        return np.full(diffraction.shape, value, dtype=np.complex64)

    def save(self, directory):
        (directory / "scale.json").write_text(json.dumps({"amplitude": self.amplitude}))

    def load(self, directory):
        self.amplitude = json.loads((directory / "scale.json").read_text())["amplitude"]


def build_scale(phase: float = 0.0):
    return ScaleGenerator(phase)


SPEC = GeneratorSpec(
    name="scale",
    summary="flat patches",
    factory="test_pipeline:build_scale",
    options={"phase": Option("float", 0.0, "constant phase")},
    distribution="tests",
    version="0",
)


@pytest.fixture(scope="module")
def pair():
    return simulate_pair(TINY)


def test_prepare_groups_scales_and_validation_split(pair):
    train, test = pair
    prepared = pipeline.prepare(train, test, gridsize=2, seed=3, val_fraction=0.2)
    assert prepared.train.diffraction.shape[1:] == (4, 16, 16)
    assert prepared.train.n_groups + prepared.val.n_groups == train.n
    assert prepared.val.n_groups == round(0.2 * train.n)
    assert prepared.test_groups.n_groups == test.n
    assert np.all(prepared.test_groups.indices[:, 0] == np.arange(test.n))
    assert prepared.train.gt_patches is None  # PINNs never see ground truth
    r = np.sqrt(np.mean(train.diffraction.astype(np.float64) ** 2))
    assert prepared.train.input_scale == pytest.approx(1 / r)
    assert prepared.info["canvas_size"] >= 16 + 2
    again = pipeline.prepare(train, test, gridsize=2, seed=3, val_fraction=0.2)
    np.testing.assert_array_equal(again.train.positions, prepared.train.positions)


def test_prepare_supervised_needs_ground_truth(pair):
    train, _ = pair
    supervised = pipeline.prepare(train, gridsize=1, supervised=True)
    np.testing.assert_allclose(
        supervised.train.gt_patches[:, 0], train.gt_patches(supervised.train.positions[:, 0]), atol=1e-6
    )
    no_truth = train.subset(np.arange(train.n))
    no_truth.object = None
    with pytest.raises(DataError, match="ground truth"):
        pipeline.prepare(no_truth, supervised=True)


def test_checkpoint_round_trip_and_refusals(pair, tmp_path):
    train, test = pair
    prepared = pipeline.prepare(train, test)
    gen, history = pipeline.fit_generator(SPEC, {"phase": "0.5"}, prepared, TrainConfig(epochs=1), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["generator"] == "scale" and config["options"] == {"phase": 0.5}
    assert config["format_version"] == pipeline.CHECKPOINT_FORMAT
    assert config["plugin"] == {"distribution": "tests", "version": "0"}
    numbers = pipeline.training_numbers(history, tmp_path / "m")  # what `ptycho train` and compare record
    assert numbers["train_seconds"] == config["training_seconds"] > 0 and numbers["epochs_run"] == 1
    assert numbers["final_loss"] == history.loss[-1]
    loaded, _ = pipeline.load_generator(tmp_path / "m")
    d = test.diffraction[prepared.test_groups.indices]
    np.testing.assert_array_equal(
        loaded.predict(d, prepared.test_groups.offsets), gen.predict(d, prepared.test_groups.offsets)
    )
    with pytest.raises(UsageError, match="not 'other'"):
        pipeline.load_generator(tmp_path / "m", expected_generator="other")
    config["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="format_version"):
        pipeline.load_generator(tmp_path / "m")
    with pytest.raises(UsageError, match="not a ptycho checkpoint"):
        pipeline.load_generator(tmp_path)


def test_unknown_option_is_refused_before_training(pair, tmp_path):
    prepared = pipeline.prepare(pair[0])
    with pytest.raises(UsageError, match="unknown option"):
        pipeline.fit_generator(SPEC, {"width": "3"}, prepared, TrainConfig(epochs=1), tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_predict_in_batches_equals_one_shot(pair):
    train, test = pair
    prepared = pipeline.prepare(train, test, gridsize=2)
    gen = build_scale(0.3)
    gen.amplitude = 2.0
    d = test.diffraction[prepared.test_groups.indices]
    whole = gen.predict(d, prepared.test_groups.offsets)
    batched = pipeline.predict_groups(gen, d, prepared.test_groups.offsets, batch_size=7)
    np.testing.assert_array_equal(batched, whole)
    anchors = pipeline.predict_anchors(gen, test, prepared.test_groups, batch_size=5)
    assert anchors.shape == (test.n, 16, 16) and anchors.dtype == np.complex64
