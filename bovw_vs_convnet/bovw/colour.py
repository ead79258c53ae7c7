"""The image channels that dense SIFT describes: gray, or the colour spaces of van de Sande et al.

van de Sande, Gevers and Snoek ("Evaluating color descriptors for object and scene
recognition", PAMI 2010) describe each channel of a colour space with SIFT and
concatenate the descriptors (3 × 128 = 384 values):

- ``opponent`` (OpponentSIFT, their best single descriptor): O1 = (R − G)/√2,
  O2 = (R + G − 2B)/√6, O3 = (R + G + B)/√3. O3 is the intensity; O1 and O2 hold
  the colour, and their gradients do not change when light is added evenly.
- ``rgb`` (RGB-SIFT): the three channels as they are.
- ``rg`` (rgSIFT): the chromaticities r = R/(R+G+B), g = G/(R+G+B), which do not
  change with the light's intensity, and the intensity (O3).
- ``c`` (C-SIFT): O1/O3 and O2/O3 (the colour normalised by the intensity, the
  C-invariant) and the intensity.

``gray`` is the one channel of plain SIFT (luma weights 0.299, 0.587, 0.114).

The linear spaces (``gray``, ``opponent``, ``rgb``) are computed from values centred
on mid-gray, ``(v − 127.5) / 255``: the image's negative (255 − v) then gives exactly
the negated channels, so that with unsigned orientations (``polarity=unsigned``)
its descriptors equal the original's bit for bit. The constant offset changes no
gradient.
"""

from __future__ import annotations

import math

import numpy as np

from bovw_vs_convnet.errors import DataError

# channels described per colour space (each adds one 128-value SIFT block)
COLOUR_CHANNELS = {"gray": 1, "opponent": 3, "rgb": 3, "rg": 3, "c": 3}
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# rows O1, O2, O3 applied to (R, G, B)
OPPONENT_MATRIX = np.array(
    [
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
    ]
)
# the chromaticities and C-invariant divide by an intensity at least this (of 1 for white)
_MIN_INTENSITY = 1e-3


def opponent(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB values to the (..., 3) opponent channels O1, O2, O3 (same dtype).

    A linear map: values centred on any level give channels centred likewise
    (O3 shifted by √3 times the level), and negated values give negated channels.
    """
    m = OPPONENT_MATRIX.astype(rgb.dtype if rgb.dtype.kind == "f" else np.float64)
    out: np.ndarray = rgb @ m.T
    return out


def _rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) or (N, H, W) images to float32 (N, H, W, 3) RGB, centred on
    mid-gray (``(v − 127.5) / 255``, in [−0.5, 0.5]); a gray image fills all three.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise DataError(f"expected images of shape (N, H, W, C), got {arr.shape}")
    if arr.dtype == np.uint8:
        centred = (arr[..., :3].astype(np.float32) - np.float32(127.5)) * np.float32(1 / 255)
    else:  # float images in [0, 1]
        centred = arr[..., :3].astype(np.float32) - np.float32(0.5)
    if centred.shape[-1] == 1:
        centred = np.repeat(centred, 3, axis=-1)
    return centred


def channels(images: np.ndarray, colour: str) -> np.ndarray:
    """The channels of ``colour`` (:data:`COLOUR_CHANNELS`): float32 (N, K, H, W).

    Linear spaces are centred on mid-gray (see the module docstring); ``rg`` and ``c``
    divide by the intensity (at least :data:`_MIN_INTENSITY`, so a black pixel has
    no colour rather than an infinite one).
    """
    if colour not in COLOUR_CHANNELS:
        raise DataError(f"unknown colour space {colour!r}; known: {', '.join(COLOUR_CHANNELS)}")
    rgb = _rgb(images)
    if colour == "gray":
        out = rgb @ np.array(GRAY_WEIGHTS, np.float32)
        return np.ascontiguousarray(out[:, None])
    if colour == "rgb":
        return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))
    opp = opponent(rgb)  # centred: O3 is the intensity minus √3 / 2
    if colour == "opponent":
        return np.ascontiguousarray(opp.transpose(0, 3, 1, 2))
    positive = rgb + np.float32(0.5)  # back to [0, 1]
    total = np.maximum(positive.sum(axis=-1), np.float32(3 * _MIN_INTENSITY))
    out = np.empty((rgb.shape[0], 3, *rgb.shape[1:3]), np.float32)
    if colour == "rg":
        out[:, 0] = positive[..., 0] / total
        out[:, 1] = positive[..., 1] / total
    else:  # "c": O1/O3 and O2/O3 on the uncentred intensity
        intensity = total / np.float32(math.sqrt(3))
        out[:, 0] = opp[..., 0] / intensity
        out[:, 1] = opp[..., 1] / intensity
    out[:, 2] = opp[..., 2]
    return out
