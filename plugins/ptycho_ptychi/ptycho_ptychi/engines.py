"""pty-chi's iterative engines as ptycho generators (`kind="iterative"`, docs/design.md#contracts).

`build_lsqml(**options)` etc. return a `PtychiEngine`; `reconstruct(scan, config, progress)` runs
pty-chi's `PtychographyTask` on the scan and returns the object on the scan's object grid. The
conversion between the two conventions, once:

- data: pty-chi takes measured intensities with the zero frequency at the centre (it shifts them,
  `fft_shift=True`) and an unnormalised FFT, so `I = (N * A)^2` for our amplitudes `A` (our
  forward model is `|fftshift(fft2(P o))| / N`); the probe and the object keep their scale.
- positions: pty-chi's LSQML, PIE and DM cut object patches at whole pixels and shift the probe by
  the sub-pixel rest (Fourier shift). With the position origin at buffer pixel `ORIGIN` (-1/2,
  `SPECIFIED`), pty-chi's patch for position `p` starts at `round(p) + ORIGIN - (N - 1) / 2 =
  round(p) - N / 2`, moved by `p - round(p)`: ours starts at `y - N // 2`, so `p = y` on the same
  grid (the tests check pty-chi's forward model against ptycho's at whole-pixel positions).
  The object buffer is the scan's object grid plus `MARGIN` pixels on each side (pty-chi's
  sub-pixel shifts read one pixel beyond a patch), cropped off again in the result.
- the object starts as ones times `s0` (the rms object amplitude the data imply); the probe is
  the scan's, refined only with `refine_probe`; positions are refined only with
  `refine_positions` (returned, minus the half pixel, on our grid).

Each iteration is one pty-chi epoch (`task.run(1)`): its loss goes to `progress` and the History;
`config.timeout` stops after the iteration that crosses it, keeping the estimate.
"""

from __future__ import annotations

import time

#: Pixels added around the object grid on each side of pty-chi's object buffer.
MARGIN = 2

#: The buffer pixel coordinates of pty-chi's position origin (see the module docstring).
ORIGIN = (-0.5, -0.5)

#: engine name -> (pty-chi options class, whether it takes a minibatch size).
ENGINES = {
    "lsqml": ("LSQMLOptions", True),
    "epie": ("EPIEOptions", True),
    "rpie": ("RPIEOptions", True),
    "dm": ("DMOptions", False),
}


