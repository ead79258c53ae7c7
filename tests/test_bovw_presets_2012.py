"""The 2012 presets (``fisher``, ``vlad``): their settings, the k_auto rule, their memory
plan, and the encodings suite parsed and run on digits at the tiny scale."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.bovw.config import BovwConfig, make_encoder, make_extractor
from bovw_vs_convnet.bovw.memory import MIB, code_width, gmm_bytes, plan_memory
from bovw_vs_convnet.bovw.pipeline import stage_cache_key
from bovw_vs_convnet.bovw.vocabulary import k_for_images
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.harness.suite import load_suite

GIB = 1 << 30


def _cfg(preset: str, **changed: str) -> BovwConfig:
    return build_config(BovwConfig, {"preset": preset, **changed})


def test_fisher_preset_is_the_improved_fisher_kernel() -> None:
    cfg = _cfg("fisher")
    assert (cfg.encoding, cfg.pca_dim, cfg.k, cfg.k_auto) == ("fisher", 64, 256, True)
    assert (cfg.bin_sizes, cfg.root_sift, cfg.levels) == ((4, 6), True, (1, 2))
    assert (cfg.power, cfg.norm, cfg.kernel, cfg.linear_solver) == (0.5, "l2", "linear", "lbfgs")
    enc = make_encoder(cfg, seed=0)
    assert (enc.method, enc.gmm_samples, enc.gmm_iter) == ("fisher", 50_000, 30)


def test_vlad_preset_is_intra_normalised_then_power_and_l2() -> None:
    cfg = _cfg("vlad")
    assert (cfg.encoding, cfg.vlad_intra, cfg.power, cfg.norm) == ("vlad", True, 0.5, "l2")
    assert make_encoder(cfg, seed=0).intra is True


@pytest.mark.parametrize(
    ("n_desc", "encoding", "k"),
    [
        (730, "fisher", 16),  # Fashion-MNIST: 28 px, 16- and 24-px patches of the ×2 image
        (1066, "fisher", 32),  # glyphs: 32 px
        (730, "vlad", 32),  # a VLAD block is half as long: twice the words, same length
        (18_000, "fisher", 256),  # a photograph: Chatfield's 256, the k setting
        (50, "fisher", 16),  # never below 16
        (730, "soft", 256),  # histograms keep k
    ],
)
def test_k_auto_rule(n_desc: int, encoding: str, k: int) -> None:
    assert k_for_images(n_desc, encoding, 256) == k


def test_fashion_mnist_fisher_plan_fits_the_small_presets_bounds() -> None:
    """The byte plan of ``fisher`` on 28-px images (k resolved to 16) stays within the
    same budget as ``small``'s, and counts the GMM's sample."""
    fisher = dataclasses.replace(_cfg("fisher"), k=16)
    small = _cfg("small")
    shape = [(28, 28, 1)]
    pf = plan_memory(fisher, make_extractor(fisher), shape, workers=2, machine=16 * GIB)
    ps = plan_memory(small, make_extractor(small), shape, workers=2, machine=16 * GIB)
    assert pf.budget == ps.budget == 512 * MIB
    assert pf.workers * pf.chunk_bytes <= pf.budget
    assert pf.descriptors_per_image == 730
    assert code_width(fisher) == 2 * 16 * 64 * 5
    assert pf.code_bytes_per_image == 10240 * 4
    assert gmm_bytes(fisher) == 50_000 * (8 * 64 + 24 * 16)
    assert pf.vocabulary_bytes > ps.vocabulary_bytes  # the GMM's sample on top of k-means'


def test_chunked_fisher_codes_match_all_at_once() -> None:
    """The fisher preset's encoder within its memory plan's chunks gives the codes it
    gives all at once (the moments are summed per image)."""
    from bovw_vs_convnet.bovw.streaming import encode_pass

    rng = np.random.default_rng(0)
    imgs = (rng.random((12, 28, 28, 1)) * 255).astype(np.uint8)
    images = ImageSet(imgs, np.arange(12) % 3, np.arange(12).astype(str), ("a", "b", "c"), "t")
    cfg = dataclasses.replace(_cfg("fisher", pca_dim="8", vocab_samples="2000"), k=4)
    extractor = make_extractor(cfg)
    encoder = make_encoder(cfg, seed=0).fit(extractor.transform(imgs))
    plan = plan_memory(cfg, extractor, [(28, 28, 1)], 1)
    plan = dataclasses.replace(plan, budget=plan.worker_fixed + 3 * plan.bytes_per_image)
    chunked, _, _ = encode_pass(extractor, encoder, images, plan, cfg, n_jobs=1)
    np.testing.assert_allclose(chunked, encoder.transform(extractor.transform(imgs)), atol=1e-6)


def test_new_settings_at_their_old_values_keep_the_cache_keys() -> None:
    from bovw_vs_convnet.bovw.pipeline import NEWER_ENCODER_FIELDS

    images = ImageSet(
        np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1]), np.array(["a", "b"]), ("x", "y"), "t"
    )
    small = _cfg("small")
    key = stage_cache_key("vocabulary", small, "fp", 0, images)
    for name in NEWER_ENCODER_FIELDS:
        assert getattr(small, name) == BovwConfig.SETTINGS_SINCE[name]
    assert key != stage_cache_key("vocabulary", _cfg("small", gmm_iter="5"), "fp", 0, images)


def test_encodings_suite_has_four_encodings_on_four_datasets_over_three_splits() -> None:
    specs = load_suite("encodings").specs()
    assert len(specs) == 4 * 4 * 3
    assert {s.label for s in specs} == {"hard", "soft", "vlad", "fisher"}
    assert {s.dataset for s in specs} == {"digits", "fashion-mnist", "glyphs", "glyphs-wild"}
    assert {(s.seed, s.split_index) for s in specs} == {(0, 0), (0, 1), (0, 2)}
    fashion = {s.train_size for s in specs if s.dataset == "fashion-mnist"}
    assert fashion == {10_000}
    for s in specs:  # every row is a BoVW config that builds
        build_config(BovwConfig, s.settings)


@pytest.mark.slow  # parsing checks the ConvNet models, which imports torch
def test_ilsvrc_glyphs_suite_sets_the_default_convnet_against_fisher() -> None:
    specs = load_suite("ilsvrc-glyphs").specs()
    assert {s.dataset for s in specs} == {"glyphs-wild"}
    by_pipeline = {(s.pipeline, s.label) for s in specs}
    assert ("bovw", "fisher") in by_pipeline
    assert any(p == "convnet" for p, _ in by_pipeline)


# each digits row of the suite, shrunk: a small vocabulary, few EM and k-means steps
TINY = (("vocab_images", 100), ("vocab_samples", 3000), ("kmeans_iter", 5), ("gmm_iter", 5))
TINY_K = (("k", 16), ("C", 1.0), ("gallery_words", 0))


@pytest.mark.slow  # four runs end to end: ~15 s on an idle core
def test_encodings_suite_runs_on_digits_at_the_tiny_scale(tmp_path: Path) -> None:
    from bovw_vs_convnet.harness.suite_runner import run_suite

    suite = load_suite("encodings")
    digits = tuple(
        dataclasses.replace(e, overrides=tuple(sorted((*e.overrides, *TINY, *TINY_K))))
        for e in suite.entries
        if e.datasets == ("digits",)
    )
    assert [e.label for e in digits] == ["hard", "soft", "vlad", "fisher"]
    tiny = dataclasses.replace(suite, entries=digits)
    outcomes = run_suite(
        tiny,
        runs_dir=tmp_path,
        train_sizes=[300],
        protocol={"splits": 1},
        n_jobs=1,
        progress=False,
    )
    assert [o.status for o in outcomes] == ["ran"] * 4
    errors = [o.record["top1_err"] for o in outcomes if o.record is not None]
    assert all(e < 0.5 for e in errors)  # every encoding far above chance (0.9)


def test_the_docs_list_every_bovw_preset() -> None:
    # `bvc run --help` lists them from the same table: tests/test_run_help_presets.py
    recipes = (Path(__file__).parents[1] / "docs" / "recipes.md").read_text()
    for name in BovwConfig.PRESETS:
        assert f"| `{name}`" in recipes
