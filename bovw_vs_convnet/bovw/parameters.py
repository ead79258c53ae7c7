"""The estimators' parameter checks, now :mod:`bovw_vs_convnet.parameters` (shared with HOG).

Kept for the BoVW modules that still import them from here (``encoding.py``); new
code imports :mod:`bovw_vs_convnet.parameters`.
"""

from bovw_vs_convnet.parameters import ParameterError, at_least, positive, positive_ints

__all__ = ["ParameterError", "at_least", "positive", "positive_ints"]
