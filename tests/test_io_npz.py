"""The NPZ loader and writer: own files, the PtychoPINN raw contract, and every refusal."""

import json

import numpy as np
import pytest

from ptycho_core import physics
from ptycho_core.errors import DataError, PluginError, UsageError
from ptycho_core.hookspecs import hookimpl
from ptycho_core.io import load_dataset, save_dataset
from ptycho_core.io.npz import load_npz, save_npz
from ptycho_core.registry import LoaderSpec


def _pinn_entries(ds) -> dict:
    """A PtychoPINN raw file's entries for dataset `ds`, as their tools write them."""
    gt = physics.extract(ds.object, ds.positions, ds.patch_size)[..., None]
    return {
        "diff3d": ds.diffraction,
        "xcoords": ds.positions[:, 1].copy(),
        "ycoords": ds.positions[:, 0].copy(),
        "xcoords_start": ds.positions[:, 1].copy(),
        "probeGuess": ds.probe,
        "objectGuess": ds.object,
        "ground_truth_patches": gt.astype(np.complex64),
        "scan_index": np.zeros(ds.n, dtype=np.int64),
        "_metadata": np.array(json.dumps({"nphotons": 1e4}), dtype=object),
    }


def _write(path, entries: dict):
    np.savez(path, **entries)  # np.savez pickles object arrays: that is what we must refuse to read
    return path


# --- own format ---------------------------------------------------------------------------------


