"""The stitcher check: stitching the true patches cut at the scan positions recovers the object,
at whole-pixel positions (to STITCH_TOLERANCE) and at the simulation's sub-pixel positions (a
smooth object, to SUBPIXEL_STITCH_TOLERANCE), with every pixel of the scanned region covered."""

from __future__ import annotations

from ptycho_core.registry import StitcherSpec
from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    STITCH_TOLERANCE,
    SUBPIXEL_PHASE_SLOPE,
    SUBPIXEL_STITCH_TOLERANCE,
    TINY_SIM,
    CheckResult,
    fail,
    find_spec,
    raise_failures,
)
from ptycho_core.testing.conformance.checker import Checker

STITCHER_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "stitching_true_patches_recovers_object",
)


class StitcherChecks(Checker):
    """Stitcher checks: stitching true patches cut at the scan positions recovers the object
    (whole-pixel and sub-pixel positions, the scanned region fully covered)."""

    kind = "stitcher"
    checks = STITCHER_CHECKS

    def __init__(
        self,
        spec: StitcherSpec,
        options: dict | None = None,
        tolerance: float = STITCH_TOLERANCE,
        subpixel_tolerance: float = SUBPIXEL_STITCH_TOLERANCE,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        super().__init__(spec, heavy_modules, plugin_module, extra_path)
        self.options = dict(options or {})
        self.tolerance = tolerance
        self.subpixel_tolerance = subpixel_tolerance

    def stitching_true_patches_recovers_object(self) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        from ptycho_core import physics  # lazy: loaded when listing; the target imports numpy
        from ptycho_core.simulate import SimConfig, simulate  # lazy: loaded when listing; the target imports numpy

        self.require_available()
        unknown = sorted(set(self.options) - set(self.spec.options))
        if unknown:
            raise fail(f"options {unknown} are not declared by stitcher {self.spec.name!r}")
        ds = simulate(SimConfig(**TINY_SIM))
        # Whole-pixel positions: every weighted average of consistent patches is then exactly the
        # object. At the simulation's sub-pixel positions bilinear interpolation smooths a little
        # away, so that case uses a smooth object and a looser tolerance; a stitcher that rounds
        # or truncates the positions fails it.
        ramp = smooth_object(ds.object.shape)
        cases = (
            ("whole-pixel positions", ds.object, np.round(ds.positions), self.tolerance),
            ("sub-pixel positions", ramp, ds.positions, self.subpixel_tolerance),
        )
        for label, obj, positions, tolerance in cases:
            patches = physics.extract(obj, positions, ds.patch_size).astype(np.complex64)
            recon, weights = self._stitch(patches, positions, obj.shape, ds.probe)
            region = scan_box(positions, obj.shape)
            if not (weights[region] > 0).all():
                raise fail(f"{label}: weights are zero on part of the scanned region (it must be fully covered)")
            err = np.linalg.norm((recon - obj)[region]) / np.linalg.norm(obj[region])
            if err > tolerance:
                raise fail(f"{label}: stitching the true patches gives a relative error {err:.3g} > {tolerance:g}")

    def _stitch(self, patches, positions, shape, probe):
        """The stitcher's (object, weights), checked for type, shape and finiteness."""
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        options = {k: opt.default for k, opt in self.spec.options.items()} | self.options
        try:
            result = self.spec.load_factory()(patches, positions, shape, probe, **options)
        except Exception as exc:
            raise fail(f"stitching raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, tuple) or len(result) != 2:
            raise fail("a stitcher returns (object (H, W), weights (H, W))")
        recon, weights = (np.asarray(a) for a in result)
        if recon.shape != shape or weights.shape != shape:
            raise fail(f"shapes {recon.shape}, {weights.shape}: expected the canvas shape {shape}")
        if not np.iscomplexobj(recon) or np.iscomplexobj(weights):
            raise fail(f"object must be complex and weights real, got {recon.dtype} and {weights.dtype}")
        if not (np.isfinite(recon).all() and np.isfinite(weights).all() and (weights >= 0).all()):
            raise fail("object and weights must be finite, weights non-negative")
        return recon, weights


def smooth_object(shape):
    """A slowly varying complex object (H, W): amplitude 1 .. 1.2 down the rows, a phase ramp of
    SUBPIXEL_PHASE_SLOPE rad/px (bilinear interpolation of it is accurate to a fraction of a percent)."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (1 + 0.2 * yy / shape[0]) * np.exp(1j * SUBPIXEL_PHASE_SLOPE * (xx + 0.5 * yy))


def scan_box(positions, shape):
    """Boolean (H, W) mask of the rectangle spanned by the scan centres (whole pixels inside it)."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    lo = np.ceil(positions.min(axis=0)).astype(int)
    hi = np.floor(positions.max(axis=0)).astype(int) + 1
    region = np.zeros(shape, dtype=bool)
    region[lo[0] : hi[0], lo[1] : hi[1]] = True
    return region


def run_stitcher_checks(spec: StitcherSpec, checks: tuple[str, ...] = STITCHER_CHECKS, **kwargs) -> list[CheckResult]:
    """Run stitcher checks on `spec` (keyword arguments go to `StitcherChecks`: options, tolerance)."""
    return StitcherChecks(spec, **kwargs).run(checks)


def check_stitcher(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed stitcher `name` and run every check; raise ConformanceError if any fails."""
    spec = find_spec("stitcher", name, registry)
    return raise_failures(f"stitcher {spec.qualified_name!r}", run_stitcher_checks(spec, **kwargs))
