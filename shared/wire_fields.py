"""Typed reads of one msgpack map, for the schemas of what travels as msgpack (pure).

:class:`Fields` wraps a decoded map and reads one key at a time as the type the schema
states. The rules, the same for every schema built on it:

- a missing key, or one holding nil, reads as the field's default (an older peer that does
  not send a field, or sends nothing there, is still read);
- a float field takes an int (msgpack keeps ``1`` and ``1.0`` apart), nothing else widens
  (true/false is no number here);
- any other mismatch raises :class:`~tokengate.shared.errors.SnapshotError` naming the
  field's path (``cores[1].depths[0]``) and what it held;
- keys the schema does not name are left for :meth:`Fields.rest` (kept, never refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from tokengate.shared.errors import SnapshotError

T = TypeVar("T")
Extra = Mapping[str, Any]  # the keys a schema class does not name, kept as they came


_NUMBER = (int, float)
_LIST = (list, tuple)


def _kind(value: object) -> str:
    return type(value).__name__


class Fields:
    """One wire map under a path; each read checks the type of one key."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: object, path: str = "snapshot") -> None:
        if data is None:
            data = {}
        elif type(data) is not dict and not isinstance(data, Mapping):  # dict: no ABC check
            raise SnapshotError(f"{path}: expected a map, got {_kind(data)}")
        self._data: Mapping[Any, Any] = data
        self._path = path

    def _at(self, key: str) -> str:
        return f"{self._path}.{key}"

    def _wrong(self, key: str, expected: str, value: object) -> SnapshotError:
        return SnapshotError(f"{self._at(key)}: expected {expected}, got {_kind(value)} "
                             f"{value!r:.60}")

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def is_list(self, key: str) -> bool:
        return isinstance(self._data.get(key), _LIST)

    def integer(self, key: str, default: int = 0) -> int:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(key, "an integer", value)
        return value

    def opt_integer(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def number(self, key: str, default: float = 0.0) -> float:
        value = self._data.get(key)
        if value is None:
            return default
        if type(value) is float:  # the usual case, checked first: snapshots hold many
            return value
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            raise self._wrong(key, "a number", value)
        return float(value)

    def opt_number(self, key: str) -> float | None:
        return self.number(key) if self.has(key) else None

    def text(self, key: str, default: str = "") -> str:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def opt_flag(self, key: str) -> bool | None:
        return self.flag(key) if self.has(key) else None

    def _items(self, key: str) -> Iterator[tuple[str, object]]:
        """The list at ``key`` as (path, item) pairs; a missing list is empty."""
        value = self._data.get(key)
        if value is None:
            return
        if not isinstance(value, _LIST):
            raise self._wrong(key, "a list", value)
        for index, item in enumerate(value):
            yield f"{self._at(key)}[{index}]", item

    def integers(self, key: str) -> tuple[int, ...]:
        out = []
        for path, item in self._items(key):
            if not isinstance(item, int) or isinstance(item, bool):
                raise SnapshotError(f"{path}: expected an integer, got {_kind(item)}")
            out.append(item)
        return tuple(out)

    def texts(self, key: str) -> tuple[str, ...]:
        out = []
        for path, item in self._items(key):
            if not isinstance(item, str):
                raise SnapshotError(f"{path}: expected a string, got {_kind(item)}")
            out.append(item)
        return tuple(out)

    def records(self, key: str) -> Iterator[Fields]:
        """Each map of the list at ``key``."""
        for path, item in self._items(key):
            yield Fields(item, path)

    def sub(self, key: str) -> Fields:
        """The map at ``key`` (an empty one if missing)."""
        return Fields(self._data.get(key), self._at(key))

    def named(self, key: str) -> Iterator[tuple[str, Fields]]:
        """The map at ``key`` as (name, its map) pairs: a table keyed by name."""
        table = self.sub(key)
        for name in table._data:
            if not isinstance(name, str):
                raise SnapshotError(f"{self._at(key)}: expected string keys, got {_kind(name)}")
            yield name, table.sub(name)

    def integer_table(self, key: str) -> dict[str, int]:
        """The map at ``key`` as name -> integer."""
        table = self.sub(key)
        return {name: table.integer(name) for name in table.keys()}

    def integers_table(self, key: str) -> dict[str, tuple[int, ...]]:
        """The map at ``key`` as name -> list of integers."""
        table = self.sub(key)
        return {name: table.integers(name) for name in table.keys()}

    def keys(self) -> list[str]:
        names = list(self._data)
        for name in names:
            if not isinstance(name, str):
                raise SnapshotError(f"{self._path}: expected string keys, got {_kind(name)}")
        return names

    def open_map(self, key: str) -> dict[str, Any]:
        """The map at ``key`` as it came (an open-ended part: only its being a map is checked)."""
        return dict(self.sub(key)._data)

    def rest(self, known: frozenset[str]) -> dict[str, Any]:
        """The keys this schema does not name, as they came (kept for the next reader)."""
        return {key: value for key, value in self._data.items() if key not in known}


def optional(fields: Fields, key: str, parse: Callable[[Fields], T]) -> T | None:
    """``parse(fields.sub(key))`` if ``key`` holds something, else None."""
    return parse(fields.sub(key)) if fields.has(key) else None


def schema_keys(cls: Any) -> frozenset[str]:
    """The wire keys a schema dataclass names: its fields but those keeping the rest."""
    return frozenset(f.name for f in fields(cls) if f.name not in ("extra", "panels"))
