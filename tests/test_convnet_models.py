"""The ConvNet models: parameter counts, connection table, forward shapes, registry."""

from __future__ import annotations

import pytest
import torch

from bovw_vs_convnet.convnet.lenet import C3_TABLE, PartialConv2d, RBFOutput
from bovw_vs_convnet.convnet.models import (
    count_parameters,
    create_model,
    get_model_spec,
    list_models,
    resolve_ablation,
)
from bovw_vs_convnet.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "num_classes", "channels", "expected"),
    [
        ("lenet5-1998", 10, 1, 60_000),
        ("lenet5", 10, 1, 61_706),
        ("alexnet-2012", 1000, 3, 60_965_224),
        ("alexnet", 1000, 3, 61_100_840),
    ],
)
def test_trainable_parameter_count_matches_the_paper(
    name: str, num_classes: int, channels: int, expected: int
) -> None:
    model = create_model(name, num_classes=num_classes, in_channels=channels)
    assert count_parameters(model) == expected


def test_lenet5_1998_parameters_do_not_depend_on_classes() -> None:
    # The RBF codes are fixed, so a 26-class LeNet-5 has the same 60 000 parameters.
    assert count_parameters(create_model("lenet5-1998", num_classes=26)) == 60_000


def test_c3_connects_only_the_maps_of_table_one() -> None:
    torch.manual_seed(0)
    c3 = PartialConv2d(C3_TABLE, 6, 5)
    c3.weight.data.uniform_(0.5, 1.0)  # no connected kernel is zero
    dense = c3.dense_weight()  # (16, 6, 5, 5)
    connected = dense.abs().sum((2, 3)) > 0  # (16, 6)
    expected = torch.zeros(16, 6, dtype=torch.bool)
    for j, inputs in enumerate(C3_TABLE):
        expected[j, list(inputs)] = True
    assert torch.equal(connected, expected)
    assert sum(p.numel() for p in c3.parameters()) == 1_516


def test_rbf_output_is_minus_the_squared_distance_to_each_code() -> None:
    rbf = RBFOutput(4, 3)
    x = rbf.codes[1:2].clone()  # (1, 4), exactly on class 1's code
    x[0, 0] += 0.5
    scores = rbf(x)  # (1, 3)
    assert scores[0, 1].item() == pytest.approx(-0.25)
    assert scores.argmax(1).item() == 1


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_at_batch_two(name: str) -> None:
    spec = get_model_spec(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=1).eval()
    channels = spec.fixed_channels or 1
    x = torch.randn(2, channels, spec.input_size, spec.input_size)  # (B, C, S, S)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7)


def test_first_convolution_adapts_to_three_channels() -> None:
    model = create_model("lenet5", num_classes=10, in_channels=3)
    assert count_parameters(model) == 61_706 + 2 * 6 * 25


def test_list_models_filters_like_timm() -> None:
    assert list_models("lenet*") == ["lenet5", "lenet5-1998"]
    assert "alexnet-small-no-fc6-fc7" in list_models("alex*")


@pytest.mark.parametrize(
    ("ablate", "expected"),
    [
        ("none", "alexnet-2012"),
        ("fc7", "alexnet-2012-no-fc7"),
        ("fc6,fc7", "alexnet-2012-no-fc6-fc7"),
        ("conv3-conv4-fc6-fc7", "alexnet-2012-no-conv3-conv4-fc6-fc7"),
    ],
)
def test_resolve_ablation_names_the_registered_variant(ablate: str, expected: str) -> None:
    assert resolve_ablation("alexnet-2012", ablate) == expected


def test_ablation_removing_fc6_and_fc7_leaves_one_linear_layer() -> None:
    model = create_model("alexnet-small-no-fc6-fc7", num_classes=10, in_channels=1)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(576, 10)]


def test_unknown_ablation_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown ablation 'fc8' of model 'lenet5'; known: none"):
        resolve_ablation("lenet5", "fc8")


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown model 'lenet6' \(did you mean 'lenet5'.*\); known: alexnet, "
    ):
        create_model("lenet6")
