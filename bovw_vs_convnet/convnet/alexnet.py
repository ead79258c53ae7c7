"""AlexNet: the 2012 network as published, torchvision's layout, a small version, depth ablations.

A. Krizhevsky, I. Sutskever, G. E. Hinton, "ImageNet classification with deep
convolutional neural networks", NIPS 2012. Depth ablations follow M. D. Zeiler,
R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014, Table 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bovw_vs_convnet.convnet.registry import SMALL_MAX_INPUT, register_model, stem_stride

# AlexNet2012's initialisations: torchvision's Kaiming scheme (the default), the paper's.
INITS = ("kaiming", "paper")

# The Zeiler–Fergus depth ablations: registry suffix -> removed layers.
ABLATIONS: dict[str, frozenset[str]] = {
    "fc7": frozenset({"fc7"}),
    "fc6-fc7": frozenset({"fc6", "fc7"}),
    "conv3-conv4-fc6-fc7": frozenset({"conv3", "conv4", "fc6", "fc7"}),
}


def _classifier(
    in_features: int, hidden: int, num_classes: int, removed: frozenset[str]
) -> nn.Sequential:
    """FC6, FC7 (each dropout, linear, ReLU) and the output layer, minus the removed ones."""
    layers: list[nn.Module] = []
    width = in_features
    for name in ("fc6", "fc7"):
        if name not in removed:
            layers += [nn.Dropout(0.5), nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
    if not layers:
        # Zeiler–Fergus feed the pooled conv5 maps straight to the softmax layer.
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class LocalResponseNorm(nn.LocalResponseNorm):
    """PyTorch's ``LocalResponseNorm`` that returns its input's dtype and never alerts.

    Under autocast ``pow`` runs in fp32, so the stock module turns bf16 maps into fp32
    ones and doubles the bytes of AlexNet's largest activations (conv bf16 -> LRN fp32
    -> pool fp32): the result is cast back to the input's dtype. With deterministic
    algorithms on CUDA the stock module's ``avg_pool3d`` backward raises (it is on
    PyTorch's list of ops without a deterministic kernel, although at stride 1, as
    here, its kernel gathers without atomics), so the window is summed over shifted
    slices instead: the same formula, a backward with no atomic adds.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.is_cuda and torch.are_deterministic_algorithms_enabled():
            out = _lrn_by_slices(input, self.size, self.alpha, self.beta, self.k)
        else:
            out = super().forward(input)
        return out.to(input.dtype)


