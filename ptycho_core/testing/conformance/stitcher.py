"""The stitcher check: stitching the true patches cut at the scan positions recovers the object."""

from __future__ import annotations

from ptycho_core.registry import StitcherSpec
from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    STITCH_TOLERANCE,
    TINY_SIM,
    Checker,
    CheckResult,
    fail,
    find_spec,
    raise_failures,
)

STITCHER_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "stitching_true_patches_recovers_object",
)


class StitcherChecks(Checker):
    """Stitcher checks: stitching true patches cut at the scan positions recovers the object."""

    kind = "stitcher"
    checks = STITCHER_CHECKS

    def __init__(
        self,
        spec: StitcherSpec,
        options: dict | None = None,
        tolerance: float = STITCH_TOLERANCE,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        super().__init__(spec, heavy_modules, plugin_module, extra_path)
        self.options = dict(options or {})
        self.tolerance = tolerance

    def stitching_true_patches_recovers_object(self) -> None:
        import numpy as np

        from ptycho_core import physics
        from ptycho_core.simulate import SimConfig, simulate

        self.require_available()
        unknown = sorted(set(self.options) - set(self.spec.options))
        if unknown:
            raise fail(f"options {unknown} are not declared by stitcher {self.spec.name!r}")
        ds = simulate(SimConfig(**TINY_SIM))
        # Integer positions: every weighted average of consistent patches is then exactly the object
        # (at sub-pixel positions bilinear interpolation smooths a few percent away).
        obj, positions, probe = ds.object, np.round(ds.positions), ds.probe
        patches = physics.extract(obj, positions, ds.patch_size).astype(np.complex64)
        options = {k: opt.default for k, opt in self.spec.options.items()} | self.options
        try:
            result = self.spec.load_factory()(patches, positions, obj.shape, probe, **options)
        except Exception as exc:
            raise fail(f"stitching raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, tuple) or len(result) != 2:
            raise fail("a stitcher returns (object (H, W), weights (H, W))")
        recon, weights = (np.asarray(a) for a in result)
        if recon.shape != obj.shape or weights.shape != obj.shape:
            raise fail(f"shapes {recon.shape}, {weights.shape}: expected the canvas shape {obj.shape}")
        if not np.iscomplexobj(recon) or np.iscomplexobj(weights):
            raise fail(f"object must be complex and weights real, got {recon.dtype} and {weights.dtype}")
        if not (np.isfinite(recon).all() and np.isfinite(weights).all() and (weights >= 0).all()):
            raise fail("object and weights must be finite, weights non-negative")
        lo = np.ceil(positions.min(axis=0)).astype(int)
        hi = np.floor(positions.max(axis=0)).astype(int) + 1
        region = np.zeros(obj.shape, dtype=bool)
        region[lo[0] : hi[0], lo[1] : hi[1]] = True
        region &= weights >= 0.1 * weights.max()
        if region.sum() < 0.5 * (hi - lo).prod():
            raise fail("weights cover less than half of the scanned region")
        err = np.linalg.norm((recon - obj)[region]) / np.linalg.norm(obj[region])
        if err > self.tolerance:
            raise fail(f"stitching the true patches gives a relative error {err:.3g} > {self.tolerance} in the scan")


def run_stitcher_checks(spec: StitcherSpec, checks: tuple[str, ...] = STITCHER_CHECKS, **kwargs) -> list[CheckResult]:
    """Run stitcher checks on `spec` (keyword arguments go to `StitcherChecks`: options, tolerance)."""
    return StitcherChecks(spec, **kwargs).run(checks)


def check_stitcher(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed stitcher `name` and run every check; raise ConformanceError if any fails."""
    spec = find_spec("stitcher", name, registry)
    return raise_failures(f"stitcher {spec.qualified_name!r}", run_stitcher_checks(spec, **kwargs))
