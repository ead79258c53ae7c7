"""bovw_vs_convnet: bag-of-visual-words + SVM against LeNet-5 and AlexNet, on the same split."""

__version__ = "0.1.0"
