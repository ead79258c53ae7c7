"""One path from CLI flags, ``--set KEY=VALUE`` strings and suite TOML into frozen dataclasses.

Every pipeline configuration is a frozen dataclass. :func:`build_config` takes a
mapping of overrides (values may be strings from the command line or typed values
from TOML), applies an optional ``preset`` first, coerces each value to the
field's annotated type and refuses unknown keys with a message that lists the
known ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from bovw_vs_convnet.errors import ConfigError

C = TypeVar("C")


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """Turn ``["a=1", "b=x"]`` (repeated ``--set`` flags) into ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = value.strip()
    return out


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` to the annotated type ``tp`` (strings are parsed)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (
            isinstance(value, str) and value.lower() in ("none", "null", "")
        )
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if errors else f"setting {name!r}: bad value {value!r}", key=name
        )
    if origin is typing.Literal:
        for choice in args:
            if value == choice or str(value) == str(choice):
                return choice
        raise ConfigError(f"setting {name!r} must be one of {list(args)}, got {value!r}", key=name)
    if origin is tuple:
        if isinstance(value, str):
            parts: list[Any] = [p for p in value.replace(";", ",").split(",") if p.strip()]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = [value]
        elem = args[0] if args else str
        return tuple(_coerce(name, p, elem) for p in parts)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"setting {name!r} expects true/false, got {value!r}", key=name)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"setting {name!r} expects an integer, got {value!r}", key=name)
        try:
            as_float = float(str(value).strip())
        except ValueError:
            raise ConfigError(
                f"setting {name!r} expects an integer, got {value!r}", key=name
            ) from None
        if not as_float.is_integer():
            raise ConfigError(f"setting {name!r} expects an integer, got {value!r}", key=name)
        return int(as_float)
    if tp is float:
        try:
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"setting {name!r} expects a number, got {value!r}", key=name
            ) from None
    if tp is str:
        return str(value)
    return value


def build_config(cls: type[C], overrides: Mapping[str, Any] | None = None) -> C:
    """Build the frozen dataclass ``cls`` from defaults, an optional preset and overrides.

    ``cls`` may define ``PRESETS: ClassVar[dict[str, dict[str, Any]]]``; the key
    ``preset`` in ``overrides`` selects one, applied before the other overrides.
    When no preset is named and ``cls`` has a classmethod
    ``default_preset(overrides) -> str | None``, the preset it names is applied
    (e.g. the recipe a ConvNet trains well with).
    Raises :class:`ConfigError` for an unknown key, an unknown preset or a value
    that does not fit the field's type; its ``key`` names the setting at fault
    (``"preset"`` for an unknown preset; None for a check in the dataclass
    itself that names no setting).
    """
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    presets: Mapping[str, Mapping[str, Any]] = getattr(cls, "PRESETS", {})
    preset = overrides.pop("preset", None)
    default_preset = getattr(cls, "default_preset", None)
    if preset is None and default_preset is not None:
        preset = default_preset(overrides)
    if preset is not None:
        if preset not in presets:
            raise ConfigError(
                f"unknown preset {preset!r}; known: {', '.join(sorted(presets)) or 'none'}",
                key="preset",
            )
        values.update(presets[preset])
        if "preset" in fields:
            values["preset"] = preset
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(fields))}", key=unknown[0]
        )
    values.update(overrides)
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def identity_settings(cls: type[Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` less those that ``cls`` added after runs were stored, at their old value.

    A config class may declare ``SETTINGS_SINCE: ClassVar[dict[str, Any]]``: each
    setting added in a later version, with the value that runs stored before it
    implicitly had (``{"mirror": "auto"}``). At that value such a setting is left
    out of a run's identity (the store's config key, the leaderboard's grouping, a
    checkpoint's identity), so that those runs still count as the same run; any
    other value is part of it.
    """
    since: Mapping[str, Any] = getattr(cls, "SETTINGS_SINCE", {})
    return {k: v for k, v in settings.items() if k not in since or since[k] != v}
