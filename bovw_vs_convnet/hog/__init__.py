"""Histograms of oriented gradients (Dalal and Triggs, CVPR 2005) with a kernel SVM.

:func:`~bovw_vs_convnet.hog.features.hog_features` describes a batch of images
with scikit-image's ``hog``; :mod:`bovw_vs_convnet.hog.pipeline` is the harness's
``hog`` pipeline: HOG, then the :class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm` BoVW
uses too, with C chosen on the validation images.
"""

from bovw_vs_convnet.hog.config import HogConfig
from bovw_vs_convnet.hog.features import hog_features

__all__ = ["HogConfig", "hog_features"]
