"""BoVW's two passes on joblib's Dask backend give what joblib's threads give."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from bovw_vs_convnet.bovw.config import BovwConfig  # noqa: E402
from bovw_vs_convnet.bovw.memory import plan_memory  # noqa: E402
from bovw_vs_convnet.bovw.pipeline import encode_images, learn_encoder, make_extractor  # noqa: E402
from bovw_vs_convnet.bovw.streaming import chunk_executor, image_shapes  # noqa: E402
from bovw_vs_convnet.config import build_config, config_to_dict, identity_settings  # noqa: E402
from bovw_vs_convnet.data.synthetic import synthetic_imageset  # noqa: E402
from bovw_vs_convnet.errors import ConfigError  # noqa: E402


@pytest.fixture()
def client() -> Iterator[object]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _passes(executor: str) -> tuple[np.ndarray, np.ndarray]:
    """The vocabulary and the training codes of 96 synthetic images, chunks of 16."""
    images = synthetic_imageset(n_per_class=16, size=32, seed=3)
    cfg = build_config(BovwConfig, {"preset": "tiny", "chunk_images": 16, "executor": executor})
    plan = plan_memory(cfg, make_extractor(cfg, 1), image_shapes(images), 2)
    encoder, _, _ = learn_encoder(cfg, 0, images, 2, plan)
    codes, _, _ = encode_images(cfg, encoder, images, 2, plan)
    x = codes.toarray() if hasattr(codes, "toarray") else np.asarray(codes)
    return np.asarray(encoder.vocabulary_), x


def test_dask_executor_gives_the_same_vocabulary_and_histograms(client: object) -> None:
    vocab_local, codes_local = _passes("local")
    vocab_dask, codes_dask = _passes("dask")
    np.testing.assert_array_equal(vocab_dask, vocab_local)
    np.testing.assert_array_equal(codes_dask, codes_local)
    assert codes_local.shape[0] == 96 and codes_local.sum() > 0


def test_executor_is_no_part_of_a_runs_identity() -> None:
    dask = config_to_dict(build_config(BovwConfig, {"executor": "dask"}))
    local = config_to_dict(build_config(BovwConfig, {"executor": "local"}))
    assert identity_settings(BovwConfig, dask) == identity_settings(BovwConfig, local)
    assert "executor" not in identity_settings(BovwConfig, dask)


def test_a_record_stored_with_the_old_backend_name_has_the_same_identity() -> None:
    new = config_to_dict(build_config(BovwConfig, {"executor": "dask"}))
    old = {("backend" if k == "executor" else k): v for k, v in new.items()}
    assert identity_settings(BovwConfig, old) == identity_settings(BovwConfig, new)


def test_auto_is_local_off_a_dask_worker_and_dask_needs_a_client() -> None:
    assert chunk_executor("auto") == "local"
    assert chunk_executor("local") == "local"
    with pytest.raises(ConfigError, match="executor=dask needs a Dask cluster"):
        chunk_executor("dask")
