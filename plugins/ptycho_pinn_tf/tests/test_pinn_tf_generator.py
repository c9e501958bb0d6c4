"""The pinn_tf generator contract: fit / predict / save / load, training loop behaviour."""

import json
import math

import numpy as np
import pytest

from ptycho_core.errors import DataError, PluginError, UsageError
from ptycho_core.generator import Generator, TrainConfig


def test_factory_returns_a_generator_with_its_options(pinn_tf):
    gen = pinn_tf.build_pinn_tf(filter_scale=1, overlap=False)
    assert isinstance(gen, Generator)
    assert gen.options == {"filter_scale": 1, "overlap": False, "joint_channels": True}
    with pytest.raises(UsageError):
        pinn_tf.build_pinn_tf(filter_scale=0)


@pytest.mark.parametrize("trained, channels", [("trained_g1", 1), ("trained_g2", 4)])
def test_predict_returns_complex64_patches_of_the_input_shape(request, trained, channels):
    gen, _, _ = request.getfixturevalue(trained)
    prepared = request.getfixturevalue("prepared_g1" if channels == 1 else "prepared_g2")
    test_ds, groups = prepared.test, prepared.test_groups
    diffraction = test_ds.diffraction[groups.indices]
    patches = gen.predict(diffraction, groups.offsets)
    assert patches.shape == (groups.n_groups, channels, 16, 16)
    assert patches.dtype == np.complex64
    assert np.isfinite(patches).all()
    # amplitude head: sigmoid * 2 * exp(log_scale); phase head: pi * tanh
    assert np.abs(patches).max() <= 2 * math.exp(float(gen.model.get_layer("amplitude").log_scale.numpy())) + 1e-5
    # ... and the phase head reaches the output: the phase varies over each patch.
    assert np.ptp(np.angle(patches), axis=(-2, -1)).min() > 1e-3


def test_predict_gives_the_same_patches_whatever_batches_the_caller_makes(trained_g1, prepared_g1):
    from ptycho_core.pipeline import predict_groups

    gen, _, _ = trained_g1
    diffraction, offsets = prepared_g1.train.diffraction, prepared_g1.train.offsets
    whole = gen.predict(diffraction, offsets)
    np.testing.assert_allclose(predict_groups(gen, diffraction, offsets, batch_size=5), whole, rtol=1e-5, atol=1e-6)


def test_parameter_count_is_the_keras_models(trained_g1):
    gen, _, _ = trained_g1
    assert gen.parameter_count() == gen.model.count_params() > 0


def test_predict_refuses_the_wrong_shape_and_an_unbuilt_model(trained_g1, pinn_tf):
    gen, _, _ = trained_g1
    with pytest.raises(DataError, match=r"\(B, 1, 16, 16\)"):
        gen.predict(np.zeros((2, 4, 16, 16), np.float32), np.zeros((2, 4, 2)))
    with pytest.raises(PluginError, match="before fit or load"):
        pinn_tf.build_pinn_tf().predict(np.zeros((1, 1, 16, 16), np.float32), np.zeros((1, 1, 2)))


def test_a_few_epochs_lower_the_loss(trained_g1):
    _, history, _ = trained_g1
    assert len(history.loss) == 3 and len(history.val_loss) == 3
    assert history.loss[-1] < history.loss[0]
    assert min(history.val_loss[1:]) < history.val_loss[0]
    assert history.lr == [3e-3] * 3
    assert len(history.seconds) == 3 and not history.stopped


def test_progress_reports_steps_and_one_epoch_event_with_val_loss(trained_g1, prepared_g1):
    _, history, events = trained_g1
    steps = math.ceil(prepared_g1.train.n_groups / 8)
    epoch_events = [e for e in events if e["phase"] == "epoch"]
    assert [e["epoch"] for e in epoch_events] == [1, 2, 3]
    assert all(e["step"] == e["steps"] == steps and e["epochs"] == 3 for e in epoch_events)
    assert [e["val_loss"] for e in epoch_events] == history.val_loss
    step_events = [e for e in events if e["phase"] == "step"]
    assert step_events and all(e["val_loss"] is None and e["step"] < steps for e in step_events)
    assert all({"epoch", "epochs", "step", "steps", "loss", "val_loss"} <= set(e) for e in events)


def test_gridsize_two_trains_through_the_overlap_constraint(trained_g2, prepared_g2):
    gen, history, _ = trained_g2
    assert gen.meta["C"] == 4 and gen.meta["canvas_size"] == prepared_g2.train.canvas_size
    assert gen._overlap_canvas() == prepared_g2.train.canvas_size
    assert len(history.loss) == 1 and math.isfinite(history.loss[0])


def test_per_pattern_patches_depend_only_on_their_own_pattern_and_joint_ones_mix(trained_g2, prepared_g2, pinn_tf):
    from ptycho_core.generator import TrainConfig

    x = prepared_g2.val.diffraction[:2].copy()
    changed = x.copy()
    changed[:, 2] = np.random.default_rng(1).uniform(0, 20, size=changed[:, 2].shape)
    offsets = prepared_g2.val.offsets[:2]
    joint, _, _ = trained_g2  # the default: the C patterns are the network's C channels
    assert joint.model.input_shape[-1] == 4
    assert not np.array_equal(joint.predict(x, offsets)[:, 0], joint.predict(changed, offsets)[:, 0])
    alone = pinn_tf.build_pinn_tf(filter_scale=1, joint_channels=False)
    alone.fit(prepared_g2.train, prepared_g2.val, TrainConfig(epochs=1, batch_size=8, seed=0), lambda e: None)
    assert alone.model.input_shape[-1] == 1
    a, b = alone.predict(x, offsets), alone.predict(changed, offsets)
    np.testing.assert_array_equal(a[:, [0, 1, 3]], b[:, [0, 1, 3]])
    assert not np.array_equal(a[:, 2], b[:, 2])


