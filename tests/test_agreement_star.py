"""The metrics without ground truth rank known orderings on the measured Siemens star (issue 21,
item 5): lsqml with the probe refined beats lsqml with the file's probe, and more iterations beat
one, on the data error with the row's own probe (a), the agreement with a reference (b) and the
half-set FRC (c).

Kept fast: the star at 64 detector pixels (`--crop 64`), the patterns within WINDOW pixels of the
scan's centre, ITERATIONS iterations (the orderings already hold there). The metrics are computed
by the functions the comparison uses (`pipeline.score_whole_object` with the engine's probe,
`agreement.agreement`, `agreement.halfset_frc` on the two interleaved halves).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ptychi")

#: Half-side (object pixels at 64 detector pixels) of the central window of scan positions kept.
WINDOW = 25.0
ITERATIONS = 10


@pytest.fixture(scope="module")
def star(siemens_star):
    from ptycho_core.io import load_dataset

    ds = load_dataset(siemens_star, crop=64)
    centre = np.median(ds.positions, axis=0)
    return ds.subset(np.nonzero(np.all(np.abs(ds.positions - centre) <= WINDOW, axis=1))[0])


def _reconstruct(ds, generator: str, iterations: int, refine_probe: bool, halves: bool = True) -> dict:
    """One row as the comparison scores it: its object and weights, its data error with its own
    probe, and (with `halves`) its half-set FRC."""
    from ptycho_core import agreement, pipeline
    from ptycho_core.generator import TrainConfig
    from ptycho_core.plugins import PluginHost

    spec = PluginHost.from_environment().registry().generator(generator)
    options = {"iterations": iterations, "refine_probe": refine_probe}
    config = TrainConfig(seed=0, device="cpu")
    _, estimate, _ = pipeline.reconstruct_scan(spec, options, ds, config)
    result = pipeline.score_whole_object(estimate.object, ds, estimate.probe, estimate.positions)
    row = {"result": result, "data_error": result.metrics["data_error"]}
    if halves:
        objects = []
        for idx in agreement.interleaved_halves(ds.n):
            _, half, _ = pipeline.reconstruct_scan(spec, options, ds, config, indices=idx)
            objects.append(pipeline.whole_object(half.object, ds, half.probe, result.positions[idx])[:2])
        (a, wa), (b, wb) = objects
        row["half_frc_px"] = agreement.halfset_frc(a, b, agreement.overlap_weights(wa, wb), result.positions)[0][
            "half_frc_px"
        ]
    return row


@pytest.fixture(scope="module")
def rows(star):
    """The three rows compared, and the reference for (b): the best iterative row a comparison of
    them would pick (the lowest data error), lsqml refined for twice the iterations."""
    return {
        "refined": _reconstruct(star, "lsqml", ITERATIONS, True),
        "file probe": _reconstruct(star, "lsqml", ITERATIONS, False),
        "one iteration": _reconstruct(star, "lsqml", 1, True),
        "reference": _reconstruct(star, "lsqml", 2 * ITERATIONS, True, halves=False),
    }


def test_the_reference_is_the_row_with_the_lowest_data_error(rows):
    from ptycho_core import agreement

    table = [
        {"generator": k, "status": "ok", "kind": "iterative", "data_error": v["data_error"]} for k, v in rows.items()
    ]
    assert agreement.choose_reference(table) == "reference"


def _agreement(rows, name) -> dict:
    from ptycho_core import agreement

    r, ref = rows[name]["result"], rows["reference"]["result"]
    weights = agreement.overlap_weights(r.weights, ref.weights)
    return agreement.agreement(r.object, ref.object, weights, ref.positions)[0]


@pytest.mark.parametrize("worse", ["file probe", "one iteration"])
def test_the_data_error_with_the_rows_own_probe_ranks_the_refined_run_first(rows, worse):
    assert rows["refined"]["data_error"] < rows[worse]["data_error"]


def test_the_files_probe_would_rank_the_refined_run_wrongly(star, rows):
    """The bug this fixes: scored with the file's probe the refined run looks no better."""
    from ptycho_core import pipeline

    result = rows["refined"]["result"]
    with_file_probe = pipeline.score_whole_object(result.object, star).metrics["data_error"]
    assert with_file_probe > rows["file probe"]["data_error"] > rows["refined"]["data_error"]


@pytest.mark.parametrize("worse", ["file probe", "one iteration"])
def test_agreement_with_the_reference_ranks_the_refined_run_first(rows, worse):
    better, other = _agreement(rows, "refined"), _agreement(rows, worse)
    for key in ("ref_amp_ssim", "ref_phase_ssim"):
        assert better[key] > other[key], key
    for key in ("ref_frc_amp_px", "ref_frc_phase_px"):
        assert better[key] < other[key], key


@pytest.mark.parametrize("worse", ["file probe", "one iteration"])
def test_the_half_set_frc_ranks_the_refined_run_first(rows, worse):
    assert rows["refined"]["half_frc_px"] < rows[worse]["half_frc_px"]
