"""Config dataclasses read from ``TOKENGATE_*`` environment variables, one way for all.

Every settings class (scheduler, guards, gateway, agent link, client, dashboard) is a
keyword-only dataclass whose fields are read here: a field ``name`` is read from
``TOKENGATE_<NAME>`` unless its metadata names another variable (``env``); a field marked
``secret`` may instead come from a file named by ``<VARIABLE>_FILE``; a field that is itself
a settings dataclass (TLS) is read the same way; ``doc`` in the metadata describes it.
:func:`table` renders the variables, defaults and meanings of a class, for the docs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, TypeVar

from tokengate.shared.errors import ConfigurationError

ENV_PREFIX = "TOKENGATE_"

C = TypeVar("C")


def variable(item: Field[Any]) -> str:
    """The environment variable of a config field."""
    return item.metadata.get("env") or ENV_PREFIX + item.name.upper()


def setting(default: Any = MISSING, *, env: str = "", doc: str = "", secret: bool = False,
            factory: Any = MISSING) -> Any:
    """A config field with its variable, its meaning, and whether it may come from a file."""
    metadata = {"env": env, "doc": doc, "secret": secret}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def from_env(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Build ``cls`` from its variables, then ``overrides`` on top (use :func:`given` to
    drop options a command line left unset).

    Fields typed ``bool``, ``int``, ``float`` or ``tuple[str, ...]`` (comma-separated),
    optionally ``| None``, are converted; others are taken as text. A value that does not
    convert raises ``ConfigurationError`` naming the variable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        nested = _nested_class(item)
        if nested is not None:
            values[item.name] = from_env(nested, environ)
            continue
        raw = read_variable(item, environ)
        if raw is not None:
            values[item.name] = convert(variable(item), str(item.type), raw)
    values.update(overrides)
    return cls(**values)


def given(**options: Any) -> dict[str, Any]:
    """The options that were given (not None): command-line flags left unset drop out."""
    return {k: v for k, v in options.items() if v is not None}


def read_variable(item: Field[Any], environ: Mapping[str, str]) -> str | None:
    name = variable(item)
    if name in environ:
        return environ[name]
    file_name = environ.get(name + "_FILE") if item.metadata.get("secret") else None
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {name}_FILE={file_name}: {exc}") from None
    return None


def _nested_class(item: Field[Any]) -> type | None:
    factory = item.default_factory
    if factory is not MISSING and dataclasses.is_dataclass(factory):
        return factory
    return None


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
        if type_text.startswith("tuple"):
            return tuple(part.strip() for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a valid {type_text}") from None
    return text


def table(classes: Iterable[type]) -> str:
    """A Markdown table of every variable of ``classes``: name, default, meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for cls in classes:
        for item in fields(cls):
            nested = _nested_class(item)
            if nested is not None:
                lines += table([nested]).splitlines()[2:]
                continue
            default = item.default if item.default is not MISSING else (
                "(computed)" if item.default_factory is not MISSING else "(required)")
            if item.default_factory is not MISSING and not isinstance(default, str):
                default = "(computed)"
            shown = "" if default == "" else f"`{default}`"
            secret = " (or a file named by `…_FILE`)" if item.metadata.get("secret") else ""
            lines.append(f"| `{variable(item)}`{secret} | {shown} | "
                         f"{item.metadata.get('doc', '')} |")
    return "\n".join(lines)
