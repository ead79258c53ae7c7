"""The BoVW pipeline end to end: presets, configuration errors, caching, scores, gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.bovw.gallery import GALLERY_TITLE, titled
from bovw_vs_convnet.bovw.pipeline import (
    BovwConfig,
    build_pipeline,
    make_sklearn_pipeline,
    stage_cache_key,
)
from bovw_vs_convnet.bovw.vocabulary import KMeansVocabulary
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.protocol import RunContext


def _digits() -> tuple[ImageSet, ImageSet, ImageSet]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255 / 16)).astype(np.uint8)[..., None]
    names = tuple(str(i) for i in range(10))
    full = ImageSet(
        images,
        d.target.astype(np.int64),
        np.array([f"d{i}" for i in range(len(images))]),
        names,
        "digits",
    )
    order = np.random.default_rng(0).permutation(len(full))
    return full.subset(order[:600]), full.subset(order[600:800]), full.subset(order[800:1100])


def _context(
    tmp_path: Path, cache: bool = True, seed: int = 0, progress: bool = False
) -> RunContext:
    return RunContext(
        run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache" if cache else None,
        split_fingerprint="f" * 64,
        seed=seed,
        n_jobs=2,
        progress=progress,
    )


def test_presets_exist_and_unknown_preset_is_refused() -> None:
    assert {"phow", "small", "tiny"} <= set(BovwConfig.PRESETS)
    assert build_config(BovwConfig, {"preset": "phow"}).bin_sizes == (4, 6, 8, 10)
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        build_config(BovwConfig, {"preset": "huge"})


def test_set_values_are_coerced_and_unknown_keys_refused() -> None:
    cfg = build_config(BovwConfig, {"preset": "tiny", "k": "64", "levels": "1,2,4", "C": "none"})
    assert (cfg.k, cfg.levels, cfg.C) == (64, (1, 2, 4), None)
    with pytest.raises(ConfigError, match="unknown setting 'words'"):
        build_config(BovwConfig, {"words": "10"})
    with pytest.raises(ConfigError, match="k must be ≥ 1"):
        build_config(BovwConfig, {"k": "0"})


def test_tiny_preset_on_digits(tmp_path: Path) -> None:
    train, val, test = _digits()
    pipe = build_pipeline(build_config(BovwConfig, {"preset": "tiny"}), _context(tmp_path))
    scores = pipe.fit(train, val).decision_scores(test)
    assert scores.shape == (300, 10)
    assert (scores.argmax(axis=1) != test.labels).mean() < 0.15
    assert pipe.record_extra["classifier"] == "exact-chi2"
    assert pipe.record_extra["zero_descriptor_images_train"] == 0
    assert set(pipe.stage_seconds) >= {
        "descriptors",
        "vocabulary",
        "encoding",
        "classifier",
        "scoring",
    }


def test_a_preset_with_a_fixed_c_is_still_judged_on_its_validation_images(
    tmp_path: Path,
) -> None:
    from bovw_vs_convnet.harness.record import learned_fields

    train, val, _ = _digits()
    pipe = build_pipeline(build_config(BovwConfig, {"preset": "tiny"}), _context(tmp_path))
    pipe.fit(train, val)  # tiny: C = 1, nothing chosen
    val_err = float((pipe.decision_scores(val).argmax(axis=1) != val.labels).mean())
    assert (pipe.record_extra["val_errors_by_C"], pipe.record_extra["C_selected_on"]) == (
        {"1.0": val_err},
        0,
    )
    learned = learned_fields(pipe.record_extra, val.labels)
    assert (learned["learned"], learned["extra"]["chance_test"]["looks"]) == (True, 1)


def test_scores_have_a_column_for_classes_absent_from_train(tmp_path: Path) -> None:
    train, val, test = _digits()
    train = train.subset(np.flatnonzero(train.labels < 3))
    val = val.subset(np.flatnonzero(val.labels < 3))
    pipe = build_pipeline(
        build_config(BovwConfig, {"preset": "tiny"}), _context(tmp_path, cache=False)
    )
    scores = pipe.fit(train, val).decision_scores(test)
    assert scores.shape == (300, 10)
    assert (scores.argmax(axis=1) < 3).all()


def test_second_run_hits_the_cache(tmp_path: Path) -> None:
    train, val, test = _digits()
    cfg = build_config(BovwConfig, {"preset": "tiny"})
    first = build_pipeline(cfg, _context(tmp_path)).fit(train, val)
    s1 = first.decision_scores(test)
    second = build_pipeline(cfg, _context(tmp_path)).fit(train, val)
    s2 = second.decision_scores(test)
    assert "cache_hits" not in first.record_extra
    assert second.record_extra["cache_hits"] == [
        "vocabulary",
        "encode_train",
        "encode_val",
        "encode_test",
    ]
    np.testing.assert_allclose(s1, s2)


@pytest.mark.parametrize(
    ("changed", "hits"),
    [
        ({"C": "3"}, ["vocabulary", "encode_train", "encode_val", "encode_test"]),  # SVM only
        ({"k": "16"}, []),  # the vocabulary and every encoding depend on k
        ({"step": "3"}, []),  # and on the descriptors
    ],
)
def test_cache_is_missed_when_what_a_stage_depends_on_changes(
    tmp_path: Path, changed: dict[str, str], hits: list[str]
) -> None:
    train, val, test = _digits()
    build_pipeline(build_config(BovwConfig, {"preset": "tiny"}), _context(tmp_path)).fit(
        train, val
    ).decision_scores(test)
    cfg = build_config(BovwConfig, {"preset": "tiny", **changed})
    second = build_pipeline(cfg, _context(tmp_path)).fit(train, val)
    second.decision_scores(test)
    assert second.record_extra.get("cache_hits", []) == hits


def test_cache_key_covers_seed_split_and_images_but_not_the_classifier() -> None:
    train, val, _ = _digits()

    def tiny(**changed: str) -> BovwConfig:
        return build_config(BovwConfig, {"preset": "tiny", **changed})

    key = stage_cache_key("vocabulary", tiny(), "f" * 64, 0, train)
    assert stage_cache_key("vocabulary", tiny(C="5"), "f" * 64, 0, train) == key
    others = {
        stage_cache_key("encode_train", tiny(), "f" * 64, 0, train),
        stage_cache_key("vocabulary", tiny(), "e" * 64, 0, train),
        stage_cache_key("vocabulary", tiny(), "f" * 64, 1, train),
        stage_cache_key("vocabulary", tiny(), "f" * 64, 0, val),
        stage_cache_key("vocabulary", tiny(k="16"), "f" * 64, 0, train),
    }
    assert len(others) == 5 and key not in others


def test_a_bad_setting_is_refused_by_its_estimators_check_under_its_own_name() -> None:
    # the encoder's max_samples is the vocab_samples setting; the check is the estimator's
    with pytest.raises(ConfigError, match=r"^vocab_samples must be ≥ 1, got 0$") as info:
        build_config(BovwConfig, {"vocab_samples": "0"})
    assert info.value.key == "vocab_samples"
    with pytest.raises(ConfigError, match=r"^k must be ≥ 1, got 0$"):
        KMeansVocabulary(k=0).fit(np.zeros((4, 2), np.float32))


def test_settings_that_must_agree_are_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match="kernel 'chi2' needs non-negative histograms"):
        build_config(BovwConfig, {"encoding": "vlad", "kernel": "chi2"})
    with pytest.raises(ConfigError, match=r"^window must be 2 with the opencv backend") as info:
        build_config(BovwConfig, {"preset": "phow", "sift_backend": "opencv"})  # phow: 1.5
    assert info.value.key == "window"


def test_progress_off_a_terminal_is_one_line_per_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, val, test = _digits()
    ctx = _context(tmp_path, cache=False, progress=True)  # auto: stderr is pytest's, no tty
    build_pipeline(build_config(BovwConfig, {"preset": "tiny"}), ctx).fit(
        train, val
    ).decision_scores(test)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split(":")[1] for line in lines] == [
        " encode train",
        " encode val",
        " encode test",
    ]
    assert all(line.startswith("bovw: encode ") and " 1/1 chunk in " in line for line in lines)


def test_k_larger_than_sample_is_a_config_error(tmp_path: Path) -> None:
    train, val, _ = _digits()
    cfg = build_config(BovwConfig, {"preset": "tiny", "k": "100", "vocab_samples": "50"})
    with pytest.raises(ConfigError, match="k=100 visual words but only 50 descriptors"):
        build_pipeline(cfg, _context(tmp_path, cache=False)).fit(train, val)


def test_gallery_png_is_written(tmp_path: Path) -> None:
    import cv2

    train, val, _ = _digits()
    pipe = build_pipeline(
        build_config(BovwConfig, {"preset": "tiny"}), _context(tmp_path, cache=False)
    )
    pipe.fit(train, val).save_artifacts(tmp_path)
    grid = cv2.imread(str(tmp_path / "visual_words.png"), cv2.IMREAD_GRAYSCALE)
    assert grid is not None
    # 8 words (tiny preset) × 8 patches, 32 px + 2 px gap, under its title
    words = titled(np.zeros((8 * 34, 8 * 34), np.uint8), GALLERY_TITLE)
    assert grid.shape == words.shape
    assert (grid[: -8 * 34] == words[: -8 * 34]).all()


def test_the_gallery_title_sits_above_the_grid_unchanged() -> None:
    grid = np.arange(34 * 68, dtype=np.uint8).reshape(34, 68)
    out = titled(grid, "Visual words: one row per word")
    assert out.shape[1] == 68
    assert (out[-34:] == grid).all()
    assert out[:-34].min() == 0  # black text on the white band
    assert out[0].min() == 255  # a white margin above it


def test_stages_compose_as_a_scikit_learn_pipeline() -> None:
    train, _, test = _digits()
    pipe = make_sklearn_pipeline(build_config(BovwConfig, {"preset": "tiny"}), n_classes=10)
    pipe.fit(train.array(), train.labels)
    scores = pipe.decision_function(test.array())
    assert [name for name, _ in pipe.steps] == ["sift", "encode", "svm"]
    assert scores.shape == (300, 10)
    assert (scores.argmax(axis=1) != test.labels).mean() < 0.15