def test_round_trip_is_exact(tiny_pair, tmp_path):
    ds = tiny_pair[0]
    mask = np.ones(ds.diffraction.shape[-2:], bool)
    mask[0, :3] = False
    ds = ds.subset(np.arange(ds.n))
    ds.mask = mask
    back = load_npz(save_npz(ds, tmp_path / "d.npz"))
    for name in ("diffraction", "positions", "probe", "object", "mask"):
        a, b = getattr(ds, name), getattr(back, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert back.metadata == ds.metadata
    assert back.fingerprint() == ds.fingerprint()


def test_round_trip_without_object_or_mask(tiny_pair, tmp_path):
    ds = tiny_pair[1].subset(np.arange(10))
    ds.object = None
    back = load_dataset(save_dataset(ds, tmp_path / "t.npz"), registry=None)
    assert back.object is None and back.mask is None
    assert back.fingerprint() == ds.fingerprint()


def test_metadata_is_stored_as_a_plain_unicode_string(tiny_pair, tmp_path):
    path = save_npz(tiny_pair[0], tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as z:
        meta = z["metadata_json"]
        assert meta.dtype.kind == "U" and meta.ndim == 0
        assert json.loads(str(meta[()])) == tiny_pair[0].metadata


def test_saving_invalid_data_is_refused(tiny_pair, tmp_path):
    ds = tiny_pair[0].subset(np.arange(3))
    ds.diffraction = -ds.diffraction
    with pytest.raises(DataError, match="diffraction"):
        save_npz(ds, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_own_files_with_castable_dtypes_are_converted_and_recorded(tiny_pair, tmp_path):
    ds = tiny_pair[0]
    path = _write(
        tmp_path / "d.npz",
        {"diffraction": ds.diffraction.astype(np.float64), "positions": ds.positions, "probe": ds.probe},
    )
    back = load_npz(path)
    assert back.diffraction.dtype == np.float32
    assert "diffraction: float64 -> float32" in back.metadata["conversions"]
    assert back.metadata["source"] == str(path) and back.metadata["counts_scale"] is None


# --- PtychoPINN raw contract --------------------------------------------------------------------


def test_ptychopinn_sample_loads_with_every_conversion_recorded(sample_npz):
    ds = load_npz(sample_npz)
    meta = ds.metadata
    assert ds.n == 96 and ds.patch_size == 64 and ds.object.shape == (392, 392)
    assert meta["source"] == str(sample_npz) and meta["counts_scale"] is None
    assert "diff3d -> diffraction (legacy key)" in meta["conversions"]
    assert "xcoords, ycoords -> positions (y, x)" in meta["conversions"]
    assert any(c.startswith("ground_truth_patches: shape (96, 64, 64, 1)") for c in meta["conversions"])
    assert any(s.startswith("_metadata: object array") for s in meta["skipped"])
    assert meta["ground_truth_patches_check"]["matches"] is True
    with np.load(sample_npz, allow_pickle=False) as z:
        np.testing.assert_array_equal(ds.positions[:, 0], z["ycoords"])
        np.testing.assert_array_equal(ds.positions[:, 1], z["xcoords"])


def test_ptychopinn_dtype_and_layout_casts_are_recorded(tiny_pair, tmp_path):
    ds = tiny_pair[0]
    entries = _pinn_entries(ds)
    entries["diffraction"] = entries.pop("diff3d").astype(np.float64)[..., None]
    entries["probeGuess"] = ds.probe.astype(np.complex128)
    entries["xcoords"] = np.round(entries["xcoords"]).astype(np.int64)
    back = load_npz(_write(tmp_path / "p.npz", entries))
    conv = back.metadata["conversions"]
    assert "diffraction: float64 -> float32" in conv
    assert "probeGuess: complex128 -> complex64" in conv
    assert "xcoords: int64 -> float64" in conv
    assert any(c.startswith("diffraction: shape") and "-> (" in c for c in conv)
    assert back.diffraction.shape == ds.diffraction.shape and back.diffraction.dtype == np.float32
    np.testing.assert_array_equal(back.probe, ds.probe)


def test_mismatching_file_patches_are_recorded_not_used(tiny_pair, tmp_path):
    ds = tiny_pair[0]
    entries = _pinn_entries(ds)
    entries["Y"] = entries.pop("ground_truth_patches") * 1.1
    back = load_npz(_write(tmp_path / "p.npz", entries))
    check = back.metadata["Y_check"]
    assert check["matches"] is False and check["max_relative_error"] > 1e-3 and "differs" in check["note"]
    np.testing.assert_array_equal(back.gt_patches(), physics.extract(back.object, back.positions, 16))


def test_file_without_object_loads_without_ground_truth(tiny_pair, tmp_path):
    entries = _pinn_entries(tiny_pair[0])
    del entries["objectGuess"]
    back = load_npz(_write(tmp_path / "p.npz", entries))
    assert back.object is None and back.metadata["ground_truth_patches_check"]["checked"] is False


# --- refusals -------------------------------------------------------------------------------------


def _case(name, path_maker, key):
    return pytest.param(path_maker, key, id=name)


def _pinn(change):
    """A builder: the tiny PtychoPINN file with `change(entries, ds)` applied."""

    def build(tmp_path, ds):
        entries = _pinn_entries(ds)
        change(entries, ds)
        return _write(tmp_path / "bad.npz", entries)

    return build


def _set(**values):
    return _pinn(lambda e, ds: e.update({k: v(e, ds) if callable(v) else v for k, v in values.items()}))


def _text_file(tmp_path, ds):
    path = tmp_path / "notes.npz"
    path.write_text("x, y\n1, 2\n")
    return path


def _truncated(tmp_path, ds):
    full = _pinn(lambda e, ds: None)(tmp_path, ds)
    path = tmp_path / "truncated.npz"
    path.write_bytes(full.read_bytes()[:5000])
    return path


def _corrupt_member(tmp_path, ds):
    path = save_npz(ds, tmp_path / "corrupt.npz")
    raw = bytearray(path.read_bytes())
    start = raw.find(b"diffraction.npy") + 200  # inside the stored diffraction data
    raw[start : start + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    return path


def _plain_zip(tmp_path, ds):
    import zipfile

    path = tmp_path / "plain.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("diffraction", "not an array")
        zf.writestr("positions.npy", "not an array either")
        zf.writestr("probe", "nor this")
    return path


def _directory(tmp_path, ds):
    path = tmp_path / "folder.npz"
    path.mkdir()
    return path


def _delete(key):
    return _pinn(lambda e, ds: e.pop(key))


def _nan(e, ds):
    d = e["diff3d"].copy()
    d[0, 0, 0] = np.nan
    return d


ERROR_CASES = [
    _case("missing-file", lambda tmp_path, ds: tmp_path / "absent.npz", None),
    _case("directory", _directory, None),
    _case("text-file", _text_file, None),
    _case("truncated", _truncated, None),
    _case("corrupt-member", _corrupt_member, "diffraction"),
    _case("zip-of-non-npy", _plain_zip, "diffraction"),
    _case("missing-diffraction", _delete("diff3d"), "diffraction"),
    _case("missing-xcoords", _delete("xcoords"), "xcoords"),
    _case("missing-probe", _delete("probeGuess"), "probeGuess"),
    _case("object-array", _set(diff3d=lambda e, ds: np.array(list(e["diff3d"]), dtype=object)), "diff3d"),
    _case("strings", _set(probeGuess=np.array([["a"] * 16] * 16)), "probeGuess"),
    _case("complex-diffraction", _set(diff3d=lambda e, ds: e["diff3d"].astype(np.complex64)), "diff3d"),
    _case("wrong-rank", _set(diff3d=lambda e, ds: e["diff3d"][:, 0]), "diff3d"),
    _case("nan", _set(diff3d=_nan), "diff3d"),
    _case("inf-coords", _set(xcoords=lambda e, ds: np.where(np.arange(ds.n) == 2, np.inf, e["xcoords"])), "xcoords"),
    _case("negative", _set(diff3d=lambda e, ds: e["diff3d"] - 1.0), "diff3d"),
    _case("length-mismatch", _set(xcoords=lambda e, ds: e["xcoords"][:-1]), "xcoords"),
    _case("probe-shape", _set(probeGuess=lambda e, ds: e["probeGuess"][:8, :8]), "probeGuess"),
    _case("non-square", _set(diff3d=lambda e, ds: e["diff3d"][:, :, :8]), "diff3d"),
    _case("empty", _set(diff3d=lambda e, ds: e["diff3d"][:0], xcoords=np.zeros(0), ycoords=np.zeros(0)), "diff3d"),
    _case("outside-object", _set(xcoords=lambda e, ds: e["xcoords"] + 500.0), "xcoords"),
    _case("several-scans", _set(scan_index=lambda e, ds: np.arange(ds.n) % 2), "scan_index"),
    _case("multimode-probe", _set(probeGuess=lambda e, ds: np.stack([e["probeGuess"]] * 2)), "probeGuess"),
]


@pytest.mark.parametrize("build, key", ERROR_CASES)
def test_bad_files_are_refused_with_one_line_naming_file_and_key(tiny_pair, tmp_path, build, key):
    path = build(tmp_path, tiny_pair[0])
    with pytest.raises(DataError) as info:
        load_npz(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    if key is not None:
        assert f"'{key}'" in message


@pytest.mark.parametrize("build, key", ERROR_CASES)
def test_inspect_exits_2_with_one_line_on_bad_files(tiny_pair, tmp_path, invoke, build, key, one_line_error):
    path = build(tmp_path, tiny_pair[0])
    line = one_line_error(invoke("inspect", path))
    assert line.startswith("error: ") and str(path) in line


def test_several_scans_error_says_not_supported_yet(tiny_pair, tmp_path):
    path = _set(scan_index=lambda e, ds: np.arange(ds.n) % 3)(tmp_path, tiny_pair[0])
    with pytest.raises(DataError, match="several scans .* not supported yet"):
        load_npz(path)


def test_required_object_entry_is_an_error_but_an_extra_one_is_skipped(tiny_pair, tmp_path):
    ds = tiny_pair[0]
    entries = _pinn_entries(ds)
    entries["notes"] = np.array({"free": "form"}, dtype=object)
    back = load_npz(_write(tmp_path / "p.npz", entries))
    skipped = back.metadata["skipped"]
    assert any(s.startswith("notes: object array") for s in skipped)
    assert any(s.startswith("xcoords_start: not part") for s in skipped)


# --- loader selection -----------------------------------------------------------------------------


def test_load_dataset_picks_the_loader_by_extension(tiny_pair, tmp_path, core_host):
    path = save_npz(tiny_pair[0], tmp_path / "d.NPZ")
    ds = load_dataset(path, registry=core_host.registry())
    assert ds.n == tiny_pair[0].n
    with pytest.raises(UsageError, match="no loader"):
        load_dataset(tmp_path / "d.xyz", registry=core_host.registry())
    with pytest.raises(UsageError, match=".npz"):
        save_dataset(tiny_pair[0], tmp_path / "d.xyz")


class _TextLoaderPlugin:
    """A third-party loader for `.fake` files that rebuilds a small dataset."""

    @hookimpl
    def ptycho_register_loaders(self, register):
        register(
            LoaderSpec(name="fake", summary="test loader", factory=f"{__name__}:_fake_loader", extensions=(".fake",))
        )
        register(
            LoaderSpec(name="broken", summary="returns junk", factory=f"{__name__}:_junk_loader", extensions=(".junk",))
        )


def _fake_loader(path):
    from ptycho_core.simulate import SimConfig, simulate

    return simulate(SimConfig(train_objects=1, patch_size=16, object_size=24, step=4.0))


def _junk_loader(path):
    return {"not": "a dataset"}


def test_a_plugin_loader_is_used_for_its_extension(core_host, tmp_path):
    with core_host.registered(_TextLoaderPlugin(), "fake-loader", distribution="fake-loader"):
        reg = core_host.registry()
        ds = load_dataset(tmp_path / "x.fake", registry=reg)
        assert ds.patch_size == 16
        with pytest.raises(PluginError, match="not a Dataset"):
            load_dataset(tmp_path / "x.junk", registry=reg)
