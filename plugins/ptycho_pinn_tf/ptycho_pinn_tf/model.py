"""The PtychoPINN network (Keras 3, built in code; only its weights are ever saved).

Input: normalised diffraction amplitudes (B, N, N, C) in Keras (channels-last) layout.
Encoder: conv-conv-maxpool blocks of 32, 64, 128 filters (times `filter_scale`) at N = 64, one
block more per doubling of N and one fewer per halving (at least one). Two decoders of
conv-conv-upsample blocks mirror it: amplitude (sigmoid, scaled by 2 * s, where s = exp(log_scale)
is one learnable global scale initialised at s0) and phase (pi * tanh). Outputs: amplitude and
phase (B, N, N, C) float32; `to_patches` combines them into channel-first complex64 patches.
No Lambda layers: the custom layers (`GlobalAmplitudeScale`, `NearestUpsample2D`) are small
subclasses with `get_config`.
"""

from __future__ import annotations

import math

from ptycho_pinn_tf.env import keras, tf

#: Filters of the first encoder block before `filter_scale`; each further block doubles them.
BASE_FILTERS = 32


def n_blocks(n: int) -> int:
    """Encoder depth for patch side n: 3 at 64, +1 per doubling, -1 per halving, at least 1.

    Reduced further when n is not divisible by 2**depth (n is even by contract, so 1 always fits).
    """
    depth = max(1, round(math.log2(n / 64)) + 3)
    while depth > 1 and n % 2**depth:
        depth -= 1
    return depth


@keras.saving.register_keras_serializable(package="ptycho_pinn_tf")
class GlobalAmplitudeScale(keras.layers.Layer):
    """Multiplies a sigmoid head in [0, 1] by 2 * exp(log_scale); log_scale starts at log(s0).

    s0 is the rms object amplitude the training data imply (docs/design.md#physics), so the head can
    represent objects up to twice as bright as the rms and the scale itself is learnable.
    """

    def __init__(self, s0: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.s0 = float(s0)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(max(self.s0, 1e-12))),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, x):
        return x * (2.0 * keras.ops.exp(self.log_scale))

    def get_config(self):
        return {**super().get_config(), "s0": self.s0}


@keras.saving.register_keras_serializable(package="ptycho_pinn_tf")
class NearestUpsample2D(keras.layers.Layer):
    """2x nearest-neighbour upsampling of (B, H, W, C) by broadcast and reshape.

    Identical to `keras.layers.UpSampling2D(2)`, whose gradient (ResizeNearestNeighborGrad) makes
    TensorFlow 2.21 log an unsuppressible oneDNN "DT_INT32" error line on CPU.
    """

    def call(self, x):
        b, h, w, c = (keras.ops.shape(x)[i] for i in range(4))
        y = keras.ops.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
        return keras.ops.reshape(y, (b, 2 * h, 2 * w, c))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)


def _conv(filters: int, seed: int, name: str):
    return keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
    )


def _decoder(x, filters: list[int], channels: int, seed: int, prefix: str):
    for k, f in enumerate(filters):
        x = _conv(f, seed + 2 * k, f"{prefix}_up{k}_conv0")(x)
        x = _conv(f, seed + 2 * k + 1, f"{prefix}_up{k}_conv1")(x)
        x = NearestUpsample2D(name=f"{prefix}_up{k}_upsample")(x)
    return keras.layers.Conv2D(
        channels,
        3,
        padding="same",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2 * len(filters)),
        name=f"{prefix}_out",
    )(x)


def build_model(n: int, channels: int, s0: float, filter_scale: int = 2, seed: int = 0) -> keras.Model:
    """The PtychoPINN network for (N, N, C) inputs; outputs [amplitude, phase], each (B, N, N, C).

    `s0` initialises the learnable amplitude scale; `seed` makes the initial weights reproducible.
    """
    depth = n_blocks(n)
    filters = [BASE_FILTERS * filter_scale * 2**k for k in range(depth)]
    inputs = keras.Input(shape=(n, n, channels), name="diffraction")
    x = inputs
    for k, f in enumerate(filters):
        x = _conv(f, seed + 2 * k, f"enc{k}_conv0")(x)
        x = _conv(f, seed + 2 * k + 1, f"enc{k}_conv1")(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{k}_pool")(x)
    up = filters[::-1]
    amp = _decoder(x, up, channels, seed + 1000, "amp")
    amp = keras.layers.Activation("sigmoid", name="amp_sigmoid")(amp)
    amp = GlobalAmplitudeScale(s0, name="amplitude")(amp)
    phase = _decoder(x, up, channels, seed + 2000, "phase")
    phase = keras.layers.Activation("tanh", name="phase_tanh")(phase)
    phase = keras.layers.Rescaling(math.pi, name="phase")(phase)
    return keras.Model(inputs, [amp, phase], name=f"pinn_tf_n{n}_c{channels}")


def to_keras_layout(diffraction):
    """(B, C, N, N) -> (B, N, N, C)."""
    return tf.transpose(diffraction, [0, 2, 3, 1])


def to_patches(amplitude, phase):
    """Network outputs (B, N, N, C) float32 -> complex64 patches (B, C, N, N) = A exp(i phi)."""
    z = tf.complex(amplitude * tf.cos(phase), amplitude * tf.sin(phase))
    return tf.transpose(z, [0, 3, 1, 2])
