"""The dataset contract, splits, grouping and simulation (docs/design.md#dataset, #splits)."""

import dataclasses

import numpy as np
import pytest

from ptycho_core import data, physics
from ptycho_core.data import Dataset
from ptycho_core.errors import DataError
from ptycho_core.simulate import DEFAULT_SIM, SimConfig, simulate_pair


def _replace(ds: Dataset, **changes) -> Dataset:
    return dataclasses.replace(ds, **changes)


def test_simulated_data_satisfy_the_contract(tiny_pair):
    train, test = tiny_pair
    for ds in (train, test):
        ds.validate("sim")
        assert ds.diffraction.dtype == np.float32 and ds.positions.dtype == np.float64
        assert ds.probe.dtype == np.complex64 and ds.object.dtype == np.complex64
        assert ds.metadata["counts_scale"] == 1.0


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda ds: {"diffraction": ds.diffraction.astype(np.float64)}, "diffraction"),
        (lambda ds: {"diffraction": ds.diffraction[:, :-1, :-1]}, "diffraction"),  # odd N
        (lambda ds: {"diffraction": ds.diffraction[:, :, :-2]}, "diffraction"),  # not square
        (lambda ds: {"diffraction": -ds.diffraction}, "diffraction"),
        (lambda ds: {"positions": ds.positions[:-1]}, "positions"),
        (lambda ds: {"positions": ds.positions + 1000.0}, "positions"),
        (lambda ds: {"probe": np.stack([ds.probe, ds.probe])}, "probe"),  # multi-mode
        (lambda ds: {"probe": np.zeros_like(ds.probe)}, "probe"),
        (lambda ds: {"mask": np.zeros(ds.probe.shape, bool)}, "mask"),
        (lambda ds: {"metadata": {"bad": object()}}, "metadata"),
    ],
    ids=[
        "float64",
        "odd-N",
        "non-square",
        "negative",
        "length",
        "outside",
        "multimode",
        "zero-probe",
        "mask",
        "metadata",
    ],
)
def test_validate_names_the_source_and_the_key(tiny_pair, change, key):
    ds = _replace(tiny_pair[0], **change(tiny_pair[0]))
    with pytest.raises(DataError) as info:
        ds.validate("file.npz")
    assert str(info.value).startswith("file.npz: ") and f"'{key}'" in str(info.value)
    assert "\n" not in str(info.value)


def test_subset_keeps_probe_object_and_per_pattern_mask(tiny_pair):
    ds = tiny_pair[0]
    mask = np.ones(ds.diffraction.shape, bool)
    mask[3, 0, 0] = False
    sub = _replace(ds, mask=mask).subset(np.array([3, 5]))
    assert sub.n == 2 and sub.mask.shape == (2, 16, 16) and not sub.mask[0, 0, 0]
    assert sub.probe is ds.probe and sub.object is ds.object


def test_ground_truth_patches_are_the_object_cut_at_the_positions(tiny_pair):
    ds = tiny_pair[0]
    np.testing.assert_array_equal(ds.gt_patches(), physics.extract(ds.object, ds.positions, 16))
    grouped = ds.positions[:6].reshape(3, 2, 2)
    assert ds.gt_patches(grouped).shape == (3, 2, 16, 16)
    with pytest.raises(DataError):
        _replace(ds, object=None).gt_patches()


def test_fingerprint_is_stable_and_sees_every_array(tiny_pair):
    ds = tiny_pair[0]
    assert ds.fingerprint() == _replace(ds).fingerprint()
    moved = _replace(ds, positions=ds.positions + 0.25)
    assert moved.fingerprint() != ds.fingerprint()


def test_spatial_split_keeps_a_guard_band_between_train_and_test():
    ds = simulate_pair(SimConfig(train_objects=1, patch_size=16, object_size=96, step=4.0))[0]
    train, test, info = data.spatial_split(ds)
    n = ds.patch_size
    line = info["line"]
    # No training footprint (x +- N/2) reaches within N/2 of the line, and vice versa.
    assert (train.positions[:, 1] + n / 2).max() <= line - n / 2
    assert (test.positions[:, 1] - n / 2).min() >= line + n / 2
    assert info["train"] + info["test"] + info["dropped"] == ds.n
    assert info["train"] > 0 and info["test"] > 0


