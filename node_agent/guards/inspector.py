"""Code inspector: a static complexity score per function, computed once and cached.

The score is read from the function's AST (its source, via :mod:`inspect`): branches, loops,
nesting depth, calls, comprehensions and size each add to it. It is a coarse, stable measure
of how much work one call of the function may do, and it picks the function's
:class:`ComplexityLevel`, which chooses its retry policy and scales the spike detector's
per-call cost prediction.

The analysis is pure (:func:`analyze_source`); :func:`inspect_function` adds the cache, keyed by
the function's code object, so a function is parsed once however often it is called.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import CodeType
from typing import Any

logger = logging.getLogger(__name__)


class ComplexityLevel(StrEnum):
    """Coarse class of a function's complexity score; retry policies are chosen by it."""

    TRIVIAL = "trivial"
    SIMPLE = "simple"
    MODERATE = "moderate"
    COMPLEX = "complex"
    EXTREME = "extreme"


# Upper bounds (exclusive) of the score for each level; above the last one is EXTREME.
LEVEL_BOUNDS: tuple[tuple[float, ComplexityLevel], ...] = (
    (10.0, ComplexityLevel.TRIVIAL),
    (25.0, ComplexityLevel.SIMPLE),
    (50.0, ComplexityLevel.MODERATE),
    (100.0, ComplexityLevel.COMPLEX),
)

# Weight of each construct in the score.
W_BRANCH = 2.0
W_LOOP = 4.0
W_COMPREHENSION = 3.0
W_CALL = 1.0
W_TRY = 1.5
W_DEPTH = 3.0
W_LINE = 0.5
W_RECURSION = 10.0

_BRANCHES = (ast.If, ast.IfExp, ast.BoolOp, ast.Match, ast.Assert)
_LOOPS = (ast.For, ast.While, ast.AsyncFor)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_NESTING = (*_LOOPS, ast.If, ast.With, ast.Try, *_COMPREHENSIONS)


@dataclass(frozen=True, slots=True)
class CodeMetrics:
    """What the inspector found in one function, and the score it gives it."""

    name: str
    score: float
    level: ComplexityLevel
    lines: int = 0
    branches: int = 0
    loops: int = 0
    comprehensions: int = 0
    calls: int = 0
    max_depth: int = 0
    recursive: bool = False
    source_available: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "score": self.score, "level": self.level.value,
            "lines": self.lines, "branches": self.branches, "loops": self.loops,
            "comprehensions": self.comprehensions, "calls": self.calls,
            "max_depth": self.max_depth, "recursive": self.recursive,
            "source_available": self.source_available,
        }


def level_for(score: float) -> ComplexityLevel:
    """The complexity level of a score (see :data:`LEVEL_BOUNDS`)."""
    for bound, level in LEVEL_BOUNDS:
        if score < bound:
            return level
    return ComplexityLevel.EXTREME


def _max_depth(node: ast.AST, depth: int = 0) -> int:
    best = depth
    for child in ast.iter_child_nodes(node):
        child_depth = depth + 1 if isinstance(child, _NESTING) else depth
        best = max(best, _max_depth(child, child_depth))
    return best


def _is_self_call(node: ast.Call, name: str) -> bool:
    func = node.func
    return (isinstance(func, ast.Name) and func.id == name) or (
        isinstance(func, ast.Attribute) and func.attr == name
    )


def _find_function(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return node
    return tree


def analyze_source(source: str, name: str) -> CodeMetrics:
    """Score the first function defined in ``source`` (pure; no cache, no imports)."""
    tree = ast.parse(textwrap.dedent(source))
    func = _find_function(tree)
    short = name.rpartition(".")[2].rpartition(":")[2]
    counts = {"branches": 0, "loops": 0, "comprehensions": 0, "calls": 0, "tries": 0}
    recursive = False
    for node in ast.walk(func):
        if isinstance(node, _BRANCHES):
            counts["branches"] += 1
        elif isinstance(node, _LOOPS):
            counts["loops"] += 1
        elif isinstance(node, _COMPREHENSIONS):
            counts["comprehensions"] += 1
        elif isinstance(node, ast.Try):
            counts["tries"] += 1
        elif isinstance(node, ast.Call):
            counts["calls"] += 1
            recursive = recursive or _is_self_call(node, short)
    lines = len([line for line in source.splitlines() if line.strip()])
    depth = _max_depth(func)
    score = (
        1.0 + W_BRANCH * counts["branches"] + W_LOOP * counts["loops"]
        + W_COMPREHENSION * counts["comprehensions"] + W_CALL * counts["calls"]
        + W_TRY * counts["tries"] + W_DEPTH * depth + W_LINE * lines
        + (W_RECURSION if recursive else 0.0)
    )
    score = round(score, 2)
    return CodeMetrics(
        name=name, score=score, level=level_for(score), lines=lines,
        branches=counts["branches"], loops=counts["loops"],
        comprehensions=counts["comprehensions"], calls=counts["calls"],
        max_depth=depth, recursive=recursive,
    )


def _fallback(name: str, code: CodeType | None) -> CodeMetrics:
    # No source (builtin, C extension, REPL): size of the bytecode is the only clue.
    size = len(code.co_code) if code is not None else 0
    score = round(1.0 + size / 20.0, 2)
    return CodeMetrics(name=name, score=score, level=level_for(score), source_available=False)


def _display_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}:{getattr(func, '__qualname__', repr(func))}"


_cache_lock = threading.Lock()  # guards _cache
_cache: dict[CodeType | int, CodeMetrics] = {}


def inspect_function(func: Callable[..., Any]) -> CodeMetrics:
    """The function's metrics, parsed on first use and cached by its code object."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    key: CodeType | int = code if code is not None else id(func)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    name = _display_name(func)
    try:
        metrics = analyze_source(inspect.getsource(func), name)
    except (OSError, TypeError, SyntaxError, IndentationError):
        logger.debug("no source for %s; scoring its bytecode size", name)
        metrics = _fallback(name, code)
    with _cache_lock:
        return _cache.setdefault(key, metrics)


def cache_size() -> int:
    """How many functions have been inspected (tests and the status snapshot read it)."""
    return len(_cache)
