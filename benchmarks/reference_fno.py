"""Ours against the PtychoPINN reference FNO, paired and interleaved in one process (bench_train.py
--reference PATH).

PATH is a checkout of PtychoPINN (https://github.com/hoidn/PtychoPINN). Its cascaded FNO
(`ptycho_torch/generators/fno.py`, `CascadedFNOGenerator`) is loaded from that file alone (not
its package, which needs Lightning) and built with the architecture of our `fno`: width, blocks,
modes and CNN blocks as given, one input pattern (gridsize 1). The reference imports
neuraloperator as `neuraloperator`, the distribution's old module name; the installed module is
`neuralop`, so it is aliased, otherwise the reference would silently fall back to its own
positive-quadrant spectral convolution, another architecture.

Each figure times one step of ours then one of the reference, `steps` times per round, `rounds`
rounds, and reports the median of the paired ratios ours / reference (and each side's median
rate). Both sides use the same data, the same loss for "full step" (our physics loss: the
reference's output (B, N, N, C, 2) is read as complex patches) and the same optimiser.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path

REFERENCE_FILE = "ptycho_torch/generators/fno.py"


def load_reference_module(path: str):
    """The reference's fno.py as a module (neuraloperator aliased to neuralop); SystemExit if absent."""
    file = Path(path) / REFERENCE_FILE
    if not file.is_file():
        raise SystemExit(f"--reference {path}: no {REFERENCE_FILE}: give a checkout of PtychoPINN")
    import neuralop
    import neuralop.layers
    import neuralop.layers.spectral_convolution

    if importlib.util.find_spec("neuraloperator") is None:
        sys.modules.setdefault("neuraloperator", neuralop)
        sys.modules.setdefault("neuraloperator.layers", neuralop.layers)
        sys.modules.setdefault("neuraloperator.layers.spectral_convolution", neuralop.layers.spectral_convolution)
    spec = importlib.util.spec_from_file_location("ptychopinn_reference_fno", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not getattr(module, "HAS_NEURALOPERATOR", False):
        raise SystemExit(f"{file}: the reference did not find neuraloperator's SpectralConv")
    return module


class ReferenceNetwork:
    """Builds the reference network and reads its output as our (B, C, N, N) complex patches."""

    def __init__(self, module, *, width: int, blocks: int, modes: int, cnn_blocks: int, s0: float):
        import math

        import torch
        from torch import nn

        core = module.CascadedFNOGenerator(
            in_channels=1,
            out_channels=2,
            hidden_channels=width,
            fno_blocks=blocks,
            cnn_blocks=cnn_blocks,
            modes=modes,
            C=1,
        )

        class Wrapped(nn.Module):
            def __init__(self):
                super().__init__()
                self.core = core
                self.log_scale = nn.Parameter(torch.tensor(math.log(s0), dtype=torch.float32))

            def forward(self, x):
                out = self.core(x).float()  # (B, N, N, C, 2)
                patches = torch.complex(out[..., 0], out[..., 1]).permute(0, 3, 1, 2)
                return patches * torch.exp(self.log_scale)

        self.model = Wrapped()


def _pair(ours, ref, rounds: int, steps: int) -> tuple[float, float, float]:
    """(median paired ratio ours/ref of rates, ours median s, ref median s); each side warmed once."""
    ours()
    ref()
    ratios, a, b = [], [], []
    for _ in range(rounds):
        for _ in range(steps):
            t0 = time.perf_counter()
            ours()
            t1 = time.perf_counter()
            ref()
            t2 = time.perf_counter()
            a.append(t1 - t0)
            b.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ratios), statistics.median(a), statistics.median(b)


