"""The one path from --set strings and TOML values into frozen config dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest

from bovw_vs_convnet.config import (
    build_config,
    config_to_dict,
    identity_settings,
    parse_set_options,
)
from bovw_vs_convnet.errors import ConfigError


@dataclass(frozen=True)
class ToyConfig:
    PRESETS: ClassVar[dict[str, dict[str, object]]] = {"big": {"k": 1024, "levels": (1, 2, 4)}}

    preset: str = "default"
    k: int = 256  # visual words
    lr: float = 0.1
    flip: bool = False
    levels: tuple[int, ...] = (1, 2)
    kernel: Literal["chi2", "rbf"] = "chi2"
    limit: int | None = None


def test_parse_set_options_splits_on_first_equals() -> None:
    assert parse_set_options(["k=64", "name=a=b"]) == {"k": "64", "name": "a=b"}


def test_parse_set_options_refuses_missing_equals() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_options(["k64"])


def test_strings_are_coerced_to_field_types() -> None:
    cfg = build_config(
        ToyConfig,
        {
            "k": "64",
            "lr": "1e-3",
            "flip": "yes",
            "levels": "1,2,4",
            "kernel": "rbf",
            "limit": "none",
        },
    )
    assert cfg == ToyConfig(k=64, lr=0.001, flip=True, levels=(1, 2, 4), kernel="rbf", limit=None)


def test_preset_applies_before_overrides() -> None:
    cfg = build_config(ToyConfig, {"preset": "big", "k": 512})
    assert (cfg.preset, cfg.k, cfg.levels) == ("big", 512, (1, 2, 4))


def test_unknown_key_lists_known_keys() -> None:
    message = r"unknown setting 'kk' \(did you mean 'k'\?\); known: flip, k, kernel"
    with pytest.raises(ConfigError, match=message):
        build_config(ToyConfig, {"kk": 1})


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'; known: big"):
        build_config(ToyConfig, {"preset": "huge"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("k", "3.5", "expects an integer"),
        ("lr", "fast", "expects a number"),
        ("flip", "maybe", "expects true/false"),
        ("kernel", "poly", r"must be one of \['chi2', 'rbf'\]"),
    ],
)
def test_bad_values_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(ToyConfig, {key: value})


def test_config_to_dict_is_json_ready() -> None:
    assert config_to_dict(ToyConfig())["levels"] == [1, 2]


@dataclass(frozen=True)
class ModelConfig:
    PRESETS: ClassVar[dict[str, dict[str, object]]] = {"slow": {"lr": 0.001}}

    model: str = "a"
    lr: float = 0.1

    @classmethod
    def default_preset(cls, overrides: dict[str, object]) -> str | None:
        return "slow" if overrides.get("model") == "b" else None


def test_default_preset_applies_when_none_is_named() -> None:
    assert build_config(ModelConfig, {"model": "b"}).lr == 0.001
    assert build_config(ModelConfig, {"model": "a"}).lr == 0.1
    assert build_config(ModelConfig, {"model": "b", "lr": 0.5}).lr == 0.5


def test_config_error_names_the_unknown_setting() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(ToyConfig, {"k": 8, "kk": 1})
    assert info.value.key == "kk"


@pytest.mark.parametrize(("key", "value"), [("k", "3.5"), ("kernel", "poly"), ("limit", "x")])
def test_config_error_names_the_setting_with_the_bad_value(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(ToyConfig, {key: value})
    assert info.value.key == key


def test_config_error_of_an_unknown_preset_names_preset() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(ToyConfig, {"preset": "huge"})
    assert info.value.key == "preset"


@dataclass(frozen=True)
class RangeConfig:
    low: int = 0
    high: int = 1

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise ValueError(f"low must be below high, got {self.low} >= {self.high}")


def test_config_error_of_a_check_across_settings_names_no_key() -> None:
    with pytest.raises(ConfigError, match="low must be below high, got 2 >= 1") as info:
        build_config(RangeConfig, {"low": 2})
    assert info.value.key is None


def test_config_error_of_a_bad_set_item_names_no_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_set_options(["k64"])
    assert info.value.key is None


@dataclass(frozen=True)
class Later:
    SETTINGS_SINCE: ClassVar[dict[str, str]] = {"mode": "auto"}
    k: int = 1
    mode: str = "auto"


def test_identity_leaves_out_a_later_setting_only_at_its_old_value() -> None:
    assert identity_settings(Later, {"k": 1, "mode": "auto"}) == {"k": 1}
    assert identity_settings(Later, {"k": 1, "mode": "on"}) == {"k": 1, "mode": "on"}
    assert identity_settings(ToyConfig, {"k": 1, "mode": "auto"}) == {"k": 1, "mode": "auto"}


@dataclass(frozen=True)
class FloatConfig:
    ALLOW_INF: ClassVar[frozenset[str]] = frozenset({"budget"})

    lr: float = 0.1
    grid: tuple[float, ...] = (1.0,)
    sigma: float | None = None
    budget: float = 1.0  # seconds; inf: no limit


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lr", "nan"),
        ("lr", "inf"),
        ("lr", "-Infinity"),
        ("lr", float("nan")),  # as TOML gives `lr = nan`
        ("lr", "1e400"),  # overflows to inf
        ("grid", "1,nan"),
        ("sigma", "inf"),
        ("budget", "nan"),
    ],
)
def test_a_float_that_is_not_finite_is_refused_with_its_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"setting '{key}' expects a finite number") as info:
        build_config(FloatConfig, {key: value})
    assert info.value.key == key


def test_a_field_in_allow_inf_takes_infinity() -> None:
    assert build_config(FloatConfig, {"budget": "inf"}).budget == float("inf")


def test_a_boolean_is_not_a_number() -> None:
    with pytest.raises(ConfigError, match="setting 'lr' expects a number, got True"):
        build_config(FloatConfig, {"lr": True})


def test_a_large_integer_is_kept_exactly() -> None:  # past 2**53, where a float would round
    assert build_config(ToyConfig, {"k": "1234567890123456789"}).k == 1234567890123456789


def test_an_integer_past_64_bits_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^setting 'k' must be an integer from .* got 1e\+300$"):
        build_config(ToyConfig, {"k": "1e300"})


@pytest.mark.parametrize("seed", [-1, 2**32, 1.0, True, "3"])
def test_check_seed_refuses_what_numpy_and_the_store_cannot_take(seed: object) -> None:
    from bovw_vs_convnet.config import check_seed

    with pytest.raises(ConfigError, match=r"--seed must be an integer from 0 to 4294967295"):
        check_seed(seed, "--seed")


def test_check_seed_passes_the_range_ends() -> None:
    from bovw_vs_convnet.config import check_seed

    assert (check_seed(0), check_seed(2**32 - 1)) == (0, 4294967295)


@dataclass(frozen=True)
class Renamed:
    ALIASES: ClassVar[dict[str, str]] = {"backend": "executor"}
    NOT_IDENTITY: ClassVar[tuple[str, ...]] = ("executor",)
    k: int = 1
    executor: Literal["auto", "local", "dask"] = "auto"


def test_an_old_name_in_aliases_sets_the_renamed_setting() -> None:
    cfg = build_config(Renamed, parse_set_options(["backend=local"]))
    assert cfg.executor == "local"
    assert build_config(Renamed, {"executor": "dask"}).executor == "dask"


def test_a_setting_given_by_both_its_names_is_refused() -> None:
    with pytest.raises(ConfigError, match="'executor' given twice") as info:
        build_config(Renamed, {"backend": "local", "executor": "dask"})
    assert info.value.key == "executor"


def test_identity_reads_a_setting_stored_under_its_old_name() -> None:
    assert identity_settings(Renamed, {"k": 2, "backend": "dask"}) == {"k": 2}


def test_bovw_set_backend_still_sets_the_executor() -> None:
    from bovw_vs_convnet.bovw.config import BovwConfig

    cfg = build_config(BovwConfig, parse_set_options(["backend=local"]))
    assert cfg.executor == "local"
    assert "backend" not in config_to_dict(cfg)
