"""The raw-pixel baseline: nearest class mean or a linear SVM, a floor for both families."""

from bovw_vs_convnet.baseline.pipeline import BaselineConfig, BaselinePipeline, build_pipeline

__all__ = ["BaselineConfig", "BaselinePipeline", "build_pipeline"]