class PtychiEngine:
    """One pty-chi engine with its options (see `ptycho_ptychi.plugin` for their meaning)."""

    def __init__(self, engine: str, **options):
        if engine not in ENGINES:
            raise ValueError(f"unknown pty-chi engine {engine!r} (known: {', '.join(ENGINES)})")
        if options.get("iterations", 1) < 1:
            raise ValueError(f"iterations must be at least 1, not {options['iterations']}")
        self.engine = engine
        self.options = dict(options)
        self._device = None

    # -- the contract ---------------------------------------------------------------------------------
    def reconstruct(self, scan, config, progress):
        import numpy as np

        from ptycho_core.generator import History, Reconstruction

        torch, task = self._task(scan, config)
        history, start = History(), time.perf_counter()
        iterations = self.options["iterations"]
        for k in range(1, iterations + 1):
            task.run(1)
            loss = float(task.reconstructor.loss_tracker.table["loss"].iloc[-1])
            history.loss.append(loss)
            history.val_loss.append(None)
            history.lr.append(float(self.options.get("object_step", 1.0)))
            history.seconds.append(time.perf_counter() - start)
            progress({"epoch": k, "epochs": iterations, "step": 1, "steps": 1, "loss": loss, "val_loss": None})
            if not np.isfinite(loss):
                history.stopped = f"non-finite loss at epoch {k}"
                break
            if config.timeout and time.perf_counter() - start >= config.timeout and k < iterations:
                history.stopped = f"timeout after {k} iterations ({config.timeout:g} s)"
                break
        return self._estimate(task, scan, history, Reconstruction)

    def device_info(self) -> dict:
        """The GPU pty-chi ran on (None on CPU) and torch's peak GPU memory in MiB."""
        import torch

        if self._device != "cuda":
            return {"gpu": None, "peak_gpu_mib": None}
        return {"gpu": torch.cuda.get_device_name(), "peak_gpu_mib": torch.cuda.max_memory_allocated() / 1024**2}

    # -- pty-chi ------------------------------------------------------------------------------------------
    def _task(self, scan, config):
        """(torch, a built PtychographyTask) for `scan` with this engine's options."""
        import numpy as np

        from ptycho_ptychi._torchvision import ensure_torchvision

        ensure_torchvision()
        import torch
        from ptychi import api
        from ptychi.api.task import PtychographyTask

        from ptycho_core import physics
        from ptycho_core.torch.trainer import resolve_device

        self._device = resolve_device(config.device).type
        torch.manual_seed(config.seed)
        options = self._options(api, config, scan)
        n = scan.patch_size
        shape = (scan.object_shape[0] + 2 * MARGIN, scan.object_shape[1] + 2 * MARGIN)
        s0 = physics.amplitude_scale(scan.diffraction, scan.probe)
        positions = np.asarray(scan.positions, dtype=np.float64) + MARGIN
        intensities = (n * np.asarray(scan.diffraction, dtype=np.float32)) ** 2
        task = PtychographyTask(
            options,
            diffraction_data=intensities,
            object_data=np.full((1, *shape), s0, dtype=np.complex64),
            probe_data=np.asarray(scan.probe, dtype=np.complex64)[None, None],
            probe_position_x_px=positions[:, 1],
            probe_position_y_px=positions[:, 0],
            valid_pixel_mask=None if scan.mask is None else _one_mask(scan.mask),
        )
        return torch, task

    def _options(self, api, config, scan):
        """pty-chi's options object for this engine: its defaults, with ours applied."""
        o = self.options
        options = getattr(api, ENGINES[self.engine][0])()
        options.data_options.fft_shift = True
        options.object_options.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
        options.object_options.position_origin_coords = ORIGIN
        options.object_options.optimizable = True
        options.probe_options.optimizable = o["refine_probe"]
        if "object_step" in o:
            options.object_options.step_size = o["object_step"]
            options.probe_options.step_size = o["probe_step"]
        options.probe_position_options.optimizable = o["refine_positions"]
        options.probe_position_options.step_size = o["position_step"]
        rec = options.reconstructor_options
        rec.num_epochs = o["iterations"]
        if ENGINES[self.engine][1]:
            rec.batch_size = min(o["minibatch"], scan.n)
        else:
            rec.chunk_length = min(o["minibatch"], scan.n)
        if self.engine == "lsqml":
            rec.noise_model = getattr(api.NoiseModels, o["noise_model"].upper())
        if self.engine in ("epie", "rpie"):
            options.object_options.alpha = o["alpha"]
            options.probe_options.alpha = o["alpha"]
        rec.random_seed = config.seed
        rec.default_device = api.Devices.GPU if self._device == "cuda" else api.Devices.CPU
        rec.allow_nondeterministic_algorithms = False
        return options

    def _estimate(self, task, scan, history, estimate_type):
        import numpy as np

        obj = task.get_data_to_cpu("object", as_numpy=True)[0]
        obj = obj[MARGIN : MARGIN + scan.object_shape[0], MARGIN : MARGIN + scan.object_shape[1]]
        probe = positions = None
        if self.options["refine_probe"]:
            probe = np.asarray(task.get_data_to_cpu("probe", as_numpy=True)).reshape(-1, *scan.probe.shape)[0]
        if self.options["refine_positions"]:
            pos = np.asarray(task.get_data_to_cpu("probe_positions", as_numpy=True), dtype=np.float64)
            positions = pos - MARGIN
        return estimate_type(
            object=np.ascontiguousarray(obj, dtype=np.complex64),
            history=history,
            probe=None if probe is None else probe.astype(np.complex64),
            positions=positions,
        )


def _one_mask(mask):
    """pty-chi takes one (N, N) mask: a per-pattern mask is reduced to the pixels valid in all."""
    import numpy as np

    mask = np.asarray(mask, dtype=bool)
    return mask if mask.ndim == 2 else mask.all(axis=0)


def _factory(engine: str, options: dict) -> PtychiEngine:
    """A PtychiEngine with the declared defaults (`ptycho_ptychi.plugin.engine_options`) under
    `options`; an unknown option is a ValueError."""
    from ptycho_ptychi.plugin import engine_options

    declared = engine_options(engine)
    unknown = sorted(set(options) - set(declared))
    if unknown:
        raise ValueError(f"{engine}: unknown option(s) {', '.join(unknown)} (known: {', '.join(declared)})")
    return PtychiEngine(engine, **{**{k: opt.default for k, opt in declared.items()}, **options})


def build_lsqml(**options) -> PtychiEngine:
    return _factory("lsqml", options)


def build_epie(**options) -> PtychiEngine:
    return _factory("epie", options)


def build_rpie(**options) -> PtychiEngine:
    return _factory("rpie", options)


def build_dm(**options) -> PtychiEngine:
    return _factory("dm", options)
