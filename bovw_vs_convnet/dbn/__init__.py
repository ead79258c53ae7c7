"""Deep belief nets (Hinton, Osindero & Teh 2006): RBMs trained greedily, then back-propagation.

``config`` (settings, no torch) < ``rbm`` (one RBM by contrastive divergence) and
``model`` (the network) < ``pipeline`` (the harness's ``dbn`` pipeline) < ``bundle``.
"""
