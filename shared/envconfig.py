"""Config dataclasses read from ``TOKENGATE_<FIELD>`` environment variables, one way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from tokengate.shared.errors import ConfigurationError

ENV_PREFIX = "TOKENGATE_"

C = TypeVar("C")


def from_env(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Build ``cls`` from ``TOKENGATE_<FIELD>`` variables, then ``overrides`` on top.

    Fields typed ``bool``, ``int`` or ``float`` (optionally ``| None``) are converted; others
    are taken as text. A value that does not convert raises ``ConfigurationError`` naming
    the variable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        raw = environ.get(ENV_PREFIX + item.name.upper())
        if raw is not None:
            values[item.name] = convert(item.name, str(item.type), raw)
    values.update(overrides)
    return cls(**values)


def convert(name: str, type_text: str, raw: str) -> object:
    text = raw.strip()
    try:
        if "None" in type_text and text.lower() in ("", "none"):
            return None
        if type_text.startswith("bool"):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if type_text.startswith("int"):
            return int(text)
        if type_text.startswith("float"):
            return float(text)
    except ValueError:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type_text}"
        ) from None
    return text
