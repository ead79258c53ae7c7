"""The pipeline registry: a name, a config dataclass and a factory, imported lazily.

Adding a pipeline is one folder plus one line here. Imports are lazy so that
``bvc run bovw`` never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bovw_vs_convnet.errors import ConfigError, unknown_name
from bovw_vs_convnet.protocol import Pipeline, RunContext


@dataclass(frozen=True)
class PipelineSpec:
    """One registered pipeline.

    ``config`` and ``factory`` are ``"module:attribute"`` paths; the factory is
    called as ``factory(config, context)`` and returns a :class:`Pipeline`.
    """

    name: str
    config: str
    factory: str
    description: str
    check: str = ""  # "module:attribute" of check(config): what the config alone cannot check
    # module of the model bundle (harness/bundle.py): save_bundle(pipeline) -> (files,
    # description) and load_bundle(files, manifest, context) -> the fitted pipeline
    bundle: str = ""

    def config_class(self) -> type[Any]:
        """The frozen dataclass that holds this pipeline's settings."""
        return _resolve(self.config)

    def check_config(self, config: Any) -> None:
        """Refuse, before any data is loaded, what the config cannot check alone (a model name).

        Raises ConfigError (its ``key`` names the setting); a no-op without ``check``.
        """
        if self.check:
            _resolve(self.check)(config)

    def build(self, config: Any, context: RunContext) -> Pipeline:
        """Make a fresh, unfitted pipeline."""
        pipeline: Pipeline = _resolve(self.factory)(config, context)
        return pipeline


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


PIPELINES: dict[str, PipelineSpec] = {
    spec.name: spec
    for spec in [
        PipelineSpec(
            "baseline",
            "bovw_vs_convnet.baseline.pipeline:BaselineConfig",
            "bovw_vs_convnet.baseline.pipeline:build_pipeline",
            "raw pixels: nearest class mean or a linear SVM",
            bundle="bovw_vs_convnet.baseline.bundle",
        ),
        PipelineSpec(
            "bovw",
            "bovw_vs_convnet.bovw.config:BovwConfig",
            "bovw_vs_convnet.bovw.pipeline:build_pipeline",
            "SIFT, k-means vocabulary, spatial-pyramid encoding, kernel SVM",
            bundle="bovw_vs_convnet.bovw.bundle",
        ),
        PipelineSpec(
            "hog",
            "bovw_vs_convnet.hog.config:HogConfig",
            "bovw_vs_convnet.hog.pipeline:build_pipeline",
            "HOG (Dalal and Triggs 2005), kernel map, linear SVMs",
            bundle="bovw_vs_convnet.hog.bundle",
        ),
        PipelineSpec(
            "convnet",
            "bovw_vs_convnet.convnet.config:ConvNetConfig",
            "bovw_vs_convnet.convnet.pipeline:build_pipeline",
            "LeNet-5 and AlexNet variants trained with PyTorch",
            check="bovw_vs_convnet.convnet.registry:check_config",
            bundle="bovw_vs_convnet.convnet.bundle",
        ),
        PipelineSpec(
            "convnet-features",
            "bovw_vs_convnet.convnet_features.config:ConvNetFeaturesConfig",
            "bovw_vs_convnet.convnet_features.pipeline:build_pipeline",
            "a stored ConvNet read at one layer, linear SVMs on its features (DeCAF 2014)",
            check="bovw_vs_convnet.convnet_features.pipeline:check_config",
            bundle="bovw_vs_convnet.convnet_features.bundle",
        ),
        PipelineSpec(
            "dbn",
            "bovw_vs_convnet.dbn.config:DbnConfig",
            "bovw_vs_convnet.dbn.pipeline:build_pipeline",
            "deep belief net: greedy RBM pre-training, back-propagation (Hinton et al. 2006)",
            bundle="bovw_vs_convnet.dbn.bundle",
        ),
    ]
}


def get_pipeline(name: str) -> PipelineSpec:
    """The registered pipeline ``name``; a clear ConfigError for an unknown one."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise ConfigError(unknown_name("pipeline", name, sorted(PIPELINES))) from None
