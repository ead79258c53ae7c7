"""One restricted Boltzmann machine, trained by contrastive divergence (CD-1), in torch.

Binary hidden units over visible units whose values are probabilities (pixel
intensities in [0, 1], or the hidden probabilities of the RBM below), as Hinton,
Osindero & Teh (2006) trained each layer of their deep belief net and as their
published code does: the positive statistics from the hidden probabilities, one
Gibbs step from sampled hidden states to visible probabilities and back, momentum
0.5 for the first five epochs and then ``momentum``, L2 weight decay on the weights.

A few lines of torch rather than scikit-learn's ``BernoulliRBM``: faster here on one
784-500 layer (``benchmarks/RESULTS-convnet.md`` has the measurement), and
``BernoulliRBM`` learns by persistent CD, not the paper's CD-1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

EARLY_EPOCHS, EARLY_MOMENTUM = 5, 0.5  # the paper's code: momentum 0.5, then 0.9


@dataclass(frozen=True)
class CdSchedule:
    """How one RBM is trained: epochs, batch size, learning rate, momentum, weight decay."""

    epochs: int
    batch_size: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4


@dataclass
class Rbm:
    """A trained RBM: ``weight`` (hidden, visible), both biases, the error of each epoch.

    ``errors``: the mean squared difference between the data and its one-step
    reconstruction (visible probabilities), averaged over each epoch's batches.
    """

    weight: torch.Tensor
    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    errors: list[float] = field(default_factory=list)

    def hidden(self, v: torch.Tensor) -> torch.Tensor:
        """P(h = 1 | v): (N, hidden) probabilities of visible (N, visible) values."""
        return torch.sigmoid(v @ self.weight.T + self.hidden_bias)

    def visible(self, h: torch.Tensor) -> torch.Tensor:
        """P(v = 1 | h): (N, visible) probabilities of hidden (N, hidden) states."""
        return torch.sigmoid(h @ self.weight + self.visible_bias)

    def reconstruction_error(self, v: torch.Tensor) -> float:
        """Mean squared difference between ``v`` and its mean-field reconstruction."""
        return float((self.visible(self.hidden(v)) - v).pow(2).mean())


def train_rbm(
    data: torch.Tensor,
    n_hidden: int,
    schedule: CdSchedule,
    generator: torch.Generator,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Rbm:
    """An RBM of ``n_hidden`` binary units trained on ``data`` (N, visible) in [0, 1] by CD-1.

    Weights start from N(0, 0.01²), biases at 0; each epoch visits the data in a new
    order drawn from ``generator``, which also draws the hidden samples.
    ``on_epoch(epoch, error)`` hears each epoch's reconstruction error.
    """
    n, n_visible = data.shape
    weight = torch.randn(n_hidden, n_visible, generator=generator) * 0.01
    rbm = Rbm(weight, torch.zeros(n_visible), torch.zeros(n_hidden))
    velocity = [torch.zeros_like(t) for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]
    s = schedule
    for epoch in range(s.epochs):
        momentum = EARLY_MOMENTUM if epoch < EARLY_EPOCHS else s.momentum
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for start in range(0, n, s.batch_size):
            v0 = data[order[start : start + s.batch_size]]  # (B, V)
            p0 = rbm.hidden(v0)  # (B, H) positive phase
            h0 = torch.bernoulli(p0, generator=generator)
            v1 = rbm.visible(h0)  # (B, V) one Gibbs step
            p1 = rbm.hidden(v1)  # (B, H) negative phase
            b = len(v0)
            grads = (
                (p0.T @ v0 - p1.T @ v1) / b - s.weight_decay * rbm.weight,
                (v0 - v1).mean(0),
                (p0 - p1).mean(0),
            )
            for vel, grad, param in zip(
                velocity, grads, (rbm.weight, rbm.visible_bias, rbm.hidden_bias), strict=True
            ):
                vel.mul_(momentum).add_(grad, alpha=s.lr)
                param.add_(vel)
            total += float((v1 - v0).pow(2).mean())
            batches += 1
        rbm.errors.append(total / max(batches, 1))
        if on_epoch is not None:
            on_epoch(epoch, rbm.errors[-1])
    return rbm
