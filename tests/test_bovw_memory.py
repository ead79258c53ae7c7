"""BoVW memory: passes chunked in bytes, the same codes as all at once, a peak that does not
grow with the number of images, the preset that follows the image size, the refusal."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.bovw.config import BovwConfig, make_encoder, make_extractor
from bovw_vs_convnet.bovw.memory import MIB, MemoryPlan, plan_memory, worker_fixed_bytes
from bovw_vs_convnet.bovw.pipeline import build_pipeline
from bovw_vs_convnet.bovw.streaming import (
    describe,
    encode_chunk,
    encode_pass,
    vocabulary_sample,
)
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.protocol import RunContext

GIB = 1 << 30


def _photos(n: int, h: int = 256, w: int = 256, seed: int = 0, classes: int = 2) -> ImageSet:
    """``n`` uint8 RGB images of blurred noise whose brightness and grain follow the class."""
    import cv2

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    out = np.empty((n, h, w, 3), np.uint8)
    for i, c in enumerate(labels):
        noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), 1.0 + 2.0 * c)
        out[i] = np.clip(100 + 60 * c + 40 * blurred, 0, 255).astype(np.uint8)
    ids = np.array([f"p{seed}-{i}" for i in range(n)])
    return ImageSet(out, labels.astype(np.int64), ids, tuple(f"c{c}" for c in range(classes)), "p")


def _photo_cfg(**changed: str) -> BovwConfig:
    # the photo preset with a small vocabulary and pyramid, so that codes stay tiny
    base = {"preset": "photo", "k": "16", "levels": "1,2", "vocab_samples": "2000"}
    return build_config(BovwConfig, {**base, **changed})


def _plan(cfg: BovwConfig, images: ImageSet, workers: int = 1) -> MemoryPlan:
    return plan_memory(cfg, make_extractor(cfg, 1), [images.image_shape], workers)


def _fitted_encoder(cfg: BovwConfig, images: ImageSet) -> object:
    return make_encoder(cfg, seed=0).fit(make_extractor(cfg).transform(images.array()))


def test_chunks_are_sized_in_bytes() -> None:
    cfg = _photo_cfg(memory_mib="400")
    plan = _plan(cfg, _photos(1), workers=2)
    # each worker's 200 MiB, less its fixed blocks, over one 256-px image's working bytes
    per_worker = 200 * MIB - worker_fixed_bytes(cfg)
    assert plan.descriptors_per_image == 3721 + 3481 + 3249 + 3025  # 4 bin sizes, step 4
    assert plan.images_per_chunk == per_worker // plan.bytes_per_image
    assert plan.images_per_chunk == 11
    assert plan.workers * plan.chunk_bytes <= plan.budget
    chunks = plan.chunks(np.full(10, plan.bytes_per_image), max_images=2048)
    assert [len(c) for c in chunks] == [plan.images_per_chunk] * (10 // plan.images_per_chunk) + (
        [10 % plan.images_per_chunk] if 10 % plan.images_per_chunk else []
    )
    capped = plan.chunks(np.full(10, plan.bytes_per_image), max_images=3)  # chunk_images
    assert [len(c) for c in capped] == [3, 3, 3, 1]


def test_chunked_encoding_gives_the_all_at_once_histograms() -> None:
    cfg = _photo_cfg(memory_mib="98", max_side="96")  # 2 MiB beyond the fixed blocks
    images = _photos(9, 120, 100)
    encoder = _fitted_encoder(cfg, images)
    plan = _plan(cfg, images)
    assert plan.images_per_chunk == 2  # so 5 chunks
    chunked, counts, _ = encode_pass(make_extractor(cfg), encoder, images, plan, cfg, n_jobs=2)
    whole = encoder.transform(make_extractor(cfg).transform(images.array()))
    assert chunked.shape == whole.shape == (9, 16 * 5)
    np.testing.assert_allclose(chunked.toarray(), whole.toarray(), rtol=1e-6, atol=1e-7)
    # 120×100 shrunk to 96×80: descriptors of 4 sizes every 4 px
    assert counts.tolist() == [make_extractor(cfg).n_descriptors(120, 100)] * 9


def test_a_chunk_may_hold_images_of_different_shapes() -> None:
    cfg = _photo_cfg()
    a, b = _photos(3, 90, 120, seed=1), _photos(3, 130, 70, seed=2)
    mixed = [a.images[0], b.images[0], a.images[1], b.images[1], b.images[2], a.images[2]]
    encoder = _fitted_encoder(cfg, a)
    extractor = make_extractor(cfg)
    codes, counts, _, _ = encode_chunk(extractor, encoder, mixed)
    alone = [encoder.transform(extractor.transform(img[None])) for img in mixed]
    np.testing.assert_allclose(codes.toarray(), np.vstack([c.toarray() for c in alone]), atol=1e-7)
    assert counts.tolist() == [extractor.n_descriptors(*img.shape[:2]) for img in mixed]
    desc = describe(extractor, mixed)
    np.testing.assert_array_equal(desc.counts(), counts)
    # float32 sums over differently shaped batches may round differently (SIMD paths
    # depend on the array's length and alignment): equal to float32 precision.
    np.testing.assert_allclose(
        desc.values[: counts[0]], extractor.transform(mixed[0][None]).values, rtol=1e-6, atol=1e-7
    )


def test_the_vocabulary_sample_does_not_depend_on_the_chunking() -> None:
    images = _photos(6, 100, 100)
    positions = np.array([0, 2, 3, 5])

    def sample(memory_mib: str, workers: int) -> np.ndarray:
        cfg = _photo_cfg(memory_mib=memory_mib)
        plan = _plan(cfg, images, workers)
        extractor = make_extractor(cfg)
        got = vocabulary_sample(extractor, images, positions, 50, 7, plan, cfg, workers)
        assert got.counts().tolist() == [50] * 4
        return got.values

    np.testing.assert_array_equal(sample("100", 2), sample("1000", 1))


def _peak_of_a_run(n: int, tmp_path: Path, memory_mib: str, traced: bool = True) -> tuple[int, int]:
    """tracemalloc's peak (bytes) of fitting on ``n`` 256-px images and scoring 4 more;
    and the plan's images per chunk.
    """
    train, val, test = _photos(n, seed=0), _photos(4, seed=1), _photos(4, seed=2)
    cfg = _photo_cfg(memory_mib=memory_mib, gallery_words="0", step="8")
    ctx = RunContext(
        run_dir=tmp_path, cache_dir=None, split_fingerprint="m", n_jobs=1, progress=False
    )
    pipe = build_pipeline(cfg, ctx)
    if not traced:
        pipe.fit(train, val).decision_scores(test)
        return 0, pipe.plan_.images_per_chunk
    tracemalloc.start()
    try:
        scores = pipe.fit(train, val).decision_scores(test)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scores.shape == (4, 2)
    return peak, pipe.plan_.images_per_chunk


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    _peak_of_a_run(2, tmp_path, memory_mib="120", traced=False)  # lazy imports, caches
    small, per_chunk = _peak_of_a_run(4, tmp_path, memory_mib="100")
    large, _ = _peak_of_a_run(16, tmp_path, memory_mib="100")
    assert per_chunk < 4  # several chunks even for the smaller set
    assert large <= 1.10 * small
    # with a budget that fits every image in one chunk (today's image-counted chunks),
    # the same two runs grow with the set: the test can tell the difference
    small_one, _ = _peak_of_a_run(4, tmp_path, memory_mib="4000")
    large_one, _ = _peak_of_a_run(16, tmp_path, memory_mib="4000")
    assert large_one > 2.5 * small_one


def test_the_preset_follows_the_image_size() -> None:
    assert BovwConfig.preset_for_images(_photos(1, 28, 28)) == "small"
    assert BovwConfig.preset_for_images(_photos(1, 64, 40)) == "small"
    assert BovwConfig.preset_for_images(_photos(1, 40, 65)) == "photo"


def _write_folder(root: Path, n_per_class: int, side: int) -> Path:
    import cv2

    images = _photos(2 * n_per_class, side, side)
    for i, (img, label) in enumerate(zip(images.images, images.labels, strict=True)):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f"c{label}" / f"{i:03d}.png"), img)
    return root


@pytest.mark.parametrize(
    ("overrides", "preset", "k"),
    [
        ({"k": "8"}, "photo", 8),  # no preset named: chosen by the 96-px images, k kept
        ({"preset": "tiny"}, "tiny", 32),  # a named preset wins
    ],
)
def test_a_run_records_the_preset_its_images_chose(
    tmp_path: Path, overrides: dict[str, str], preset: str, k: int
) -> None:
    from bovw_vs_convnet.harness.run import run_pipeline

    folder = _write_folder(tmp_path / "photos", 10, 96)
    record = run_pipeline(
        "bovw",
        str(folder),
        overrides={**overrides, "gallery_words": "0"},
        runs_dir=tmp_path / "runs",
        n_jobs=1,
        progress=False,
    )
    assert (record["config"]["preset"], record["config"]["k"], record["model"]) == (
        preset,
        k,
        f"bovw-{preset}",
    )
    assert record["extra"]["memory_plan"]["descriptors_per_image"] == (
        make_extractor(build_config(BovwConfig, {"preset": preset})).n_descriptors(96, 96)
    )


def test_settings_that_need_more_than_the_machine_are_refused_with_the_estimate() -> None:
    cfg = build_config(BovwConfig, {"upscale": "8"})  # small: 4-px bins every 2 px, ×8
    with pytest.raises(ConfigError) as info:
        plan_memory(cfg, make_extractor(cfg), [(1000, 1000, 3)], workers=2, machine=8 * GIB)
    assert str(info.value) == (
        "these BoVW settings need ~33 GiB to describe one image per chunk "
        "(15,944,049 descriptors per image × 1 image per chunk × 1,112 bytes, "
        "2 chunks in flight) but this machine has 8.0 GiB; "
        "raise step, lower upscale or set max_side"
    )
    with pytest.raises(ConfigError, match=r"^memory_mib=9000 is more than this machine's") as e:
        plan_memory(
            build_config(BovwConfig, {"memory_mib": "9000"}),
            make_extractor(cfg),
            [(28, 28, 1)],
            workers=1,
            machine=8 * GIB,
        )
    assert e.value.key == "memory_mib"


def test_the_refusal_comes_before_any_image_is_described(tmp_path: Path) -> None:
    cfg = build_config(BovwConfig, {"memory_mib": str(1 << 30)})  # 1 PiB
    ctx = RunContext(run_dir=tmp_path, cache_dir=None, split_fingerprint="m", progress=False)
    pipe = build_pipeline(cfg, ctx)
    with pytest.raises(ConfigError, match="is more than this machine's memory"):
        pipe.fit(_photos(2, 28, 28), None)
    assert pipe.stage_seconds == {}
