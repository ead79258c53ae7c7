"""The BoVW stage cache: arrays and JSON that read back the same; entries that run code when
unpickled, hold objects or are malformed are refused, warned about and recomputed."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw.cache import (
    CacheEntryError,
    StageCache,
    codes_arrays,
    codes_from_arrays,
    encoder_arrays,
    encoder_from_arrays,
)
from bovw_vs_convnet.bovw.config import BovwConfig, make_extractor
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.pipeline import build_pipeline, stage_cache_key
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.protocol import RunContext


class WritesAMarker:
    """Unpickling this opens (creates) ``path``: what a hostile cache entry could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _digits() -> tuple[ImageSet, ImageSet, ImageSet]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255 / 16)).astype(np.uint8)[..., None]
    ids = np.array([f"d{i}" for i in range(len(images))])
    full = ImageSet(images, d.target.astype(np.int64), ids, tuple("0123456789"), "digits")
    return (
        full.subset(np.arange(300)),
        full.subset(np.arange(300, 360)),
        full.subset(np.arange(360, 460)),
    )


def _context(tmp_path: Path) -> RunContext:
    return RunContext(
        run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        split_fingerprint="f" * 64,
        n_jobs=1,
        progress=False,
    )


def _tiny() -> BovwConfig:
    return build_config(BovwConfig, {"preset": "tiny", "gallery_words": "0"})


def _vocabulary_entry(tmp_path: Path, train: ImageSet) -> Path:
    key = stage_cache_key("vocabulary", _tiny(), "f" * 64, 0, train)
    return StageCache(tmp_path / "cache").path("vocabulary", key)


@pytest.mark.parametrize(
    "settings",
    [
        {"method": "hard"},
        {"method": "soft", "pca_dim": 16},
        {"method": "fisher", "k": 4, "levels": (1,)},
    ],
)
def test_a_fitted_encoder_reads_back_as_the_same_encoder(settings: dict[str, object]) -> None:
    train, _, test = _digits()
    extractor = make_extractor(_tiny())
    params: dict[str, object] = {"k": 8, "levels": (1, 2), "max_samples": 2000, **settings}
    with threadpool_limits(limits=1):  # (GaussianMixture's tiny BLAS calls, on busy cores)
        encoder = SpatialPyramidEncoder(**params)  # type: ignore[arg-type]
        encoder.fit(extractor.transform(train.array()[:100]))
    back = encoder_from_arrays(encoder_arrays(encoder))
    desc = extractor.transform(test.array())
    a, b = encoder.transform(desc), back.transform(desc)
    a = a.toarray() if hasattr(a, "toarray") else a
    b = b.toarray() if hasattr(b, "toarray") else b
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert back.get_params() == encoder.get_params()


def test_a_pickle_planted_as_a_cache_entry_is_not_run_but_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, val, test = _digits()
    entry = _vocabulary_entry(tmp_path, train)
    entry.parent.mkdir(parents=True)
    marker = tmp_path / "marker"
    entry.write_bytes(pickle.dumps(WritesAMarker(marker)))
    with caplog.at_level(logging.WARNING, logger="bovw_vs_convnet.bovw"):
        pipe = build_pipeline(_tiny(), _context(tmp_path)).fit(train, val)
    assert not marker.exists()
    assert "vocabulary" not in pipe.record_extra.get("cache_hits", [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"ignoring cache entry {entry} (ValueError: ")
    assert "pickled" in warnings[0] and warnings[0].endswith("): recomputing it")
    # the recomputed entry replaced it, and the next run reads it back
    again = build_pipeline(_tiny(), _context(tmp_path)).fit(train, val)
    assert again.record_extra["cache_hits"][0] == "vocabulary"
    np.testing.assert_array_equal(again.decision_scores(test), pipe.decision_scores(test))
    assert not marker.exists()


def test_an_entry_holding_an_object_array_is_refused(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    marker = tmp_path / "marker"
    cache.path("vocabulary", "k").parent.mkdir(parents=True)
    # an .npz whose member is a pickled object array: np.load refuses it without pickle
    with open(cache.path("vocabulary", "k"), "wb") as f:
        np.savez(f, vocabulary=np.array([WritesAMarker(marker)], dtype=object))
    assert cache.load("vocabulary", "k") is None
    assert not marker.exists()
    assert not cache.path("vocabulary", "k").exists()  # removed, to be recomputed


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: a.update(indices=a["indices"] + 1000), "bad CSR codes"),
        (lambda a: a.pop("indptr"), "missing array 'indptr'"),
        (lambda a: a.update(shape=np.array([1, 2, 3])), "array 'shape' has shape (3,)"),
    ],
)
def test_malformed_codes_are_refused(damage: object, message: str) -> None:
    import scipy.sparse as sp

    arrays = codes_arrays(sp.random(5, 8, density=0.5, format="csr", random_state=0))
    damage(arrays)  # type: ignore[operator]
    with pytest.raises(CacheEntryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        codes_from_arrays(arrays)


def test_an_entry_stored_under_another_key_is_refused(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    cache.save("encode_train", "a" * 64, {"dense": np.zeros((2, 3))})
    cache.path("encode_train", "a" * 64).rename(cache.path("encode_train", "b" * 64))
    assert cache.load("encode_train", "b" * 64) is None
    cache.save("encode_train", "a" * 64, {"dense": np.ones((2, 3))})
    loaded = cache.load("encode_train", "a" * 64)
    assert loaded is not None
    np.testing.assert_array_equal(loaded["dense"], np.ones((2, 3)))


def test_cache_entries_made_before_the_colour_settings_still_hit() -> None:
    # keys computed by main at d2ffb34, before `colour` and `polarity` existed: gray,
    # signed SIFT is what those entries hold, so their keys must not change
    images = np.zeros((3, 8, 8, 1), np.uint8)
    tiny_set = ImageSet(
        images, np.array([0, 1, 0]), np.array(["a", "b", "c"]), ("x", "y"), "tiny-set"
    )
    cfg = build_config(BovwConfig, {"preset": "tiny"})
    assert stage_cache_key("vocabulary", cfg, "f" * 64, 0, tiny_set) == (
        "5656643e230cdd2643d06013d3fffa8252bff8deeca9927e948d2b276c048695"
    )
    assert stage_cache_key("encoding", cfg, "f" * 64, 0, tiny_set) == (
        "c5969a5d0f4f7ecca2fa49f4eb66533b19c033aedfde83948528022efc2bb7bb"
    )
    opponent = build_config(BovwConfig, {"preset": "tiny", "colour": "opponent"})
    assert stage_cache_key("encoding", opponent, "f" * 64, 0, tiny_set) != (
        stage_cache_key("encoding", cfg, "f" * 64, 0, tiny_set)
    )
