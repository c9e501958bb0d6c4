"""The pty-chi engines: registration, the conventions between pty-chi and ptycho (checked against
`physics.extract` and `physics.forward`), reconstructions of tiny data by every engine, refined
probe and positions, the timeout, option errors, and the torchvision import beside CPU torch.

Under CI=true a missing pty-chi fails these tests instead of skipping them."""

import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import ptychi  # noqa: F401
    import torch
else:
    pytest.importorskip("ptychi")
    torch = pytest.importorskip("torch")

from ptycho_ptychi import plugin  # noqa: E402
from ptycho_ptychi.engines import MARGIN, build_dm, build_epie, build_lsqml, build_rpie  # noqa: E402

from ptycho_core import physics, pipeline  # noqa: E402
from ptycho_core.generator import Reconstruction, TrainConfig  # noqa: E402
from ptycho_core.plugins import PluginHost  # noqa: E402
from ptycho_core.simulate import SimConfig, simulate_pair  # noqa: E402

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
CPU = TrainConfig(device="cpu", seed=0)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)  # tiny tensors: threads only cost time on a shared 2-core machine
    return simulate_pair(TINY)[1]


def _run(build, tiny, **options):
    events = []
    estimate = build(**options).reconstruct(pipeline.scan_for(tiny), CPU, events.append)
    return estimate, events, pipeline.score_whole_object(estimate.object, tiny).metrics


def test_four_iterative_engines_register_without_importing_pty_chi():
    host = PluginHost(load="")
    with host.registered(plugin, "ptycho-ptychi-test"):
        registry = host.registry()
        specs = {name: registry.generator(name) for name in ("lsqml", "epie", "rpie", "dm")}
    for name, spec in specs.items():
        assert spec.kind == "iterative" and spec.factory == f"ptycho_ptychi.engines:build_{name}"
        assert {"torch", "ptychi", "torchvision"} <= set(spec.requires)
        assert {"iterations", "minibatch", "refine_probe", "refine_positions"} <= set(spec.options)
    assert {"object_step", "probe_step", "noise_model"} <= set(specs["lsqml"].options)
    assert "alpha" in specs["epie"].options and "object_step" not in specs["dm"].options
    assert specs["lsqml"].resolve_options({"iterations": "7", "refine_probe": "false"})["iterations"] == 7


def _forward_of_truth(tiny, positions):
    """pty-chi's predicted intensities for the true object at `positions` (its forward model)."""
    scan = pipeline.scan_for(tiny)
    scan.positions = positions
    task = build_lsqml(iterations=1)._task(scan, CPU)[1]
    with torch.no_grad():
        task.reconstructor.parameter_group.object.set_data(torch.as_tensor(np.pad(tiny.object, MARGIN)[None]))
        return task.reconstructor.forward_model.forward(torch.arange(scan.n)).detach().numpy().astype(np.float64)


def _ptycho_intensities(tiny, positions):
    """The same from ptycho's physics: (N A)^2 with zero frequency at [0, 0], as pty-chi keeps it."""
    clean = physics.forward(tiny.probe, physics.extract(tiny.object, positions, 16)).astype(np.float64)
    return np.fft.ifftshift((16 * clean) ** 2, axes=(-2, -1))


def test_pty_chi_predicts_ptycho_s_intensities_from_the_true_object(tiny):
    # The engine's conventions (intensities (N A)^2, the probe unchanged, positions p = y with the
    # origin at buffer pixel -1/2): pty-chi's forward model of the true object is ptycho's at whole
    # pixels, where no interpolation is involved ...
    whole = np.round(tiny.positions)
    ours = _ptycho_intensities(tiny, whole)
    assert np.abs(_forward_of_truth(tiny, whole) - ours).max() <= 1e-4 * ours.max()
    # ... and one pixel off is far worse than the two interpolations (pty-chi shifts the probe by the
    # sub-pixel rest in Fourier space, ptycho interpolates the object bilinearly) at sub-pixel positions.
    off = np.abs(_forward_of_truth(tiny, whole + [0, 1]) - ours).mean() / ours.mean()
    ours = _ptycho_intensities(tiny, tiny.positions)
    sub = np.abs(_forward_of_truth(tiny, tiny.positions) - ours).mean() / ours.mean()
    assert sub < 0.05 and off > 3 * sub, (sub, off)


def test_lsqml_reconstructs_the_tiny_object(tiny):
    estimate, events, scores = _run(build_lsqml, tiny, iterations=30, refine_probe=True)
    assert estimate.object.shape == tiny.object.shape and estimate.object.dtype == np.complex64
    assert len(estimate.history.loss) == 30 and estimate.history.loss[-1] < 0.2 * estimate.history.loss[0]
    assert [e["epoch"] for e in events] == list(range(1, 31)) and all(e["step"] == e["steps"] for e in events)
    assert scores["amp_ssim"] > 0.85 and scores["phase_ssim"] > 0.5 and scores["data_error"] < 0.1
    assert estimate.probe.shape == tiny.probe.shape  # refined when asked
    assert estimate.positions is None


