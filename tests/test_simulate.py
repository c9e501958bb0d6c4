"""Simulated data (ptycho_core/simulate.py): the aberrated probe, phase modes, training objects,
probes from files, and `--sim KEY=VALUE` in `ptycho simulate` and `ptycho compare`."""

import numpy as np
import pytest

from ptycho_core import metrics, physics
from ptycho_core.errors import UsageError
from ptycho_core.io.npz import load_npz, save_npz
from ptycho_core.simulate import (
    DEFAULT_SIM,
    SimConfig,
    aberrated_probe,
    disk_probe,
    make_object,
    resample_probe,
    simulate_pair,
)

SMALL = SimConfig(train_objects=1, patch_size=16, object_size=40, step=4.0)


def _asymmetry(probe: np.ndarray) -> float:
    """Relative L2 difference between |P(r)| and |P(-r)| (0 for a point-symmetric amplitude)."""
    amp = np.abs(probe)
    return float(np.linalg.norm(amp - np.abs(metrics.reflect(probe))) / np.linalg.norm(amp))


def test_the_default_probe_is_not_point_symmetric_and_the_disk_is():
    assert _asymmetry(aberrated_probe(32, 8)) > 0.2
    assert _asymmetry(aberrated_probe(32, 8, astigmatism=0.0, coma=0.0)) < 1e-3  # defocus alone keeps it
    assert _asymmetry(disk_probe(32, 8)) < 1e-6


def test_the_twin_of_a_patch_needs_an_unphysical_object_under_the_default_probe():
    """Under the disk probe the twin conj(o(-r)) is a valid object with the same diffraction; under
    the aberrated probe the object that would give the twin's exit wave leaves the amplitude range."""
    train, _ = simulate_pair(DEFAULT_SIM.replace(train_objects=1))
    truth = physics.extract(train.object, train.positions[:20], 32)
    probe = train.probe
    support = np.abs(probe) > 0.1 * np.abs(probe).max()
    twin_wave = np.conj(metrics.reflect(truth * probe))
    twin_object = np.where(support, twin_wave / np.where(support, probe, 1), 0)
    ratio = np.abs(twin_object)[:, support] / np.abs(truth)[:, support]
    assert ratio.max() > 3  # the object's amplitude is in [0.3, 1]: the twin needs > 3x somewhere
    disk = disk_probe(32, 8)
    same = physics.forward(disk, np.conj(metrics.reflect(truth)))
    np.testing.assert_allclose(same, physics.forward(disk, truth), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("phase", ["materials", "independent", "amplitude", "none"])
def test_phase_modes(phase):
    obj = make_object("lines", 48, np.random.default_rng(0), phase=phase)
    amp, ph = np.abs(obj), np.angle(obj)
    assert obj.dtype == np.complex64 and 0.3 - 1e-6 <= amp.min() and amp.max() <= 1 + 1e-6
    assert ph.min() >= -1e-6 and ph.max() <= np.pi / 2 + 1e-6
    corr = np.corrcoef(amp.ravel(), ph.ravel())[0, 1] if ph.std() > 0 else 0.0
    expected = {"amplitude": (0.999, 1.0), "materials": (0.2, 0.95), "independent": (-0.3, 0.3), "none": (0, 0)}
    lo, hi = expected[phase]
    assert lo <= corr <= hi, corr


def test_several_training_objects_sit_side_by_side_and_the_test_object_is_one():
    train, test = simulate_pair(SMALL.replace(train_objects=3))
    assert train.object.shape == (40, 120) and test.object.shape == (40, 40)
    assert train.positions[:, 1].max() > 80 and train.n > 2.5 * test.n
    one, _ = simulate_pair(SMALL)
    assert one.n == test.n
    # the squares are independent textures, not one texture repeated
    assert not np.allclose(train.object[:, :40], train.object[:, 40:80])


def test_probe_from_a_file_is_resampled_to_the_patch_size(tmp_path, sample_npz):
    probe = resample_probe(load_npz(sample_npz).probe, 16)
    assert probe.shape == (16, 16) and np.abs(probe).max() == pytest.approx(1.0)
    train, _ = simulate_pair(SMALL.replace(probe="file", probe_file=str(sample_npz)))
    got = train.probe / np.abs(train.probe).max()
    np.testing.assert_allclose(got, probe, atol=1e-5)
    # a probe of the patch size is taken as it is (up to the peak normalisation)
    ds = simulate_pair(SMALL)[0]
    save_npz(ds, tmp_path / "p.npz")
    again = simulate_pair(SMALL.replace(probe="file", probe_file=str(tmp_path / "p.npz")))[0]
    np.testing.assert_allclose(again.probe / np.abs(again.probe).max(), ds.probe / np.abs(ds.probe).max(), atol=1e-6)


def test_photon_counts_are_configurable_over_the_beamline_range():
    for nphotons in (1e3, 1e5, 1e9):
        train, _ = simulate_pair(SMALL.replace(nphotons=nphotons))
        counts = (train.diffraction.astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
        assert counts == pytest.approx(nphotons, rel=0.05)
    with pytest.raises(UsageError, match="nphotons"):
        SMALL.replace(nphotons=0.5)


def test_settings_parse_by_field_type_and_bad_ones_are_usage_errors():
    cfg = DEFAULT_SIM.with_strings({"train_objects": "1", "nphotons": "1e4", "probe": "disk", "coma": "0"})
    assert (cfg.train_objects, cfg.nphotons, cfg.probe, cfg.coma) == (1, 1e4, "disk", 0.0)
    with pytest.raises(UsageError, match="unknown simulation setting 'bogus'"):
        DEFAULT_SIM.with_strings({"bogus": "1"})
    with pytest.raises(UsageError, match="expected float"):
        DEFAULT_SIM.with_strings({"nphotons": "many"})
    with pytest.raises(UsageError, match="probe_file"):
        DEFAULT_SIM.with_strings({"probe": "file"})


def test_simulate_command_takes_every_setting(invoke, tmp_path):
    path = tmp_path / "d.npz"
    result = invoke(
        "simulate",
        "--out",
        path,
        "--patch-size",
        "16",
        "--object-size",
        "40",
        "--sim",
        "train_objects=2",
        "--sim",
        "phase=independent",
        "--sim",
        "coma=0.5",
    )
    assert result.exit_code == 0, result.output
    meta = load_npz(path).metadata["simulation"]
    assert (meta["train_objects"], meta["phase"], meta["coma"]) == (2, "independent", 0.5)
    assert "train_objects=2" in result.stdout


def test_simulate_command_rejects_a_bad_setting_in_one_line(invoke, tmp_path, one_line_error):
    line = one_line_error(invoke("simulate", "--out", tmp_path / "d.npz", "--sim", "nphotons=lots"))
    assert "nphotons" in line
    line = one_line_error(invoke("simulate", "--out", tmp_path / "d.npz", "--sim", "noequals"))
    assert "KEY=VALUE" in line
