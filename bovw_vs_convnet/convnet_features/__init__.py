"""ConvNet features under a linear SVM: a stored ConvNet read at one layer (DeCAF, 2014).

J. Donahue, Y. Jia, O. Vinyals, J. Hoffman, N. Zhang, E. Tzeng, T. Darrell, "DeCAF: a
deep convolutional activation feature for generic visual recognition", ICML 2014;
A. S. Razavian, H. Azizpour, J. Sullivan, S. Carlsson, "CNN features off-the-shelf: an
astounding baseline for recognition", CVPR workshops 2014.

``config`` (settings, no torch) < ``extractor`` (a network read at a layer) < ``source``
(where the network comes from: a stored run's bundle, or a state-dict file) <
``pipeline`` < ``bundle``. The package sits above the harness in the layers: it reads
stored runs through the harness's verified bundles (``harness/bundle.py``), while the
harness reaches it only through the registry's name.
"""