def _lrn_by_slices(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """``F.local_response_norm`` for (B, C, H, W), summing the channel window by slices."""
    channels = x.shape[1]
    sq = F.pad(x.mul(x), (0, 0, 0, 0, size // 2, (size - 1) // 2))  # (B, C+n-1, H, W)
    window = sq[:, 0:channels]
    for i in range(1, size):
        window = window + sq[:, i : i + channels]  # (B, C, H, W)
    return x / window.mul(alpha / size).add(k).pow(beta)


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """torchvision's ``AdaptiveAvgPool2d`` that passes maps already at its output size through.

    At the models' own input sizes the maps reach it at 6×6 (or 3×3): averaging one cell
    is the cell itself, and skipping it avoids ``adaptive_avg_pool2d_backward_cuda``,
    which raises under deterministic algorithms (deterministic in this shape, one
    contribution per cell, but on PyTorch's list all the same).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        size = self.output_size
        target = (size, size) if isinstance(size, int) else size  # None: keep that side
        hw = tuple(input.shape[-2:])
        if target is not None and all(t in (None, n) for t, n in zip(target, hw, strict=True)):
            return input
        return super().forward(input)


def _paper_lrn() -> LocalResponseNorm:
    # the paper's n=5, alpha=1e-4, beta=0.75, k=2; PyTorch divides alpha by n, hence alpha*n
    return LocalResponseNorm(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)


def _set_bias(layer: nn.Conv2d | nn.Linear, value: float) -> None:
    if layer.bias is not None:
        nn.init.constant_(layer.bias, value)


def _check_removed(removed: Iterable[str]) -> frozenset[str]:
    out = frozenset(removed)
    if out not in ABLATIONS.values() and out:
        raise ValueError(f"unsupported ablation {sorted(out)}")
    return out


class AlexNet2012(nn.Module):
    """AlexNet as in Krizhevsky et al. 2012: 60 965 224 trainable parameters for 1000 classes.

    227×227×3 input; conv1 96@11×11 stride 4; conv2 256@5×5, conv4 384@3×3 and
    conv5 256@3×3 split in two groups (the two-GPU layout), conv3 384@3×3 across both;
    ReLU; local response normalisation after conv1 and conv2 (k=2, n=5, α=1e-4, β=0.75);
    overlapping 3×3 stride-2 max pooling; FC6 and FC7 of 4096 with dropout 0.5; the
    output layer.

    Initialisation (``init``): ``"kaiming"`` (the default) draws each convolution and
    FC6/FC7 from N(0, 2 / fan_in) (He et al., "Delving deep into rectifiers", ICCV
    2015; fan_in counts one group's input channels), the output layer from N(0, 0.01)
    and every bias 0, as torchvision initialises its ConvNets (VGG, ResNet). ``"paper"``
    is section 5 of the paper: weights from N(0, 0.01), biases 1 in conv2, conv4, conv5
    and the hidden FC layers and 0 elsewhere. Trained from the paper's initialisation
    on 10 or 62 classes the net stays at chance (benchmarks/RESULTS-convnet.md: the
    bias-1 FC7 pushes every logit of a class together and the outputs collapse); the
    paper trained 90 epochs on 1 000 classes.

    Differences from the paper: PyTorch's ``LocalResponseNorm`` divides α by n, so it is
    given α·n to compute the paper's formula (and keeps the input's dtype under
    autocast: :class:`LocalResponseNorm`). An ``AdaptiveAvgPool2d((6, 6))`` (as in
    torchvision) sits before the classifier; at 227×227 the maps are already 6×6 and it
    does nothing, at other sizes it keeps FC6's 9 216 inputs. The PCA colour jitter and
    the 10-crop test are the trainer's business, not the model's; the first
    convolution takes the dataset's channels. ``removed`` drops layers for the
    Zeiler–Fergus depth ablations (removing conv3 and conv4 feeds conv2 into conv5).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        removed: Iterable[str] = (),
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        removed = _check_removed(removed)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 96, 11, stride=4),  # conv1 (B, 96, 55, 55)
            nn.ReLU(inplace=True),
            _paper_lrn(),
            nn.MaxPool2d(3, 2),  # (B, 96, 27, 27)
            nn.Conv2d(96, 256, 5, padding=2, groups=2),  # conv2 (B, 256, 27, 27)
            nn.ReLU(inplace=True),
            _paper_lrn(),
            nn.MaxPool2d(3, 2),  # (B, 256, 13, 13)
        ]
        if "conv3" not in removed:
            layers += [
                nn.Conv2d(256, 384, 3, padding=1),  # conv3 (B, 384, 13, 13)
                nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, 3, padding=1, groups=2),  # conv4 (B, 384, 13, 13)
                nn.ReLU(inplace=True),
            ]
        conv5_in = 256 if "conv3" in removed else 384
        layers += [
            nn.Conv2d(conv5_in, 256, 3, padding=1, groups=2),  # conv5 (B, 256, 13, 13)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),  # (B, 256, 6, 6)
        ]
        self.features = nn.Sequential(*layers)
        self.avgpool = AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(256 * 6 * 6, 4096, num_classes, removed)
        self.init_weights(init)

    def init_weights(self, init: str) -> None:
        """Draw every weight and bias afresh by the scheme ``init``: ``kaiming`` or ``paper``."""
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        layers: list[nn.Conv2d | nn.Linear] = [*convs, *linears]
        for m in layers:
            if init == "kaiming" and m is not linears[-1]:
                # std sqrt(2 / fan_in): keeps the activations' scale through the ReLUs
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                # the paper's N(0, 0.01); for kaiming only the output layer, so that the
                # class scores start near uniform (torchvision's VGG: N(0, 0.01) linears)
                nn.init.normal_(m.weight, 0.0, 0.01)
            _set_bias(m, 0.0)
        if init == "paper":
            # Biases 1 in conv2, conv4, conv5 (conv3 keeps 0; with conv3-4 removed, conv5), FC6/7.
            last = -2 if len(convs) == 5 else -1
            ones: list[nn.Conv2d | nn.Linear] = [convs[1], *convs[last:]]
            for m in [*ones, *linears[:-1]]:
                _set_bias(m, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 256, 6, 6) at 227×227
        x = self.avgpool(x)  # (B, 256, 6, 6)
        x = torch.flatten(x, 1)  # (B, 9216)
        return self.classifier(x)  # (B, K)


