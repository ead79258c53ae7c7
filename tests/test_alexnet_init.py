"""alexnet-2012's initialisations: Kaiming with zero biases (the default) and the paper's."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config, identity_settings
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.models import create_model
from bovw_vs_convnet.errors import ConfigError

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _layers(model: nn.Module) -> dict[str, nn.Conv2d | nn.Linear]:
    """alexnet-2012's weighted layers by the paper's names, in order."""
    found = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return dict(zip(LAYERS, found, strict=True))


@pytest.fixture(scope="module")
def kaiming() -> dict[str, nn.Conv2d | nn.Linear]:
    torch.manual_seed(0)
    return _layers(create_model("alexnet-2012", num_classes=62, in_channels=1))


@pytest.fixture(scope="module")
def paper() -> dict[str, nn.Conv2d | nn.Linear]:
    torch.manual_seed(0)
    return _layers(create_model("alexnet-2012", num_classes=62, in_channels=1, init="paper"))


def test_kaiming_is_the_default_and_gives_zero_biases(kaiming: dict) -> None:
    for name, layer in kaiming.items():
        assert layer.bias is not None
        assert torch.count_nonzero(layer.bias).item() == 0, name


# fan_in = input channels of one group x kernel area (conv2, conv4, conv5: two groups)
KAIMING_FAN_IN = {
    "conv1": 1 * 11 * 11,
    "conv2": 48 * 5 * 5,
    "conv3": 256 * 3 * 3,
    "conv4": 192 * 3 * 3,
    "conv5": 192 * 3 * 3,
    "fc6": 9216,
    "fc7": 4096,
}


@pytest.mark.parametrize("name", sorted(KAIMING_FAN_IN))
def test_kaiming_std_per_layer_is_sqrt_2_over_fan_in(kaiming: dict, name: str) -> None:
    expected = math.sqrt(2.0 / KAIMING_FAN_IN[name])
    weight = kaiming[name].weight
    # conv1 has the fewest weights (11 616): the sample std is within 2 % of the truth
    assert weight.std().item() == pytest.approx(expected, rel=0.02)
    assert weight.mean().item() == pytest.approx(0.0, abs=0.05 * expected)


def test_kaiming_output_layer_starts_small(kaiming: dict) -> None:
    assert kaiming["fc8"].weight.std().item() == pytest.approx(0.01, rel=0.02)


def test_paper_init_is_n_0_001_with_biases_one_in_conv2_conv4_conv5_fc6_fc7(paper: dict) -> None:
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for name, layer in paper.items():
        assert layer.weight.std().item() == pytest.approx(0.01, rel=0.02), name
        assert layer.bias is not None
        assert torch.all(layer.bias == (1.0 if name in ones else 0.0)).item(), name


def test_config_resolves_auto_to_kaiming_for_alexnet_2012_only() -> None:
    assert build_config(ConvNetConfig, {"model": "alexnet-2012"}).init == "kaiming"
    assert build_config(ConvNetConfig, {"model": "alexnet-2012-no-fc7"}).init == "kaiming"
    assert build_config(ConvNetConfig, {"model": "alexnet-2012", "init": "paper"}).init == "paper"
    assert build_config(ConvNetConfig, {"model": "lenet5"}).init == "auto"


def test_init_is_in_the_key_of_alexnet_2012_only() -> None:
    # a stored lenet5 run (no init key) keeps its key; alexnet-2012's chance-level runs
    # from the paper's init do not share one with the Kaiming default
    lenet = build_config(ConvNetConfig, {"model": "lenet5"})
    alex = build_config(ConvNetConfig, {"model": "alexnet-2012"})
    assert "init" not in identity_settings(ConvNetConfig, {"init": lenet.init})
    assert identity_settings(ConvNetConfig, {"init": alex.init}) == {"init": "kaiming"}


def test_init_for_a_model_without_schemes_is_refused_with_its_key() -> None:
    with pytest.raises(ConfigError, match="applies to alexnet-2012") as info:
        build_config(ConvNetConfig, {"model": "lenet5", "init": "kaiming"})
    assert info.value.key == "init"


def test_create_model_refuses_a_scheme_the_model_lacks() -> None:
    with pytest.raises(ConfigError, match="own initialisation") as info:
        create_model("lenet5", num_classes=10, in_channels=1, init="paper")
    assert info.value.key == "init"


def test_unknown_init_exits_2_before_any_data_is_read(tmp_path) -> None:
    args = ["run", "convnet", "--dataset", "digits", "--model", "alexnet-2012"]
    args += ["--set", "init=xavier", "--runs-dir", str(tmp_path), "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: setting 'init' must be one of ['auto', 'kaiming', 'paper']"
    )
    assert not tmp_path.joinpath("results.sqlite").exists()