def test_spatial_split_of_a_narrow_scan_is_refused(tiny_pair):
    with pytest.raises(DataError, match="too narrow"):
        data.spatial_split(tiny_pair[0])


def test_test_groups_are_the_anchor_and_its_nearest_neighbours(tiny_pair):
    pos = tiny_pair[1].positions
    groups = data.group(pos, 2, train=False)
    assert groups.indices.shape == (len(pos), 4)
    np.testing.assert_array_equal(groups.indices[:, 0], np.arange(len(pos)))
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    for i in (0, 17, 50):
        nearest = np.sort(d[i])[1:4]
        np.testing.assert_allclose(np.sort(d[i, groups.indices[i, 1:]]), nearest)
    np.testing.assert_allclose(groups.offsets.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_array_equal(groups.positions, pos[groups.indices])
    np.testing.assert_array_equal(data.group(pos, 2, train=False).indices, groups.indices)


def test_training_groups_are_seeded_draws_from_the_2c_nearest(tiny_pair):
    pos = tiny_pair[0].positions
    a = data.group(pos, 2, train=True, seed=3)
    b = data.group(pos, 2, train=True, seed=3)
    c = data.group(pos, 2, train=True, seed=4)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    for i in range(len(pos)):
        eighth = np.sort(d[i])[8]  # the 2C = 8 nearest others
        assert np.all(d[i, a.indices[i, 1:]] <= eighth + 1e-9)
        assert len(set(a.indices[i])) == 4


def test_gridsize_one_groups_are_single_patterns(tiny_pair):
    groups = data.group(tiny_pair[0].positions, 1, train=True)
    assert groups.indices.shape == (tiny_pair[0].n, 1)
    assert np.all(groups.offsets == 0)


def test_validation_split_is_seeded_disjoint_and_complete():
    tr, va = data.validation_split(50, 0.1, seed=0)
    tr2, va2 = data.validation_split(50, 0.1, seed=0)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 5 and not set(tr) & set(va) and len(tr) + len(va) == 50
    tr0, va0 = data.validation_split(50, 0.0, seed=0)
    assert len(va0) == 0 and len(tr0) == 50


def test_training_set_holds_ground_truth_only_when_supervised(tiny_pair):
    ds = tiny_pair[0]
    groups = data.group(ds.positions, 2, train=True)
    input_scale, s0 = data.scales(ds)
    kw = dict(input_scale=input_scale, s0=s0, canvas_size=physics.canvas_size(groups.offsets, 16))
    unsup = data.training_set(ds, groups, supervised=False, **kw)
    sup = data.training_set(ds, groups, supervised=True, **kw)
    assert unsup.gt_patches is None
    assert sup.gt_patches.shape == (ds.n, 4, 16, 16) and sup.gt_patches.dtype == np.complex64
    assert unsup.diffraction.shape == (ds.n, 4, 16, 16) and unsup.gridsize == 2
    assert input_scale == pytest.approx(1 / physics.rms_amplitude(ds.diffraction))


def test_scales_of_all_zero_data_are_refused(tiny_pair):
    ds = tiny_pair[0]
    with pytest.raises(DataError, match="all zero"):
        data.scales(_replace(ds, diffraction=np.zeros_like(ds.diffraction)))


def test_simulated_pair_shares_the_probe_and_hits_nphotons():
    cfg = SimConfig(train_objects=1, patch_size=16, object_size=48, step=3.0, nphotons=1e4)
    train, test = simulate_pair(cfg)
    again, _ = simulate_pair(cfg)
    np.testing.assert_array_equal(train.diffraction, again.diffraction)
    np.testing.assert_array_equal(train.probe, test.probe)
    assert not np.array_equal(train.object, test.object)
    counts = (train.diffraction.astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
    assert counts == pytest.approx(1e4, rel=0.02)


def test_default_simulation_is_the_documented_lines_data():
    assert (DEFAULT_SIM.object, DEFAULT_SIM.patch_size, DEFAULT_SIM.object_size, DEFAULT_SIM.step) == (
        "lines",
        32,
        128,
        4.0,
    )
