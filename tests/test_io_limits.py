"""Files that lie about their size, and HDF5 links: every loader compares what a header declares
with the memory limit before reading (one line naming the file, the field and the size, exit 2),
and `ptycho inspect` shows every soft or external link it followed (which file, which path)."""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest

from ptycho_core import limits
from ptycho_core.errors import DataError, UsageError
from ptycho_core.io import load_dataset, save_dataset
from ptycho_core.simulate import SimConfig, simulate
from ptycho_core.testing.conformance import lies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=32, step=4.0)
DATA = "entry_1/instrument_1/detector_1/data"
LINKED = "entry_1/data_1/data"


@pytest.fixture(scope="module")
def tiny():
    return simulate(TINY)


def _lying_cxi(path, shape=(200000, 1024, 1024)):
    """A valid CXI whose counts dataset now declares `shape` float32, chunked and compressed, no chunk written."""
    with h5py.File(path, "r+") as h5:
        del h5[DATA]
        h5.create_dataset(DATA, shape=shape, dtype=np.float32, chunks=(1, *shape[1:]), compression="gzip")
    return path


def test_sizes_parse_with_units_and_shares(monkeypatch):
    assert limits.parse_size("2000") == 2000
    assert limits.parse_size("512M") == 512 * 1024**2
    assert limits.parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert limits.parse_size("4GB") == 4 * 1000**3
    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    assert limits.parse_size("25%") == 250
    for bad in ("", "lots", "-3G", "0", "150%", "1Q"):
        with pytest.raises(UsageError, match="expected"):
            limits.parse_size(bad)


def test_the_default_limit_is_a_stated_share_of_available_memory(monkeypatch):
    monkeypatch.delenv(limits.ENV, raising=False)
    monkeypatch.setattr(limits, "available_memory", lambda: 8 * 1024**3)
    assert limits.memory_limit() == (4 * 1024**3, "50% of available memory")
    monkeypatch.setenv(limits.ENV, "1G")
    assert limits.memory_limit() == (1024**3, "set to 1G")
    assert 0 < limits.available_memory()


def test_a_cxi_header_declaring_800_gb_is_one_line_before_any_read(tiny, tmp_path, invoke, one_line_error):
    path = _lying_cxi(save_dataset(tiny, tmp_path / "scan.cxi"))
    assert path.stat().st_size < 5_000_000
    line = one_line_error(invoke("inspect", path))
    assert line.startswith(f"error: {path}: '{LINKED}' declares (200000, 1024, 1024) float32 = 781.2 GiB"), line
    assert "over the memory limit" in line and "--max-memory" in line


def test_a_header_declaring_15_gb_is_refused_under_a_smaller_limit_and_the_limit_is_a_cli_option(
    tiny, tmp_path, invoke, one_line_error, monkeypatch
):
    path = _lying_cxi(save_dataset(tiny, tmp_path / "scan.cxi"), shape=(15000, 512, 512))
    monkeypatch.setenv(limits.ENV, "8G")
    line = one_line_error(invoke("inspect", path))
    assert "= 14.6 GiB, over the memory limit of 8.0 GiB (set to 8G)" in line
    valid = save_dataset(tiny, tmp_path / "valid.cxi")
    line = one_line_error(invoke("inspect", "--max-memory", "4K", valid))
    assert f"'{LINKED}' declares (16, 16, 16) float32 = 16.0 KiB, over the memory limit of 4.0 KiB" in line
    assert invoke("inspect", "--max-memory", "1G", valid).exit_code == 0
    assert "--max-memory" in one_line_error(invoke("inspect", "--max-memory", "lots", valid))


def test_npz_members_that_inflate_past_the_limit_are_refused_before_numpy_reads_them(
    tmp_path, invoke, one_line_error, monkeypatch
):
    bomb = tmp_path / "bomb.npz"
    zeros = np.zeros((64, 256, 256), np.float32)
    np.savez_compressed(bomb, diffraction=zeros, positions=np.zeros((64, 2)), probe=np.ones((256, 256), np.complex64))
    assert bomb.stat().st_size < 200_000
    monkeypatch.setenv(limits.ENV, "4M")
    line = one_line_error(invoke("inspect", bomb))
    assert f"{bomb}: 'diffraction' inflates (uncompressed zip member) = 16.0 MiB, over the memory limit" in line


