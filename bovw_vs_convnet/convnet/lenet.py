"""LeNet-5: the 1998 network as published, and the common modern simplification.

Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 1998 (section II.B, Table I, Appendix A).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bovw_vs_convnet.convnet.registry import SMALL_MAX_INPUT, register_model, stem_stride

# Table I of the paper: the S2 feature maps (0-5) each C3 feature map (0-15) is connected to
# (fmt: skip keeps the paper's rows: 6 maps of 3 neighbours, 6 of 4, 3 of 4 others, 1 of all)
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A·tanh(S·a), A = 1.7159, S = 2/3 (Appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2/S4: the sum of each 2×2 block times one trainable coefficient plus one bias, per map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.avg_pool2d(x, 2) * 4.0  # (B, C, H/2, W/2), sums of 2×2 blocks
        return s * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """C3: a 5×5 convolution in which output map j sees only the input maps ``table[j]``.

    Only the connected kernels are parameters (60 kernels of 5×5 plus 16 biases = 1 516);
    they are scattered into a dense (16, 6, 5, 5) weight for one ``conv2d`` call.
    """

    dense_index: torch.Tensor

    def __init__(self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int):
        super().__init__()
        out_channels = len(table)
        pairs = [(j, i) for j, inputs in enumerate(table) for i in inputs]
        self.in_channels, self.out_channels, self.kernel_size = (
            in_channels,
            out_channels,
            kernel_size,
        )
        self.register_buffer(
            "dense_index", torch.tensor([j * in_channels + i for j, i in pairs]), persistent=False
        )
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.fan_in = torch.tensor([len(t) * kernel_size**2 for t in table])

    def dense_weight(self) -> torch.Tensor:
        """The (out, in, k, k) weight with zeros where the table has no connection."""
        k = self.kernel_size
        flat = self.weight.new_zeros(self.out_channels * self.in_channels, k * k)
        flat = flat.index_copy(0, self.dense_index, self.weight.view(-1, k * k))
        return flat.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)  # (B, 16, H-4, W-4)


class AdaptiveMaxPool2d(nn.AdaptiveMaxPool2d):
    """``nn.AdaptiveMaxPool2d`` that passes maps already at its output size through.

    In front of the classifier of a LeNet fed images larger than 32×32 (the maps arrive
    larger than 5×5): the strongest response in each of 5×5 regions, so the fully
    connected layers keep their 32-px shapes and the object may lie anywhere.
    """

    def __init__(self, side: int) -> None:
        super().__init__((side, side))
        self.side = side

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if tuple(input.shape[-2:]) == (self.side, self.side):
            return input
        return super().forward(input)


class RBFOutput(nn.Module):
    """Euclidean RBF units y_i = Σ_j (x_j − w_ij)², with fixed ±1 codes w_i (not trained).

    :meth:`forward` returns −y_i, so that a higher score means a more likely class.
    """

    codes: torch.Tensor

    def __init__(self, in_features: int, num_classes: int, seed: int = 1998) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=g).float() * 2 - 1
        self.register_buffer("codes", codes)  # (K, 84), fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()  # distances of ~100 need more than bf16's 8 bits under autocast
        d = (x.unsqueeze(1) - self.codes.unsqueeze(0)).pow(2).sum(-1)  # (B, K)
        return -d


class LeNet5_1998(nn.Module):
    """LeNet-5 as published in LeCun et al. 1998: 60 000 trainable parameters for 1 channel.

    32×32 input; C1 6@28×28 (5×5); S2 6@14×14 trainable subsampling; C3 16@10×10 with
    the partial connection table (Table I); S4 16@5×5; C5 120; F6 84; the scaled tanh
    1.7159·tanh(2a/3) after every layer from C1 to F6; a Euclidean RBF output layer with
    fixed codes. Weights are drawn uniformly in ±2.4/fan-in (Appendix A).

    Differences from the paper, because they cannot be reproduced:
    the output codes were hand-drawn 7×12 bitmaps of ASCII characters; here each class
    gets a fixed pseudo-random ±1 code of length 84 (seeded, so identical every run).
    The paper trained with a stochastic diagonal Levenberg–Marquardt method and its
    MAP criterion (eq. 9); here the trainer uses SGD/AdamW with cross-entropy on the
    negated RBF distances, which is eq. 9 without its constant "rubbish class" term.
    The subsampling coefficients start at 1 (plain 2×2 sums) rather than at the paper's
    uniform ±2.4/4 draw, which trained more slowly here (25.1% against 22.9% validation
    error after 3 epochs on 10 000 Fashion-MNIST images). The number of input channels
    may differ from one (C1 then has 6·(25·C + 1) parameters). ``input_size`` above 32
    (photographs, :mod:`.input_size`): the same parameters, C1 strided from 48 px
    (:func:`~.registry.stem_stride`) and C5's maps max-pooled to one value each.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 6, 5, stride=stem_stride(input_size)),  # C1
            ScaledTanh(),
            Subsampling(6),  # S2
            ScaledTanh(),
            PartialConv2d(C3_TABLE, 6, 5),  # C3
            ScaledTanh(),
            Subsampling(16),  # S4
            ScaledTanh(),
            nn.Conv2d(16, 120, 5),  # C5
            ScaledTanh(),
        ]
        if input_size != 32:  # C5's maps, larger than 1×1, pooled to one value per map
            layers.append(AdaptiveMaxPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(120, 84),  # F6
            ScaledTanh(),
            RBFOutput(84, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = 2.4 / (m.weight[0].numel())
                nn.init.uniform_(m.weight, -bound, bound)
                if m.bias is not None:
                    nn.init.uniform_(m.bias, -bound, bound)
            elif isinstance(m, PartialConv2d):
                bounds = 2.4 / m.fan_in.float()  # (16,), fan-in of each output map
                with torch.no_grad():
                    per_kernel = torch.cat(
                        [bounds[j].repeat(len(t)) for j, t in enumerate(C3_TABLE)]
                    )  # (60,)
                    m.weight.uniform_(-1, 1).mul_(per_kernel.view(-1, 1, 1))
                    m.bias.uniform_(-1, 1).mul_(bounds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 120, 1, 1)
        x = torch.flatten(x, 1)  # (B, 120)
        return self.classifier(x)  # (B, K)


class LeNet5(nn.Module):
    """The usual modern LeNet-5: ReLU, 2×2 max pooling, full C3, a linear output layer.

    Same layer sizes as LeCun et al. 1998 (6-16-120-84-K on a 32×32 input), but with the
    simplifications found in most textbooks and frameworks: every C3 map sees all six
    S2 maps, pooling has no trainable coefficients, and the RBF output is a linear layer.
    61 706 trainable parameters for 10 classes and 1 channel.

    ``input_size`` above 32 (photographs, :mod:`.input_size`): the same layers and
    parameters, C1 strided from 48 px (:func:`stem_stride`), and the last maps max-pooled
    to 5×5 (:class:`AdaptiveMaxPool2d`) before the classifier. At 32 the net is the one
    above, module for module.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 6, 5, stride=stem_stride(input_size)),  # (B, 6, 28, 28)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 6, 14, 14)
            nn.Conv2d(6, 16, 5),  # (B, 16, 10, 10)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 16, 5, 5)
        ]
        if input_size != 32:
            layers.append(AdaptiveMaxPool2d(5))  # (B, 16, 5, 5) from larger maps
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)  # (B, 400)
        return self.classifier(x)  # (B, K)


@register_model(
    "lenet5-1998",
    input_size=32,
    fit="pad",
    description="LeCun et al. 1998 as published: C3 table, trainable subsampling, RBF output",
    max_input_size=SMALL_MAX_INPUT,
)
def lenet5_1998(
    *, num_classes: int = 10, in_channels: int = 1, input_size: int = 32
) -> LeNet5_1998:
    """LeNet-5 as published (60 000 trainable parameters for one channel)."""
    return LeNet5_1998(num_classes=num_classes, in_channels=in_channels, input_size=input_size)


@register_model(
    "lenet5",
    input_size=32,
    fit="pad",
    description="modern LeNet-5: ReLU, max pooling, full C3, linear output",
    max_input_size=SMALL_MAX_INPUT,
)
def lenet5(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 32) -> LeNet5:
    """The modern LeNet-5 (61 706 trainable parameters for 10 classes, one channel)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