@pytest.mark.parametrize("build", [build_epie, build_rpie, build_dm])
def test_the_other_engines_lower_the_loss_on_the_object_grid(tiny, build):
    estimate, _, scores = _run(build, tiny, iterations=10)
    assert estimate.object.shape == tiny.object.shape
    assert estimate.history.loss[-1] < estimate.history.loss[0]
    assert np.isfinite(scores["amp_ssim"]) and scores["data_error"] < 0.5


def test_position_correction_returns_positions_on_the_object_grid(tiny):
    estimate, _, _ = _run(build_lsqml, tiny, iterations=5, refine_positions=True, refine_probe=False)
    assert estimate.probe is None and estimate.positions.shape == tiny.positions.shape
    assert np.abs(estimate.positions - tiny.positions).max() < 1.5  # started on them, small steps


def test_the_timeout_stops_after_the_iteration_that_crosses_it(tiny):
    scan = pipeline.scan_for(tiny)
    estimate = build_lsqml(iterations=500).reconstruct(scan, TrainConfig(device="cpu", timeout=0.01), lambda e: None)
    assert len(estimate.history.loss) < 500 and estimate.history.stopped.startswith("timeout after")


def test_bad_option_values_are_refused_by_the_factory():
    with pytest.raises(ValueError, match="unknown option"):
        build_lsqml(speed=2)
    with pytest.raises(ValueError, match="iterations"):
        build_epie(iterations=0)


def test_torchvision_imports_beside_the_cpu_torch_and_pty_chi_with_it():
    code = (
        "from ptycho_ptychi._torchvision import ensure_torchvision; ensure_torchvision(); "
        "import torchvision, ptychi.api; from torchvision.transforms import GaussianBlur; "
        "import torch; print(tuple(GaussianBlur(9, 3)(torch.ones(1, 1, 12, 12)).shape))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("(1, 1, 12, 12)")


def test_an_engine_that_diverges_keeps_its_best_finite_iterate_and_says_so(monkeypatch, tiny):
    from ptycho_ptychi._torchvision import ensure_torchvision

    ensure_torchvision()
    from ptychi.api.task import PtychographyTask

    original = PtychographyTask.get_data_to_cpu
    calls = {"object": 0}

    def poisoned(self, name, as_numpy=False):
        out = original(self, name, as_numpy)
        if name == "object":
            calls["object"] += 1
            if calls["object"] == 5:  # the initial guess and iterations 1-3 are finite, iteration 4 is not
                out = out * np.nan
        return out

    monkeypatch.setattr(PtychographyTask, "get_data_to_cpu", poisoned)
    estimate = build_rpie(iterations=8, refine_probe=True).reconstruct(pipeline.scan_for(tiny), CPU, lambda e: None)
    assert estimate.history.stopped.startswith("diverged at iteration 4 (kept iteration ")
    assert len(estimate.history.loss) == 3 and np.isfinite(estimate.history.loss).all()
    assert np.isfinite(estimate.object).all() and np.isfinite(estimate.probe).all()


@pytest.mark.parametrize("build", [build_rpie, build_lsqml])
def test_started_at_the_truth_an_engine_stays_there_and_keeps_snapshots(tiny, build):
    start = Reconstruction(object=tiny.object, probe=tiny.probe)
    scan = pipeline.scan_for(tiny)
    estimate = build(iterations=5).reconstruct(scan, CPU, lambda e: None, start=start, snapshot_iterations=(1, 3, 5))
    scores = pipeline.score_whole_object(estimate.object, tiny).metrics
    assert scores["amp_ssim"] > 0.95 and scores["phase_ssim"] > 0.95
    flat = _run(build, tiny, iterations=5)[2]  # the engine's own start is far behind after 5 iterations
    assert scores["phase_ssim"] > flat["phase_ssim"] + 0.1
    assert sorted(estimate.snapshots) == [1, 3, 5]
    np.testing.assert_array_equal(estimate.snapshots[5], estimate.object)
    assert all(s.shape == tiny.object.shape and s.dtype == np.complex64 for s in estimate.snapshots.values())
    seconds = estimate.history.seconds
    assert all(0 < a < b for a, b in zip(seconds, seconds[1:]))


def test_the_engine_starts_from_the_initial_probe(tiny):
    # pty-chi rescales object and probe together (its object-probe ambiguity removal), so a scaled
    # probe would not show; a shifted one does: started at the truth with it, rPIE ends elsewhere
    def run(probe):
        start = Reconstruction(object=tiny.object, probe=probe)
        estimate = build_rpie(iterations=3).reconstruct(pipeline.scan_for(tiny), CPU, lambda e: None, start=start)
        return pipeline.score_whole_object(estimate.object, tiny).metrics["phase_ssim"]

    right, wrong = run(tiny.probe), run(np.roll(tiny.probe, 3, axis=-1))
    assert right > 0.95 and wrong < right - 0.05, (right, wrong)
