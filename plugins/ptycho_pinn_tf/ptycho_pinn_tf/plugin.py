"""Registration of `pinn_tf`: a cheap spec only. Imports no TensorFlow, Keras or numpy."""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, Option
from ptycho_pinn_tf.settings import SETTINGS


@hookimpl
def ptycho_register_generators(register):
    register(
        GeneratorSpec(
            name="pinn_tf",
            summary="PtychoPINN: physics-informed CNN, overlap constraint for gridsize > 1 (TensorFlow)",
            framework="tensorflow",
            kind="learned",
            supervised=False,
            requires=("tensorflow", "keras", "h5py"),
            factory="ptycho_pinn_tf.generator:build_pinn_tf",
            options={
                "filter_scale": Option(
                    "int", 2, "encoder/decoder width multiplier (32, 64, 128 filters x this)", min=1, max=64
                ),
                "overlap": Option("bool", True, "merge the C patches of a group on a shared canvas (C > 1)"),
                "joint_channels": Option(
                    "bool",
                    True,
                    "gridsize > 1: feed the C patterns to the network as C channels (the original "
                    "formulation); false: one shared per-pattern network (see the plugin README)",
                ),
            },
            description=(
                "A U-shaped CNN encoder with separate amplitude (sigmoid) and phase (pi*tanh) decoders, "
                "trained without ground truth through the differentiable far-field forward model. With "
                "gridsize g > 1 the g*g patterns of a group enter as g*g channels and are explained by one "
                "shared object region (joint_channels=false: each pattern through the same network alone)."
            ),
            reference="Hoidn, Mishra, Mehta, Sci. Rep. 13, 22789 (2023)",
            # Set in the compare child before TensorFlow is imported (never TF_ENABLE_ONEDNN_OPTS).
            # measured on DEFAULT_SIM at gridsize 2, 2 CPU cores: about 5 s an epoch (joint channels); the
            # plateau schedule at lr 1e-3 (cosine from 2e-3 diverged to a flat object): see the README
            train_defaults={"epochs": 14},
            engine_settings=SETTINGS,
            child_env={
                "KERAS_BACKEND": "tensorflow",
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_NUM_INTRAOP_THREADS": "{threads}",
                "TF_NUM_INTEROP_THREADS": "{threads}",
            },
        )
    )
