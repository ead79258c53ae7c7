"""Datasets: manifests, sources, the ImageSet and the common split."""

from bovw_vs_convnet.data.datasets import Dataset, load_dataset
from bovw_vs_convnet.data.imageset import ImageSet, LazyImages
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.data.split import Split, make_split, split_fingerprint

__all__ = [
    "Dataset",
    "ImageSet",
    "LazyImages",
    "Manifest",
    "Split",
    "load_dataset",
    "make_split",
    "split_fingerprint",
]