def test_an_npz_header_declaring_more_than_its_member_holds_is_a_lie(tiny, tmp_path, invoke, one_line_error):
    valid = save_dataset(tiny, tmp_path / "valid.npz")
    lying = tmp_path / "lying.npz"
    assert lies.forge(valid, lying, 1 << 40)
    line = one_line_error(invoke("inspect", lying))
    assert f"{lying}: 'diffraction' declares (" in line and "over the memory limit" in line
    # Within the limit but longer than the member: truncated or lying, refused before numpy allocates.
    small = tmp_path / "small.npz"
    assert lies.forge(valid, small, 1 << 20)
    line = one_line_error(invoke("inspect", small))
    assert "'diffraction' must hold the" in line and "a truncated member or a lying header" in line


def test_ptychodus_patterns_with_a_lying_header_are_refused(tiny, tmp_path, invoke, one_line_error):
    product = save_dataset(tiny, tmp_path / "scan-product.h5")
    with h5py.File(tmp_path / "scan-diffraction.h5", "r+") as h5:
        attrs = dict(h5["patterns"].attrs)
        del h5["patterns"]
        h5.create_dataset("patterns", shape=(10**7, 256, 256), dtype=np.uint16, chunks=(1, 256, 256))
        h5["patterns"].attrs.update(attrs)
    line = one_line_error(invoke("inspect", product))
    assert "scan-diffraction.h5: 'patterns' declares (10000000, 256, 256) uint16 = 1.2 TiB" in line


def test_counts_are_read_in_blocks_into_one_float32_array(tiny, tmp_path, monkeypatch):
    from ptycho_core.io import contract

    monkeypatch.setattr(contract, "READ_BLOCK_BYTES", 3 * 16 * 16 * 4)  # three patterns at a time
    path = save_dataset(tiny, tmp_path / "scan.cxi")
    ds = load_dataset(path)
    np.testing.assert_allclose(ds.diffraction, tiny.diffraction, rtol=1e-6)
    with h5py.File(path, "r+") as h5:
        counts = h5[DATA][()]
        counts[-1, 0, 0] = -1.0
        del h5[DATA]
        h5.create_dataset(DATA, data=counts, chunks=(2, 16, 16))
    with pytest.raises(DataError, match="must be non-negative photon counts, got 1 negative values"):
        load_dataset(path)


def test_a_npy_probe_declaring_more_than_it_holds_is_refused(tmp_path):
    from ptycho_core.io import read_probe

    path = tmp_path / "probe.npy"
    np.save(path, np.ones((16, 16), np.complex64))
    raw = path.read_bytes().replace(b"(16, 16)", b"(16000, 16000)")
    path.write_bytes(raw)
    with pytest.raises(DataError, match="header declares 1.9 GiB, the file holds 2.0 KiB"):
        read_probe(path)


# --- links ------------------------------------------------------------------------------------------


def test_an_external_link_is_followed_and_shown_with_its_file_and_path(tiny, tmp_path, invoke, one_line_error):
    path = save_dataset(tiny, tmp_path / "scan.cxi")
    with h5py.File(path, "r+") as h5:
        counts = h5[DATA][()]
        del h5[DATA], h5[LINKED]
        h5[DATA] = h5py.ExternalLink("counts.h5", "/measured/data")
        h5[LINKED] = h5py.SoftLink("/" + DATA)
    with h5py.File(tmp_path / "counts.h5", "w") as h5:
        h5["measured/data"] = counts
    result = invoke("inspect", path)
    assert result.exit_code == 0, result.output
    assert f"link: {LINKED} -> /{DATA} (soft link)" in result.output
    assert f"link: {DATA} -> {tmp_path / 'counts.h5'}:/measured/data (external link)" in result.output
    ds = load_dataset(path)
    np.testing.assert_allclose(ds.diffraction, tiny.diffraction, rtol=1e-6)
    assert any("external link" in item for item in ds.metadata["links"])

    (tmp_path / "counts.h5").unlink()
    line = one_line_error(invoke("inspect", path))
    assert f"'{DATA}' is an external link to counts.h5:/measured/data that must resolve" in line


