"""One path from CLI flags, ``--set KEY=VALUE`` strings and suite TOML into frozen dataclasses.

Every pipeline configuration is a frozen dataclass. :func:`build_config` takes a
mapping of overrides (values may be strings from the command line or typed values
from TOML), applies an optional ``preset`` first, coerces each value to the
field's annotated type and refuses unknown keys with a message that lists the
known ones. A float setting is refused when it is NaN or infinite (``--set lr=nan``
would otherwise fail after training, or inside scikit-learn), unless its class
lists it in ``ALLOW_INF`` (infinity only; NaN is never a setting). A numeric
setting is checked against its range when it is parsed: every integer setting lies
within :data:`INT_LIMIT`, and a class's ``BOUNDS`` (:class:`Bound`) give the ranges
where one is natural (``epochs`` at most 10 000, ``label_smoothing`` in [0, 1)), so
that a setting out of range is one line before anything is read or trained. A class may
keep an old spelling of a renamed setting in ``ALIASES``, so that ``--set`` flags,
suites and stored runs that use it still read.
:func:`check_seed` is the one range check of a seed (flags, suites, the harness).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bovw_vs_convnet.errors import ConfigError, unknown_name

C = TypeVar("C")

# Seeds go to numpy (RandomState takes 0 <= seed < 2**32) and into the store's
# INTEGER column: checked here, not found out after the data is loaded.
SEED_LIMIT = 2**32
# Every integer setting lies in [-INT_LIMIT, INT_LIMIT]: numpy's integers and the store's
# INTEGER columns take 64 bits, and a setting of ``1e300`` is a typo, not a count.
INT_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class Bound:
    """The range of a numeric setting: ``low <= value <= high`` (strict where ``*_open``).

    None leaves that side open. A value that is not a number (``"auto"``, None) is not
    checked; a tuple setting has each of its numbers checked.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low < value, not low <= value
    high_open: bool = False  # value < high, not value <= high

    def text(self) -> str:
        """The range as a person reads it: ``in [0, 1)``, ``>= 1``, ``<= 10000``."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies in the range."""
        lo, hi = self.low, self.high
        return not (
            (lo is not None and (value <= lo if self.low_open else value < lo))
            or (hi is not None and (value >= hi if self.high_open else value > hi))
        )


def check_bounds(name: str, value: Any, bound: Bound | None) -> None:
    """ConfigError (one line, naming ``name``) when a number in ``value`` is out of range.

    Integers are checked against :data:`INT_LIMIT` too; strings and None pass.
    """
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if bound is not None and not bound.holds(item):
            raise ConfigError(
                f"setting {name!r} must be {bound.text()}, got {_shown(item)}", key=name
            )
        if isinstance(item, int) and abs(item) > INT_LIMIT:
            raise ConfigError(
                f"setting {name!r} must be an integer from {-INT_LIMIT} to {INT_LIMIT}, "
                f"got {_shown(item)}",
                key=name,
            )


def _shown(value: float) -> str:
    """A number short enough for one line (``1e+300``, not its 301 digits)."""
    try:
        return str(value) if abs(value) < 1e15 else f"{float(value):.6g}"
    except OverflowError:  # an int beyond any float
        return f"an integer of {len(str(abs(int(value))))} digits"


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int when it is an integer in [0, 2**32); ConfigError otherwise.

    ``what`` names it in the message (``"--seed"``, a suite's ``seeds``).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(
            f"{what} must be an integer from 0 to {SEED_LIMIT - 1}, got {seed!r}", key="seed"
        )
    return int(seed)


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


