"""Bag of visual words: SIFT, k-means vocabularies, spatial-pyramid encodings, kernel SVMs.

Each stage is a scikit-learn-style estimator usable on its own
(:class:`DenseSift`, :class:`KeypointSift`, :class:`KMeansVocabulary`,
:class:`SpatialPyramidEncoder`, :class:`KernelFeatureMap`, :class:`KernelSvm`);
:mod:`bovw_vs_convnet.bovw.pipeline` composes them into the harness's ``bovw``
pipeline with presets and on-disk caching.
"""

from bovw_vs_convnet.bovw.classifier import KernelSvm
from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.kernels import KernelFeatureMap, chi2_kernel, intersection_kernel
from bovw_vs_convnet.bovw.sift import DenseSift, KeypointSift
from bovw_vs_convnet.bovw.vocabulary import KMeansVocabulary

__all__ = [
    "DenseSift",
    "DescriptorSet",
    "KMeansVocabulary",
    "KernelFeatureMap",
    "KernelSvm",
    "KeypointSift",
    "SpatialPyramidEncoder",
    "chi2_kernel",
    "intersection_kernel",
]