class AlexNetSmall(nn.Module):
    """AlexNet's design scaled down for 28–32 px images (Fashion-MNIST, CIFAR).

    Kept from Krizhevsky et al. 2012: five convolutions then three fully connected layers,
    ReLU, dropout 0.5 before FC6 and FC7, overlapping 3×3 stride-2 max pooling after
    conv1, conv2 and conv5, 5×5 kernels in conv2 and 3×3 in conv3–conv5.
    Scaled: a 32×32 input (28×28 images padded), conv1 5×5 stride 1 with padding (an 11×11
    stride-4 kernel would leave an 8×8 map), widths 32-64-96-96-64 (about a third of
    96-256-384-384-256, to keep CPU training to minutes per epoch), FC6/FC7 of 512.
    Dropped: the two-GPU grouping (one device holds the whole net) and local response
    normalisation (little effect at this scale, Simonyan & Zisserman 2015). Kaiming
    initialisation replaces N(0, 0.01), which trains slowly without the paper's 90 epochs.

    ``input_size`` above 32 (photographs, :mod:`.input_size`): the same layers and
    parameters, conv1 strided from 48 px (:func:`~.registry.stem_stride`, as the paper's
    stride-4 conv1 at 227), and the 3×3 average before the classifier takes the larger
    conv5 maps. At 32 the net is the one above.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        removed: Iterable[str] = (),
        input_size: int = 32,
    ) -> None:
        super().__init__()
        removed = _check_removed(removed)
        stride = stem_stride(input_size)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 32, 5, stride=stride, padding=2),  # conv1 (B, 32, 32, 32)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),  # (B, 32, 15, 15)
            nn.Conv2d(32, 64, 5, padding=2),  # conv2 (B, 64, 15, 15)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),  # (B, 64, 7, 7)
        ]
        if "conv3" not in removed:
            layers += [
                nn.Conv2d(64, 96, 3, padding=1),  # conv3 (B, 96, 7, 7)
                nn.ReLU(inplace=True),
                nn.Conv2d(96, 96, 3, padding=1),  # conv4 (B, 96, 7, 7)
                nn.ReLU(inplace=True),
            ]
        layers += [
            nn.Conv2d(64 if "conv3" in removed else 96, 64, 3, padding=1),  # conv5 (B, 64, 7, 7)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),  # (B, 64, 3, 3)
        ]
        self.features = nn.Sequential(*layers)
        self.avgpool = AdaptiveAvgPool2d((3, 3))
        self.classifier = _classifier(64 * 3 * 3, 512, num_classes, removed)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                _set_bias(m, 0.0)
        # Small output weights (the paper's N(0, 0.01)) start with near-uniform class scores.
        output = self.classifier[-1]
        assert isinstance(output, nn.Linear)
        nn.init.normal_(output.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 64, 3, 3) at 32×32
        x = self.avgpool(x)  # (B, 64, 3, 3)
        x = torch.flatten(x, 1)  # (B, 576)
        return self.classifier(x)  # (B, K)


@register_model(
    "alexnet",
    input_size=224,
    fit="resize",
    fixed_channels=3,
    description="torchvision's alexnet (grayscale replicated to RGB)",
)
def alexnet(*, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """torchvision's ``alexnet`` untrained (61 100 840 parameters for 1000 classes).

    torchvision is imported here, not with the module: every other model of the
    registry, and every process that only lists or builds them, starts without it.
    """
    import torchvision

    del in_channels  # fixed at 3: grayscale images are replicated by the pipeline
    model = torchvision.models.alexnet(weights=None, num_classes=num_classes)
    model.avgpool = AdaptiveAvgPool2d((6, 6))  # the same averages; 6×6 maps at 224 pass
    return model


def _register_alexnet_family(
    base: str,
    cls: type[AlexNet2012] | type[AlexNetSmall],
    input_size: int,
    fit: Literal["pad", "resize"],
    text: str,
    max_input_size: int = 0,
) -> None:
    variants = {"": frozenset[str](), **{f"-no-{k}": v for k, v in ABLATIONS.items()}}
    for suffix, removed in variants.items():
        desc = text if not suffix else f"{text}, without {', '.join(sorted(removed))}"

        def build(
            *,
            num_classes: int = 10,
            in_channels: int = 3,
            _removed=removed,
            input_size: int | None = None,
        ) -> nn.Module:
            if input_size is not None and cls is AlexNetSmall:  # its stem (max_input_size)
                return AlexNetSmall(num_classes, in_channels, _removed, input_size)
            return cls(num_classes=num_classes, in_channels=in_channels, removed=_removed)

        register_model(
            base + suffix,
            input_size=input_size,
            fit=fit,
            description=desc,
            max_input_size=max_input_size,
        )(build)


_register_alexnet_family(
    "alexnet-2012", AlexNet2012, 227, "resize", "Krizhevsky et al. 2012 as published, 227×227"
)
_register_alexnet_family(
    "alexnet-small",
    AlexNetSmall,
    32,
    "pad",
    "AlexNet's design scaled for 28-32 px images",
    max_input_size=SMALL_MAX_INPUT,
)