def _coerce(name: str, value: Any, tp: Any, allow_inf: bool = False) -> Any:
    """Convert ``value`` to the annotated type ``tp`` (strings are parsed).

    Floats must be finite; ``allow_inf`` admits infinity (never NaN).
    """
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
                return _coerce(name, value, arg, allow_inf)
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
        return tuple(_coerce(name, p, elem, allow_inf) for p in parts)
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
        text = str(value).strip()
        try:
            return int(text)  # exact, also past 2**53 (a float would round it)
        except ValueError:
            pass
        try:
            as_float = float(text)
        except ValueError:
            raise ConfigError(
                f"setting {name!r} expects an integer, got {value!r}", key=name
            ) from None
        if not as_float.is_integer():
            raise ConfigError(f"setting {name!r} expects an integer, got {value!r}", key=name)
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"setting {name!r} expects a number, got {value!r}", key=name)
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(
                f"setting {name!r} expects a number, got {value!r}", key=name
            ) from None
        if math.isnan(number) or (math.isinf(number) and not allow_inf):
            raise ConfigError(f"setting {name!r} expects a finite number, got {value!r}", key=name)
        return number
    if tp is str:
        return str(value)
    return value


def canonical_settings(cls: type[Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with each old spelling in ``cls.ALIASES`` replaced by the setting's name.

    A config class may declare ``ALIASES: ClassVar[dict[str, str]]``, old name → name,
    for a setting renamed after runs were stored (``{"backend": "executor"}``).
    ConfigError when a setting is given under both names.
    """
    aliases: Mapping[str, str] = getattr(cls, "ALIASES", {})
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = aliases.get(key, key)
        if name in out:
            raise ConfigError(f"setting {name!r} given twice (also by its old name)", key=name)
        out[name] = value
    return out


def build_config(cls: type[C], overrides: Mapping[str, Any] | None = None) -> C:
    """Build the frozen dataclass ``cls`` from defaults, an optional preset and overrides.

    ``cls`` may define ``PRESETS: ClassVar[dict[str, dict[str, Any]]]``; the key
    ``preset`` in ``overrides`` selects one, applied before the other overrides.
    ``ALLOW_INF: ClassVar[frozenset[str]]`` names float settings that may be infinite;
    ``BOUNDS: ClassVar[dict[str, Bound]]`` the ranges of numeric settings
    (:func:`check_bounds`, integers within :data:`INT_LIMIT` always);
    ``ALIASES`` old names of settings (:func:`canonical_settings`).
    When no preset is named and ``cls`` has a classmethod
    ``default_preset(overrides) -> str | None``, the preset it names is applied
    (e.g. the recipe a ConvNet trains well with).
    Raises :class:`ConfigError` for an unknown key, an unknown preset or a value
    that does not fit the field's type; its ``key`` names the setting at fault
    (``"preset"`` for an unknown preset; None for a check in the dataclass
    itself that names no setting).
    """
    overrides = canonical_settings(cls, overrides or {})
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
            raise ConfigError(unknown_name("preset", preset, sorted(presets)), key="preset")
        values.update(presets[preset])
        if "preset" in fields:
            values["preset"] = preset
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(unknown_name("setting", unknown[0], sorted(fields)), key=unknown[0])
    values.update(overrides)
    allow_inf: frozenset[str] = frozenset(getattr(cls, "ALLOW_INF", ()))
    kwargs = {k: _coerce(k, v, hints[k], k in allow_inf) for k, v in values.items()}
    bounds: Mapping[str, Bound] = getattr(cls, "BOUNDS", {})
    for key, value in kwargs.items():
        check_bounds(key, value, bounds.get(key))
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
    other value is part of it. Settings named in ``NOT_IDENTITY: ClassVar[tuple[str, ...]]``
    (where the work runs, never what it computes) are always left out. A setting stored
    under an old name (``ALIASES``) counts under its name.
    """
    settings = canonical_settings(cls, settings)
    since: Mapping[str, Any] = getattr(cls, "SETTINGS_SINCE", {})
    never = set(getattr(cls, "NOT_IDENTITY", ()))  # how work is spread, not what it computes
    return {
        k: v for k, v in settings.items() if k not in never and (k not in since or since[k] != v)
    }