@pytest.mark.parametrize("trained", ["trained_g1", "trained_g2"])
def test_save_then_load_reproduces_predictions_exactly(request, trained, tmp_path, pinn_tf):
    gen, _, _ = request.getfixturevalue(trained)
    diffraction = np.random.default_rng(0).uniform(0, 20, size=(5, gen.meta["C"], 16, 16)).astype(np.float32)
    offsets = np.zeros((5, gen.meta["C"], 2))
    gen.save(tmp_path)
    assert (tmp_path / "model.weights.h5").is_file()
    meta = json.loads((tmp_path / "generator.json").read_text())
    assert {k: meta[k] for k in ("C", "N", "input_scale", "s0", "canvas_size")} == gen.meta
    loaded = pinn_tf.build_pinn_tf(**gen.options).load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(diffraction, offsets), gen.predict(diffraction, offsets))


def test_load_refuses_a_foreign_directory_and_other_options(trained_g1, tmp_path, pinn_tf):
    with pytest.raises(DataError, match="not a pinn_tf model directory"):
        pinn_tf.build_pinn_tf().load(tmp_path)
    gen, _, _ = trained_g1
    gen.save(tmp_path)
    with pytest.raises(UsageError, match="saved with options"):
        pinn_tf.build_pinn_tf(filter_scale=2).load(tmp_path)


def test_same_seed_gives_the_same_predictions(trained_g1, prepared_g1, fit_tiny):
    gen, history, _ = trained_g1
    again, history_again, _ = fit_tiny(prepared_g1, epochs=3, seed=0)
    diffraction = prepared_g1.val.diffraction
    np.testing.assert_array_equal(again.predict(diffraction, None), gen.predict(diffraction, None))
    assert history_again.loss == history.loss


def test_non_finite_loss_stops_training_and_keeps_finite_weights(prepared_g1, pinn_tf):
    bad = prepared_g1.train.subset(np.arange(prepared_g1.train.n_groups))
    bad.diffraction = bad.diffraction.copy()
    bad.diffraction[3, 0, 5, 5] = np.nan
    gen = pinn_tf.build_pinn_tf(filter_scale=1)
    history = gen.fit(bad, prepared_g1.val, TrainConfig(epochs=2, batch_size=64), lambda event: None)
    assert history.stopped == "non-finite loss at epoch 1"
    assert history.loss == []
    assert np.isfinite(gen.predict(prepared_g1.val.diffraction, None)).all()


def test_bf16_and_missing_gpu_are_refused_clearly(prepared_g1, pinn_tf):
    gen = pinn_tf.build_pinn_tf(filter_scale=1)
    with pytest.raises(UsageError, match="fp32 only"):
        gen.fit(prepared_g1.train, prepared_g1.val, TrainConfig(engine={"precision": "bf16"}), lambda event: None)
    if not pinn_tf.tf.config.list_physical_devices("GPU"):
        with pytest.raises(UsageError, match="no GPU"):
            gen.fit(prepared_g1.train, prepared_g1.val, TrainConfig(device="cuda"), lambda event: None)


def test_network_depth_follows_the_patch_size(pinn_tf):
    from ptycho_pinn_tf.model import build_model, n_blocks

    assert [n_blocks(n) for n in (16, 32, 64, 128)] == [1, 2, 3, 4]
    model = build_model(32, 4, s0=2.0, filter_scale=1)
    amplitude, phase = model(np.zeros((2, 32, 32, 4), np.float32))
    assert tuple(amplitude.shape) == tuple(phase.shape) == (2, 32, 32, 4)
    assert float(model.get_layer("amplitude").log_scale.numpy()) == pytest.approx(math.log(2.0))
    assert float(np.max(amplitude)) == pytest.approx(2.0, rel=1e-5)  # sigmoid(0) * 2 * s0


@pytest.mark.parametrize("mask_kind", ["shared", "per_group"])
def test_training_with_a_detector_mask_ignores_invalid_pixels(prepared_g1, pinn_tf, mask_kind):
    train = prepared_g1.train.subset(np.arange(16))
    valid = np.ones((16, 16), bool)
    valid[8, 6:10] = False  # a dead detector row segment next to the centre
    train.mask = valid if mask_kind == "shared" else np.broadcast_to(valid, train.diffraction.shape).copy()
    train.diffraction = train.diffraction.copy()
    train.diffraction[..., ~valid] = 1e6  # garbage only where the mask says invalid
    val = train.subset(np.arange(4))
    gen = pinn_tf.build_pinn_tf(filter_scale=1)
    history = gen.fit(train, val, TrainConfig(epochs=1, batch_size=8), lambda event: None)
    assert not history.stopped
    assert abs(history.loss[0]) < 100 and abs(history.val_loss[0]) < 100
