"""Safe encoding of call arguments for the quarantine: JSON with type tags, never pickle.

:func:`encode` turns arguments into JSON-ready data and :func:`decode` turns that back into
equal values. Plain JSON types stay as they are; other supported types become a one-key
object ``{"__tg__": <type>, "v": ...}``. Decoding builds only the listed types, so reading a
quarantine file can never run code. A value of any other type raises :class:`Unencodable`:
the call is still quarantined, with its summary, but is marked not replayable.

:func:`summarise` gives the short display form (type, length, a clipped repr).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

from tokengate.shared.errors import TokenGateError

TAG = "__tg__"
MAX_DEPTH = 64
SUMMARY_CHARS = 80


class Unencodable(TokenGateError):
    """An argument has a type the quarantine cannot store safely for replay."""


def _tagged(kind: str, value: Any) -> dict[str, Any]:
    return {TAG: kind, "v": value}


def _encode_scalar(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        kind = "bytes" if isinstance(value, bytes) else "bytearray"
        return _tagged(kind, base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return _tagged("float", repr(value))
    if isinstance(value, complex):
        return _tagged("complex", [value.real, value.imag])
    if isinstance(value, decimal.Decimal):
        return _tagged("decimal", str(value))
    if isinstance(value, dt.datetime):
        return _tagged("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _tagged("date", value.isoformat())
    if isinstance(value, uuid.UUID):
        return _tagged("uuid", str(value))
    raise Unencodable(f"cannot store a {type(value).__qualname__} for replay")


def encode(value: Any, _depth: int = 0) -> Any:
    """JSON-ready data for ``value``; raises :class:`Unencodable` for unsupported types."""
    if _depth > MAX_DEPTH:
        raise Unencodable("arguments nest deeper than the quarantine stores")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return value
    nxt = _depth + 1
    if isinstance(value, list):
        return [encode(item, nxt) for item in value]
    if isinstance(value, tuple):
        return _tagged("tuple", [encode(item, nxt) for item in value])
    if isinstance(value, set | frozenset):
        kind = "set" if isinstance(value, set) else "frozenset"
        return _tagged(kind, [encode(item, nxt) for item in value])
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            return {key: encode(item, nxt) for key, item in value.items()}
        return _tagged("dict", [[encode(k, nxt), encode(v, nxt)] for k, v in value.items()])
    return _encode_scalar(value)


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "bytes": lambda v: base64.b64decode(v),
    "bytearray": lambda v: bytearray(base64.b64decode(v)),
    "float": float,
    "complex": lambda v: complex(v[0], v[1]),
    "decimal": decimal.Decimal,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "uuid": uuid.UUID,
}


def decode(data: Any) -> Any:
    """The value :func:`encode` was given (builds only the tagged types listed here)."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(TAG)
    if kind is None:
        return {key: decode(item) for key, item in data.items()}
    value = data["v"]
    if kind == "tuple":
        return tuple(decode(item) for item in value)
    if kind in ("set", "frozenset"):
        items = [decode(item) for item in value]
        return set(items) if kind == "set" else frozenset(items)
    if kind == "dict":
        return {decode(k): decode(v) for k, v in value}
    if kind in _SCALARS:
        return _SCALARS[kind](value)
    raise Unencodable(f"unknown type tag {kind!r} in stored arguments")


def summarise(value: Any) -> str:
    """A short display form: type, size, and a clipped repr."""
    size = ""
    if isinstance(value, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        size = f"[{len(value)}]"
    text = repr(value)
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 3] + "..."
    return f"{type(value).__name__}{size} {text}"
