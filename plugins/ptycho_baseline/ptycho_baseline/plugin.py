"""Registration of the `baseline` generator: specs only, no torch import."""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, Option


@hookimpl
def ptycho_register_generators(register):
    register(
        GeneratorSpec(
            name="baseline",
            summary="supervised PtychoNN-style CNN: one encoder, amplitude and phase decoders",
            framework="torch",
            supervised=True,
            requires=("torch", "safetensors"),
            factory="ptycho_baseline.network:build_baseline",
            options={
                "scale": Option(
                    "float", 1.0, "filter multiplier: stages have 32, 64, 128 filters times scale", min=0.05, max=16.0
                ),
            },
            description=(
                "Encoder of three conv-pool stages (32, 64, 128 filters, 3x3 convs, ReLU, max-pool) and two "
                "decoders of three conv-upsample stages: amplitude (softplus, units of s0) and phase (pi*tanh). "
                "Each diffraction pattern is mapped independently; trained on ground-truth patches (amplitude "
                "and wrapped-phase MAE). Needs data with a ground-truth object. Patch size N divisible by 8."
            ),
            reference="Cherukara et al., 'AI-enabled high-resolution scanning coherent diffraction imaging', "
            "Appl. Phys. Lett. 117, 044103 (2020) (PtychoNN)",
            # measured on DEFAULT_SIM at gridsize 2, 2 CPU cores: about 5 s an epoch in bf16 (README)
            train_defaults={"epochs": 16, "precision": "auto", "schedule": "cosine", "lr": 2e-3},
        )
    )