class _Steps:
    """Step functions over one batch of the training set: a training step of a network (network-only
    or with our physics loss, fp32 or bf16 autocast), our `predict`, the reference's forward."""

    def __init__(self, train, batch: int):
        import torch

        self.torch = torch
        self.train = train
        self.diffraction = torch.from_numpy(train.diffraction[:batch].copy())
        self.offsets = torch.from_numpy(train.offsets[:batch].copy())
        self.probe = torch.from_numpy(train.probe.astype("complex64"))
        self.scale, self.canvas = float(train.input_scale), int(train.canvas_size)

    def train_step(self, model, bf16: bool, physics: bool):
        from ptycho_core.torch import losses

        torch = self.torch
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                patches = model(self.diffraction * self.scale)
            if physics:
                loss = losses.physics_loss(
                    patches, self.diffraction, self.probe, self.scale, offsets=self.offsets, canvas_size=self.canvas
                )
            else:
                loss = (patches.real.square() + patches.imag.square()).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

        return run

    def predict(self, gen, groups: int, precision: str):
        x = self.train.diffraction[:1].repeat(groups, axis=0)

        def run():
            gen.meta["precision"] = precision
            gen.predict(x)

        return run

    def forward(self, model, groups: int):
        torch = self.torch
        x = torch.from_numpy(self.train.diffraction[:1].repeat(groups, axis=0)) * self.scale

        def run():
            model.eval()
            with torch.inference_mode():
                model(x)

        return run


def compare(args, prepared, ours_gen, options: dict) -> None:
    """Print the paired table ours `fno` vs the reference (see the module docstring)."""
    import torch

    from ptycho_core.torch.trainer import resolve_precision

    train = prepared.train
    arch = {k: int(options.get(k, d)) for k, d in (("width", 32), ("blocks", 4), ("modes", 12), ("cnn_blocks", 2))}
    torch.manual_seed(0)
    ref = ReferenceNetwork(load_reference_module(args.reference), **arch, s0=train.s0).model
    ours = ours_gen.model
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    batch = min(args.batch_size, train.n_groups)
    steps = _Steps(train, batch)
    print(
        f"# reference: {args.reference}/{REFERENCE_FILE} CascadedFNOGenerator({arch}, C=1); "
        f"params ours {count(ours):,d} reference {count(ref):,d}"
    )
    print(f"# paired and interleaved: {args.ref_rounds} rounds x {args.ref_steps} steps per figure, median ratios")
    best = resolve_precision("auto", torch.device("cpu"))
    ours_step, ref_step = steps.train_step, steps.train_step
    figures = [  # label, groups per call ours / reference, ours, reference
        ("network-only train step, fp32", batch, batch, ours_step(ours, False, False), ref_step(ref, False, False)),
        ("full step, our physics loss, fp32", batch, batch, ours_step(ours, False, True), ref_step(ref, False, True)),
        ("inference batch 16, fp32", 16, 16, steps.predict(ours_gen, 16, "fp32"), steps.forward(ref, 16)),
        ("inference batch 64, fp32", 64, 64, steps.predict(ours_gen, 64, "fp32"), steps.forward(ref, 64)),
        (
            f"inference b64 ours {best} / ref fp32 b16",
            64,
            16,
            steps.predict(ours_gen, 64, best),
            steps.forward(ref, 16),
        ),
        ("network-only train step, bf16", batch, batch, ours_step(ours, True, False), ref_step(ref, True, False)),
        ("full step bf16 ours / fp32 reference", batch, batch, ours_step(ours, True, True), ref_step(ref, False, True)),
    ]
    print(f"{'figure':<48} {'ours /s':>9} {'ref /s':>9} {'ours/ref':>9}")
    for label, n_ours, n_ref, a, b in figures:
        try:
            ratio, sa, sb = _pair(a, b, args.ref_rounds, args.ref_steps)
        except Exception as exc:  # noqa: BLE001 - a figure the reference cannot run is reported
            print(f"{label:<48} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}")
            continue
        print(f"{label:<48} {n_ours / sa:>9.1f} {n_ref / sb:>9.1f} {ratio * n_ours / n_ref:>9.2f}")
        sys.stdout.flush()
    ours_gen.meta["precision"] = "fp32"
