"""TensorFlow physics, matching the numpy reference `ptycho_core.physics` (docs/design.md#physics).

Channel-first throughout: patches are complex64 `(B, C, N, N)`, positions `(B, C, 2)` as (y, x)
in object pixels. `tf.signal.fft2d` transforms the innermost two axes and has no `norm`, hence
the layout and the explicit division by N.

    extract:  o_i[u, v] = O(y_i + u - N//2, x_i + v - N//2)    bilinear gather, zero outside O
    splat:    the exact adjoint of extract (unsorted_segment_sum of the same bilinear weights)
    forward:  A_i = |fftshift(fft2(P * o_i))| / N

Indices and bilinear weights are computed in float64 (positions reach hundreds of pixels; float32
would cost ~1e-5 relative accuracy), the values themselves are complex64.
"""

from __future__ import annotations

from ptycho_pinn_tf.env import tf

#: Canvas pixels whose summed splat weight is below this are 0 in the overlap average.
OVERLAP_WEIGHT_EPS = 1e-6
#: Inside the Poisson NLL log: mean(p^2 - m^2 log(p^2 + POISSON_EPS)).
POISSON_EPS = 1e-6


def _corner_terms(positions, n: int, h: int, w: int):
    """The four bilinear corners of every patch pixel on an (h, w) canvas.

    positions (B, C, 2) -> list of (flat index (B, C, n, n) int64 into a flattened (B, h, w)
    canvas, weight (B, C, n, n) float32 with out-of-canvas corners weighted 0).
    """
    positions = tf.cast(positions, tf.float64)
    u = tf.cast(tf.range(n) - n // 2, tf.float64)
    ys = positions[..., 0, None] + u  # (B, C, n)
    xs = positions[..., 1, None] + u
    y0 = tf.floor(ys)
    x0 = tf.floor(xs)
    wy = ys - y0
    wx = xs - x0
    y0 = tf.cast(y0, tf.int64)
    x0 = tf.cast(x0, tf.int64)
    bsz = tf.shape(positions, out_type=tf.int64)[0]
    base = (tf.range(bsz, dtype=tf.int64) * (h * w))[:, None, None, None]
    terms = []
    for dy, fy in ((0, 1.0 - wy), (1, wy)):
        yi = y0 + dy
        vy = tf.cast((yi >= 0) & (yi < h), tf.float64)
        yc = tf.clip_by_value(yi, 0, h - 1)
        for dx, fx in ((0, 1.0 - wx), (1, wx)):
            xi = x0 + dx
            vx = tf.cast((xi >= 0) & (xi < w), tf.float64)
            xc = tf.clip_by_value(xi, 0, w - 1)
            weight = (fy * vy)[..., :, None] * (fx * vx)[..., None, :]
            index = base + yc[..., :, None] * w + xc[..., None, :]
            terms.append((index, tf.cast(weight, tf.float32)))
    return terms


def _gather(objects, terms):
    """Bilinear gather of (B, H, W) objects with precomputed corner terms -> (B, C, n, n)."""
    flat = tf.reshape(objects, [-1])
    out = None
    for index, weight in terms:
        term = tf.cast(weight, objects.dtype) * tf.gather(flat, index)
        out = term if out is None else out + term
    return out


def _scatter(patches, terms, bsz, h: int, w: int):
    """Bilinear scatter (the adjoint of `_gather`) of (B, C, n, n) patches -> (B, h, w)."""
    out = None
    for index, weight in terms:
        values = tf.reshape(tf.cast(weight, patches.dtype) * patches, [-1])
        term = tf.math.unsorted_segment_sum(values, tf.reshape(index, [-1]), bsz * h * w)
        out = term if out is None else out + term
    return tf.reshape(out, tf.stack([bsz, h, w]))


def extract_batch(objects, positions, n: int):
    """Cut (B, C, n, n) patches from (B, H, W) objects at positions (B, C, 2); bilinear, zero outside.

    `objects` complex64 (or float32, giving float32 patches); positions in object pixels (y, x).
    """
    objects = tf.convert_to_tensor(objects)
    h, w = int(objects.shape[-2]), int(objects.shape[-1])
    return _gather(objects, _corner_terms(positions, n, h, w))


def splat_batch(patches, positions, shape: tuple[int, int]):
    """Adjoint of `extract_batch`: scatter (B, C, n, n) patches onto (B, H, W) canvases."""
    patches = tf.convert_to_tensor(patches)
    h, w = int(shape[0]), int(shape[1])
    terms = _corner_terms(positions, int(patches.shape[-1]), h, w)
    return _scatter(patches, terms, tf.shape(patches, out_type=tf.int64)[0], h, w)


def forward(probe, patches):
    """Far-field amplitudes |fftshift(fft2(P * o))| / N: probe (N, N), patches (..., N, N) complex64
    -> float32 (..., N, N) in contract units (sum A^2 = sum |P o|^2)."""
    patches = tf.convert_to_tensor(patches, tf.complex64)
    probe = tf.convert_to_tensor(probe, tf.complex64)
    n = int(patches.shape[-1])
    field = tf.signal.fft2d(probe * patches)
    return tf.abs(tf.signal.fftshift(field, axes=(-2, -1))) / float(n)


def overlap_average(patches, offsets, m: int):
    """The overlap constraint: merge the C patches of each group on an (m, m) local canvas.

    patches (B, C, N, N) complex64, offsets (B, C, 2) from the group centroid. Patches are
    splatted at `m//2 + offset`, averaged by the summed splat weight (0 below 1e-6) and
    re-extracted, so every group of C patterns is explained by one shared object region.
    """
    patches = tf.convert_to_tensor(patches, tf.complex64)
    n = int(patches.shape[-1])
    terms = _corner_terms(tf.cast(offsets, tf.float64) + float(m // 2), n, m, m)  # shared by all three steps
    bsz = tf.shape(patches, out_type=tf.int64)[0]
    num = _scatter(patches, terms, bsz, m, m)
    den = _scatter(tf.ones_like(patches, dtype=tf.float32), terms, bsz, m, m)
    valid = den >= OVERLAP_WEIGHT_EPS
    inv = tf.where(valid, 1.0 / tf.maximum(den, OVERLAP_WEIGHT_EPS), tf.zeros_like(den))
    return _gather(num * tf.cast(inv, tf.complex64), terms)


def _masked_mean(values, mask):
    """Mean of `values` (B, C, N, N) over valid pixels; mask None, (N, N) or (B, C, N, N) bool."""
    if mask is None:
        return tf.reduce_mean(values)
    weight = tf.broadcast_to(tf.cast(mask, values.dtype), tf.shape(values))
    return tf.reduce_sum(values * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)


def poisson_nll(pred, measured, mask=None):
    """Poisson NLL in normalised units: mean(p^2 - m^2 log(p^2 + 1e-6)) over valid pixels.

    `pred` and `measured` are amplitudes already multiplied by the training input_scale.
    """
    p2 = tf.square(pred)
    return _masked_mean(p2 - tf.square(measured) * tf.math.log(p2 + POISSON_EPS), mask)


def mae(pred, measured, mask=None):
    """Amplitude MAE in normalised units: mean|p - m| over valid pixels."""
    return _masked_mean(tf.abs(pred - measured), mask)


LOSSES = {"poisson": poisson_nll, "mae": mae}


def physics_loss(kind: str, patches, probe, measured, input_scale: float, mask=None, offsets=None, canvas=0):
    """The training loss of predicted patches against measured amplitudes (both raw units).

    patches (B, C, N, N) complex64; with `canvas` > 0 and `offsets` (B, C, 2) the overlap
    constraint is applied first. Prediction and measurement are both multiplied by input_scale.
    """
    if canvas and offsets is not None:
        patches = overlap_average(patches, offsets, canvas)
    pred = forward(probe, patches) * input_scale
    return LOSSES[kind](pred, tf.cast(measured, tf.float32) * input_scale, mask)
