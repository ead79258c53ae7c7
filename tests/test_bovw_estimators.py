"""The five BoVW stages against scikit-learn's estimator checks (``parametrize_with_checks``).

The checks feed 2-d float tables. :class:`KMeansVocabulary` and :class:`KernelSvm`
take such tables and pass nearly all of them; the SIFT extractors take batches of
images and the encoder's ``transform`` takes a :class:`DescriptorSet`, so the
checks that push a table through them fail by design. Each such check is listed
below with its reason, and run as strict ``xfail``: a listed check that starts to
pass fails the test, so the list stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from bovw_vs_convnet.bovw import (
    DenseSift,
    KernelSvm,
    KeypointSift,
    KMeansVocabulary,
    SpatialPyramidEncoder,
)

_IMAGES = "takes a batch of images (N, H, W[, C]), not a 2-d table of features"
_STATELESS = "a stateless transformer: fit reads no data, so it refuses none"
_NO_FEATURES = "images have no feature count, so n_features_in_ is not set"
_DESCRIPTORS = "transform takes a DescriptorSet (descriptors and their positions), not a table"
_TOO_FEW = (
    "fewer descriptors than words is the user's ConfigError (one line, exit 2), not ValueError"
)

_SIFT_FAILURES = {
    "check_complex_data": _STATELESS,
    "check_dict_unchanged": _IMAGES,
    "check_dtype_object": _IMAGES,
    "check_estimator_sparse_tag": _STATELESS,
    "check_estimators_dtypes": _IMAGES,
    "check_estimators_empty_data_messages": _STATELESS,
    "check_estimators_nan_inf": _STATELESS,
    "check_estimators_pickle": _IMAGES,
    "check_f_contiguous_array_estimator": _IMAGES,
    "check_fit1d": _STATELESS,
    "check_fit2d_predict1d": _IMAGES,
    "check_fit_idempotent": _IMAGES,
    "check_fit_score_takes_y": _IMAGES,
    "check_methods_sample_order_invariance": _IMAGES,
    "check_methods_subset_invariance": _IMAGES,
    "check_n_features_in": _NO_FEATURES,
    "check_n_features_in_after_fitting": _NO_FEATURES,
    "check_pipeline_consistency": _IMAGES,
    "check_transformer_data_not_an_array": _IMAGES,
    "check_transformer_general": _IMAGES,
    "check_transformer_preserve_dtypes": _IMAGES,
    "check_transformers_unfitted_stateless": _IMAGES,
}

_EXPECTED_FAILURES: dict[type, dict[str, str]] = {
    DenseSift: _SIFT_FAILURES,
    KeypointSift: _SIFT_FAILURES,
    KMeansVocabulary: {"check_fit2d_1sample": _TOO_FEW},
    SpatialPyramidEncoder: {
        "check_dict_unchanged": _DESCRIPTORS,
        "check_dtype_object": _DESCRIPTORS,
        "check_estimators_dtypes": _DESCRIPTORS,
        "check_estimators_nan_inf": _DESCRIPTORS,
        "check_estimators_pickle": _DESCRIPTORS,
        "check_fit2d_1sample": _TOO_FEW,
        "check_fit2d_predict1d": _DESCRIPTORS,
        "check_fit_idempotent": _DESCRIPTORS,
        "check_f_contiguous_array_estimator": _DESCRIPTORS,
        "check_fit_score_takes_y": _DESCRIPTORS,
        "check_methods_sample_order_invariance": _DESCRIPTORS,
        "check_methods_subset_invariance": _DESCRIPTORS,
        "check_n_features_in_after_fitting": _DESCRIPTORS,
        "check_pipeline_consistency": _DESCRIPTORS,
        "check_transformer_data_not_an_array": _DESCRIPTORS,
        "check_transformer_general": _DESCRIPTORS,
        "check_transformer_preserve_dtypes": _DESCRIPTORS,
    },
    KernelSvm: {
        "check_classifiers_classes": "labels are class indices: score column i is class i",
        "check_classifiers_train": "two classes still give (n, 2) scores: the harness's matrix",
    },
}


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """The checks that do not apply to ``estimator``'s input, each with its reason."""
    return _EXPECTED_FAILURES[type(estimator)]


# small k: the checks fit on tables of 20-100 rows
ESTIMATORS = [
    DenseSift(),
    KeypointSift(),
    KMeansVocabulary(k=2),
    SpatialPyramidEncoder(k=2),
    KernelSvm(),
]


class ListedCheckFailed(Exception):
    """A listed check failed, as expected: raised in place of the check's own error.

    pytest formats an expected failure's traceback as it would a failure's, reading the
    source of every frame: for the checks' deep tracebacks through scikit-learn that
    took longer than the checks themselves. This exception's traceback is one frame.
    """


def _check_name(check: Any) -> str:
    """The name of the check function (the key of :data:`_EXPECTED_FAILURES`' lists)."""
    while hasattr(check, "__wrapped__"):
        check = check.__wrapped__
    return str(check.func.__name__ if isinstance(check, partial) else check.__name__)


def _fails(check: Callable[[Any], None], estimator: Any) -> str:
    """The error ``check`` raises on ``estimator`` (type and first line); "" when it passes."""
    try:
        check(estimator)
    except Exception as error:  # the xfail mark took any exception as the listed failure
        return f"{type(error).__name__}: {str(error).strip().splitlines()[:1]}"
    return ""


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=True
)
def test_scikit_learn_estimator_checks(estimator: Any, check: Callable[[Any], None]) -> None:
    reason = expected_failed_checks(estimator).get(_check_name(check))
    if reason is None:
        check(estimator)
    elif error := _fails(check, estimator):  # strict xfail: a listed check that passes fails
        raise ListedCheckFailed(f"{_check_name(check)}: {reason} ({error})")
