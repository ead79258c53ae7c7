"""The estimators the hand-crafted pipelines share (baseline, BoVW, HOG); no torch.

- :mod:`.linear_svm`: ``PrimalLinearSvm``, one-vs-rest linear SVMs solved in the primal;
- :mod:`.kernel_svm`: ``KernelSvm``, one-vs-rest with C chosen on validation;
- :mod:`.kernels`: exact kernels and explicit feature maps (Hellinger, χ², ...);
- :mod:`.estimator_state`: fitted estimators as a JSON tree + plain arrays, no pickle;
- :mod:`.parameters`: the parameter checks they and the configs share.
"""
