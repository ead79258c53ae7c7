"""Datasets: manifests, sources, the ImageSet and the common split."""

from bovw_vs_convnet.data.imageset import ImageSet, LazyImages

__all__ = ["ImageSet", "LazyImages"]
