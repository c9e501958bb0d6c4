"""Registration of the FNO generators: specs only, no torch, numpy or neuralop import."""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, Option

REQUIRES = ("torch", "neuralop", "safetensors")
REFERENCE = (
    "Li et al., 'Fourier Neural Operator for Parametric Partial Differential Equations', ICLR 2021; "
    "Rahman et al., 'U-NO: U-shaped Neural Operators', TMLR 2023"
)


#: Training defaults per generator (TrainConfig fields; explicit flags win), chosen by measurement on
#: DEFAULT_SIM at gridsize 2 on a 2-core CPU so that each trains in about 90 s: see the README,
#: "Default training budget".
TRAIN_DEFAULTS = {
    "fno": {"epochs": 9, "precision": "auto", "schedule": "cosine", "lr": 3e-3},
    "hybrid": {"epochs": 7, "precision": "auto", "schedule": "cosine", "lr": 3e-3},
    "stable_hybrid": {"epochs": 7, "precision": "auto", "schedule": "cosine", "lr": 2e-3},
}


def _shared_options() -> dict:
    return {
        "width": Option("int", 32, "channels after the lifter (the first level's width)", min=1, max=1024),
        "modes": Option(
            "int", 12, "Fourier modes per axis (neuraloperator n_modes), clamped to each map size", min=1, max=512
        ),
        "joint_channels": Option(
            "bool",
            False,
            "gridsize > 1: feed the C patterns to one network as C channels instead of one shared "
            "per-pattern network (can collapse the anchor patches; see the plugin README)",
        ),
    }


def _uno_options() -> dict:
    return {
        **_shared_options(),
        "levels": Option(
            "int", 3, "encoder levels, each halving the map (reduced when N cannot be halved)", min=1, max=8
        ),
        "max_hidden_channels": Option("int", 512, "cap on the channel count as levels double it", min=1, max=4096),
    }


@hookimpl
def ptycho_register_generators(register):
    register(
        GeneratorSpec(
            name="fno",
            summary="cascaded FNO -> CNN refiner (spectral + local residual blocks), physics-trained",
            framework="torch",
            requires=REQUIRES,
            factory="ptycho_fno.models:build_fno",
            options={
                **_shared_options(),
                "blocks": Option("int", 4, "spectral blocks y = x + GELU(Spectral(x) + Conv3x3(x))", min=1, max=64),
                "cnn_blocks": Option("int", 2, "3x3 conv + GELU layers of the CNN refiner", min=0, max=64),
            },
            description=(
                "Lifter (two 3x3 convs, GELU) to `width` channels, `blocks` residual blocks of a spectral "
                "convolution (neuraloperator SpectralConv, computed as truncated DFTs) plus a 3x3 conv, a 1x1 conv, a CNN refiner "
                "and a 1x1 projection to real and imaginary parts (units of s0). Trained with the physics loss; the "
                "patterns of a group go through one shared network unless joint_channels."
            ),
            reference=REFERENCE,
            train_defaults=TRAIN_DEFAULTS["fno"],
        )
    )
    register(
        GeneratorSpec(
            name="hybrid",
            summary="U-NO: spectral+local encoder blocks, spectral bottleneck, CNN decoder with skips",
            framework="torch",
            requires=REQUIRES,
            factory="ptycho_fno.models:build_hybrid",
            options=_uno_options(),
            description=(
                "Lifter, then per level a block y = x + GELU(Spectral(x) + Conv3x3(x)) and a stride-2 conv "
                "doubling the channels (up to max_hidden_channels); a bottleneck block with half the modes; "
                "decoder levels of stride-2 transposed conv, skip concatenation and two 3x3 convs; a 1x1 "
                "projection to real and imaginary parts (units of s0). Trained with the physics loss; the patterns "
                "of a group go through one shared network unless joint_channels."
            ),
            reference=REFERENCE,
            train_defaults=TRAIN_DEFAULTS["hybrid"],
        )
    )
    register(
        GeneratorSpec(
            name="stable_hybrid",
            summary="the U-NO built from normalised, LayerScale-gated residual blocks (near-identity at init)",
            framework="torch",
            requires=REQUIRES,
            factory="ptycho_fno.models:build_stable_hybrid",
            options={
                **_uno_options(),
                "layerscale_init": Option(
                    "float", 1e-3, "initial per-channel gate gamma of each block's update", min=0.0, max=10.0
                ),
            },
            description=(
                "The hybrid U-NO with StablePtychoBlock: y = x + gamma * InstanceNorm(GELU(Spectral(x) + "
                "Conv3x3(x))), gamma per channel initialised at layerscale_init. The reference's collapse of this "
                "model was the twin-image ambiguity of gridsize 1, not the block; see the plugin README."
            ),
            reference=REFERENCE,
            train_defaults=TRAIN_DEFAULTS["stable_hybrid"],
        )
    )
