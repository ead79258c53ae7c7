"""Parameter checks of the estimators (BoVW's stages, the kernel SVM), shared with the configs.

Each estimator checks its own parameters in ``check_params`` (called by ``fit``, as
scikit-learn's ``fit`` validates). A parameter out of range raises
:class:`ParameterError`, which names it, so that a pipeline's configuration (BoVW's, HOG's) can
run the same check before any image is read and report the problem under its own
setting name (the encoder's ``max_samples`` is the ``vocab_samples`` setting).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bovw_vs_convnet.errors import ConfigError


class ParameterError(ConfigError):
    """Parameter ``param`` of an estimator is out of range: the message is ``param problem``."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param} {problem}", key=param)
        self.param = param
        self.problem = problem

    def renamed(self, setting: str) -> ConfigError:
        """The same error, told of ``setting`` (the configuration setting this parameter is)."""
        return ConfigError(f"{setting} {self.problem}", key=setting)


def at_least(param: str, value: Any, low: float) -> None:
    """Refuse ``value`` below ``low`` (``k must be ≥ 1, got 0``)."""
    if not value >= low:
        raise ParameterError(param, f"must be ≥ {low:g}, got {value!r}")


def positive(param: str, value: Any) -> None:
    """Refuse ``value`` ≤ 0 (``upscale must be > 0, got 0``)."""
    if not value > 0:
        raise ParameterError(param, f"must be > 0, got {value!r}")


def positive_ints(param: str, values: Iterable[Any]) -> None:
    """Refuse an empty sequence or one with an entry below 1 (bin sizes, pyramid levels)."""
    items = tuple(values)
    if not items or any(int(v) < 1 for v in items):
        raise ParameterError(param, f"must be positive integers, got {items!r}")
