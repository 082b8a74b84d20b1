"""Agent labels and the labels a task requires: one spelling, checked at every edge.

A label is ``key=value`` (``gpu=a100``, ``zone=eu``). Agents carry labels
(``tokengate agent --label gpu=a100``); a task asks for some with its ``requires`` tag
(``{"requires": {"gpu": "a100"}}``) and runs only on an agent that carries every one of them.
Keys and values are short plain words, so they travel as ``key=value`` strings and fit in a
Redis key unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tokengate.shared.errors import InvalidTags

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
VALUE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{0,63}$")
MAX_LABELS = 16
SHAPE = ("keys of 1-63 characters (letters, digits, _ . - /, starting with a letter or "
         "digit), values of 0-63 characters (letters, digits, _ . -)")

Labels = tuple[tuple[str, str], ...]  # sorted by key: the canonical form


def check_label(key: Any, value: Any, where: str = "label") -> tuple[str, str]:
    """One label, checked; raises :class:`InvalidTags` naming the valid shape."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidTags(f"{where} key {key!r} is not valid: {SHAPE}")
    if not isinstance(value, str) or not VALUE_PATTERN.match(value):
        raise InvalidTags(f"{where} {key}={value!r}: the value is not valid: {SHAPE}")
    return key, value


def canonical(pairs: Iterable[tuple[str, str]], where: str = "label") -> Labels:
    """Checked pairs, sorted by key; a key given twice with two values is an error."""
    out: dict[str, str] = {}
    for key, value in pairs:
        key, value = check_label(key, value, where)
        if out.get(key, value) != value:
            raise InvalidTags(f"{where} {key} is given twice: {out[key]!r} and {value!r}")
        out[key] = value
    if len(out) > MAX_LABELS:
        raise InvalidTags(f"at most {MAX_LABELS} {where}s, got {len(out)}")
    return tuple(sorted(out.items()))


def from_mapping(raw: Any, where: str = "requires") -> Labels:
    """A ``{"key": "value"}`` mapping (the ``requires`` tag), checked."""
    if not isinstance(raw, Mapping):
        raise InvalidTags(f"tag {where!r} must be a dict of label key to value, e.g. "
                          f"{{'gpu': 'a100'}} (got {raw!r})")
    return canonical(raw.items(), where)


def parse(texts: Iterable[str], where: str = "label") -> Labels:
    """``key=value`` strings (a command line, an environment variable, the wire), checked."""
    pairs = []
    for text in texts:
        key, sep, value = str(text).partition("=")
        if not sep:
            raise InvalidTags(f"{where} {text!r} must be key=value, e.g. gpu=a100")
        pairs.append((key.strip(), value.strip()))
    return canonical(pairs, where)


def to_texts(labels: Labels | Mapping[str, str]) -> list[str]:
    """The wire form: ``key=value`` strings, sorted."""
    items = labels.items() if isinstance(labels, Mapping) else labels
    return [f"{k}={v}" for k, v in sorted(items)]


def satisfies(offered: Mapping[str, str], required: Labels) -> bool:
    """Whether labels ``offered`` carry every label in ``required``."""
    return all(offered.get(key) == value for key, value in required)