def test_a_dangling_soft_link_is_an_error_not_a_silent_fallback(tiny, tmp_path, invoke, one_line_error):
    path = save_dataset(tiny, tmp_path / "scan.cxi")
    with h5py.File(path, "r+") as h5:
        del h5[LINKED]
        h5[LINKED] = h5py.SoftLink("/entry_1/nowhere")
    line = one_line_error(invoke("inspect", path))
    assert "'entry_1/nowhere' is required (the soft link entry_1/data_1/data points to it), got nothing there" in line


def test_a_virtual_dataset_with_a_missing_source_file_is_refused(tiny, tmp_path, invoke, one_line_error):
    path = save_dataset(tiny, tmp_path / "scan.cxi")
    with h5py.File(tmp_path / "part.h5", "w") as h5:
        h5["data"] = np.square(tiny.diffraction.astype(np.float32))
    layout = h5py.VirtualLayout(shape=tiny.diffraction.shape, dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(tmp_path / "part.h5"), "data", shape=tiny.diffraction.shape)
    with h5py.File(path, "r+") as h5:
        del h5[DATA]
        h5.create_virtual_dataset(DATA, layout)
    result = invoke("inspect", path)
    assert result.exit_code == 0 and f"{tmp_path / 'part.h5'}:data (virtual dataset)" in result.output
    (tmp_path / "part.h5").unlink()
    line = one_line_error(invoke("inspect", path))
    assert "is a virtual dataset whose source files must exist" in line and "part.h5 missing" in line


# --- a loader plugin that is gone -------------------------------------------------------------------


def test_a_file_of_an_uninstalled_loader_says_no_loader_reads_it(tiny, tmp_path, invoke, one_line_error):
    path = tmp_path / "x.rsu.h5"
    with h5py.File(path, "w") as h5:
        h5["rsu/frames"] = np.zeros((4, 16, 16), np.float32)
    line = one_line_error(invoke("inspect", path))
    assert line.startswith(f"error: {path}: no loader for .rsu.h5 files is installed (ptycho list-loaders); ")
    assert "the cxi loader, which reads .h5, could not read it either" in line
    # A suffix some loader claims, or a plain name, keeps the loader's own message.
    plain = tmp_path / "x.h5"
    path.rename(plain)
    assert "no loader for" not in one_line_error(invoke("inspect", plain))
    with zipfile.ZipFile(tmp_path / "y.old.npz", "w") as z:
        z.writestr("readme.txt", "not arrays")
    assert "no loader for .old.npz files" in one_line_error(invoke("inspect", tmp_path / "y.old.npz"))


def test_random_max_memory_values_read_the_file_or_are_one_line_and_exit_2(tiny, tmp_path, invoke, one_line_error):
    import random

    path = save_dataset(tiny, tmp_path / "scan.npz")
    pool = ["", " ", "abc", "nan", "inf", "-1", "0", "1", "1e3", "1e12", "4K", "64M", "2G", "1.5GiB", "3GB", "0.5%"]
    pool += ["25%", "100%", "101%", "-5%", "%", "G", "1Q", "10**9", "0x10", "1_000", str(2**70), "12 MiB"]
    rng = random.Random(23)
    for value in [*pool, *(rng.choice(pool) + rng.choice(["", "B", "kb", "TiB"]) for _ in range(20))]:
        result = invoke("inspect", "--max-memory", value, path)
        if result.exit_code != 0:
            line = one_line_error(result)
            assert "--max-memory" in line or "over the memory limit" in line, (value, line)
