"""The deep belief net of Hinton, Osindero & Teh (2006) as a feed-forward network to fine-tune.

G. E. Hinton, S. Osindero, Y.-W. Teh, "A fast learning algorithm for deep belief
nets", Neural Computation 18(7), 2006: 784-500-500-2000 on 28×28 MNIST digits, each
layer a restricted Boltzmann machine trained greedily on the one below, then the whole
model fine-tuned; 1.25 % test error on MNIST.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from bovw_vs_convnet.dbn.rbm import Rbm


class DeepBeliefNet(nn.Module):
    """A stack of sigmoid layers whose weights come from RBMs, under a softmax output layer.

    ``features``: one ``Linear`` + ``Sigmoid`` per hidden layer (the recognition
    weights and hidden biases of each pre-trained RBM); ``classifier``: a linear layer
    to the class scores (logits), drawn from N(0, 0.01²). Input: (B, visible) pixel
    intensities in [0, 1].

    Differences from the paper:

    - Fine-tuning is back-propagation of the cross-entropy through the whole stack
      (as in Hinton & Salakhutdinov, Science 2006, and the common practice since), not
      the paper's contrastive wake-sleep ("up-down") algorithm, which keeps the model
      generative: untied recognition and generative weights, and 300 sweeps of
      alternating Gibbs sampling in the top-level associative memory.
    - The labels are not units of the top RBM (the paper's 2000 units learn a joint
      model of the 500 units below and 10 label units); the top RBM is trained on the
      500 units alone and a softmax layer is added for fine-tuning.
    - Pre-training: CD-1 with mini-batches of 100, momentum and weight decay as in the
      paper's code, but for the epochs of ``pretrain_epochs`` (the paper: 30 sweeps per
      layer). Fine-tuning: SGD with Nesterov momentum and a cosine-decayed rate, the
      epoch with the lowest validation error kept (the paper trained on all 60 000
      images for a fixed number of epochs chosen on a held-out set).
    - Sizes scale with the input (``config.hidden_sizes``); images of any size and
      channels are read as H·W·C visible units (the paper: 28×28 binary-ish pixels).
    """

    def __init__(self, n_visible: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_visible
        for size in hidden:
            layers += [nn.Linear(width, size), nn.Sigmoid()]
            width = size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def rbm_layers(self) -> list[nn.Linear]:
        """The ``Linear`` layers that pre-trained RBMs fill, bottom first."""
        return [m for m in self.features if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def take_rbm(self, index: int, rbm: Rbm) -> None:
        """Give hidden layer ``index`` the recognition weights and hidden biases of ``rbm``."""
        layer = self.rbm_layers()[index]
        layer.weight.copy_(rbm.weight)
        layer.bias.copy_(rbm.hidden_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, hidden[-1]) probabilities of the top hidden units
        return self.classifier(x)  # (B, K) logits


def count_parameters(n_visible: int, hidden: Sequence[int], num_classes: int) -> int:
    """Trainable numbers of a DBN of these sizes (weights and biases, fine-tuned)."""
    sizes = [n_visible, *hidden, num_classes]
    return sum(a * b + b for a, b in itertools.pairwise(sizes))
