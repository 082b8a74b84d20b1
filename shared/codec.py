"""Argument and result encoding for the wire.

msgpack is the default and the only codec a peer must speak: a call is ``[args, kwargs]``, a
result is the return value. Tuples arrive as lists. Pickle is opt-in on every side (the client
chooses it, the gateway and the agent must allow it); nothing is ever unpickled from a peer
that did not pass the gateway's authentication.
"""

from __future__ import annotations

import pickle
from typing import Any

import msgpack
from tokengate.shared.errors import BadArguments, ConfigurationError, PayloadTooLarge

MSGPACK = 0
PICKLE = 1
CODEC_NAMES = {"msgpack": MSGPACK, "pickle": PICKLE}

DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024


def codec_id(name: str) -> int:
    try:
        return CODEC_NAMES[name.strip().lower()]
    except KeyError:
        valid = ", ".join(CODEC_NAMES)
        raise ConfigurationError(f"unknown codec {name!r}; valid codecs: {valid}") from None


def _check_size(data: bytes, limit: int, what: str) -> bytes:
    if limit and len(data) > limit:
        raise PayloadTooLarge(f"{what} is {len(data)} bytes encoded; the limit is {limit}")
    return data


def encode_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], codec: int = MSGPACK,
    limit: int = DEFAULT_MAX_PAYLOAD,
) -> bytes:
    """Encode a call's arguments; :class:`BadArguments` if the codec cannot carry them."""
    try:
        if codec == PICKLE:
            data = pickle.dumps((args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        else:
            data = msgpack.packb([args, kwargs], use_bin_type=True)
    except (TypeError, ValueError, OverflowError, pickle.PicklingError, AttributeError) as exc:
        raise BadArguments(
            f"arguments cannot be encoded with {_name(codec)}: {exc}; "
            "pass plain data (None, bool, int, float, str, bytes, list, dict) "
            "or opt in to pickle"
        ) from None
    return _check_size(data, limit, "the call's arguments")


def decode_call(data: bytes, codec: int, *, allow_pickle: bool) -> tuple[tuple, dict]:
    """Decode ``[args, kwargs]``; :class:`BadArguments` if it is not that shape."""
    if codec == PICKLE:
        if not allow_pickle:
            raise BadArguments("pickle payloads are refused here; the operator did not allow them")
        try:
            args, kwargs = pickle.loads(data)
        except Exception as exc:
            raise BadArguments(f"pickle payload cannot be decoded: {exc}") from None
    else:
        try:
            decoded = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise BadArguments(f"msgpack payload cannot be decoded: {exc}") from None
        if not (isinstance(decoded, list) and len(decoded) == 2):
            raise BadArguments("a call payload must be the msgpack array [args, kwargs]")
        args, kwargs = decoded
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise BadArguments("a call payload must hold an args array and a kwargs map")
    if not all(isinstance(key, str) for key in kwargs):
        raise BadArguments("keyword argument names must be strings")
    return tuple(args), kwargs


def encode_result(value: Any, codec: int = MSGPACK, limit: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Encode a return value; :class:`BadArguments` if the codec cannot carry it."""
    try:
        if codec == PICKLE:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            data = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError, pickle.PicklingError, AttributeError) as exc:
        raise BadArguments(f"the task's result cannot be encoded with {_name(codec)}: {exc}") \
            from None
    return _check_size(data, limit, "the task's result")


def decode_result(data: bytes, codec: int, *, allow_pickle: bool) -> Any:
    if codec == PICKLE:
        if not allow_pickle:
            raise BadArguments("pickle results are refused; connect with codec='pickle'")
        return pickle.loads(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _name(codec: int) -> str:
    return "pickle" if codec == PICKLE else "msgpack"
