"""The seeded draws both split protocols share: random streams, class order, group shares.

Every draw comes from ``numpy.random.default_rng`` seeded with integers
``[seed, stream, class, split index]`` and is applied to ids sorted as strings
(never Python's hash), so a split is the same on any machine.
"""

from __future__ import annotations

import numpy as np

from bovw_vs_convnet.errors import DataError

# Separate random streams, so that one part's draws never shift another's.
STREAM_TEST, STREAM_POOL, STREAM_CLASS_ORDER = 1, 2, 3
STREAM_TEST_GROUPS, STREAM_VAL_GROUPS, STREAM_VAL_POOL = 4, 5, 6
STREAM_PC_POOL, STREAM_PC_TEST = 7, 8  # the per-class protocol's own orders


def class_positions(ids: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """Positions of class ``c``, ordered by id (so the order does not depend on file order)."""
    pos = np.flatnonzero(labels == c)
    return pos[np.argsort(ids[pos].astype(str), kind="stable")]


def stream_rng(seed: int, stream: int, c: int = 0, index: int = 0) -> np.random.Generator:
    """The generator of one stream, class and split index."""
    # numpy's SeedSequence ignores trailing zeros: split 0 draws what a seed without the
    # split index draws, so stored fingerprints stay; split k > 0 draws anew.
    return np.random.default_rng([seed, stream, c, index])


def group_mask(groups: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """True for the images of a seeded ``fraction`` of the groups (at least one, never all)."""
    names = sorted({str(g) for g in groups})
    if len(names) < 2:
        raise DataError(f"a split by groups needs at least 2 groups, got {len(names)}")
    k = min(len(names) - 1, max(1, round(fraction * len(names))))
    chosen = {names[i] for i in rng.permutation(len(names))[:k]}
    return np.array([str(g) in chosen for g in groups], dtype=bool)
