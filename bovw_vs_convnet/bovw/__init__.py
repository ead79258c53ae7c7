"""Bag of visual words: SIFT, k-means vocabularies, spatial-pyramid encodings, kernel SVMs.

Each stage is a scikit-learn-style estimator usable on its own
(:class:`DenseSift`, :class:`KeypointSift`, :class:`KMeansVocabulary`,
:class:`SpatialPyramidEncoder`; the kernels, :class:`KernelFeatureMap` and
:class:`KernelSvm` are the shared :mod:`bovw_vs_convnet.estimators.kernels` and
:mod:`bovw_vs_convnet.estimators.kernel_svm`, which HOG uses too);
:mod:`bovw_vs_convnet.bovw.pipeline` composes them into the harness's ``bovw``
pipeline with presets and on-disk caching.
"""

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.sift import DenseSift, KeypointSift
from bovw_vs_convnet.bovw.vocabulary import KMeansVocabulary
from bovw_vs_convnet.estimators.kernel_svm import KernelSvm
from bovw_vs_convnet.estimators.kernels import KernelFeatureMap, chi2_kernel, intersection_kernel

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
