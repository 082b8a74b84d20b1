"""Logins: the password check, the failed-login backoff and the server-side sessions.

Nothing here touches Flask: the clock is passed in (``now``), so each rule is tested alone;
the dashboard reads its :data:`Clock` once per request and hands the time in.

- :func:`password_matches` compares in constant time (digests of equal length).
- :class:`LoginThrottle` owns, per client address, the failures since its last success;
  ``_failures_lock`` guards them. After the n-th failure the address must wait
  ``base * 2**(n-1)`` seconds (capped) before a password from it is even looked at.
- :class:`SessionStore` owns the sessions (``_sessions_lock``): a random id in an HttpOnly
  cookie names a :class:`Session` held only here, with its own CSRF token; it expires after
  ``idle`` seconds without use and ``max_age`` seconds after login.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TRACKED_ADDRESSES = 10_000
MAX_SESSIONS = 1_000
MAX_USER = 32
Clock = Callable[[], float]  # seconds: time.time, or a test's own clock


def password_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison; an empty expected password never matches."""
    left = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
    right = hashlib.sha256(expected.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(left, right) and bool(expected)


def clean_user(text: str) -> str:
    """A self-declared operator name for the audit log: short, letters, digits, ``._-@``."""
    return re.sub(r"[^\w.@-]", "", text or "")[:MAX_USER]


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Exponential backoff of failed logins, per client address."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self._failures_lock = threading.Lock()  # guards _failures
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def wait_for(self, address: str, now: float) -> float:
        """Seconds ``address`` must still wait before its next attempt (0: it may try)."""
        with self._failures_lock:
            entry = self._failures.get(address)
            if entry is None:
                return 0.0
            delay = min(self.cap, self.base * 2 ** (entry.count - 1))
            remaining = entry.last + delay - now
            if now - entry.last > self.cap * 4:  # long quiet: forgiven
                del self._failures[address]
                return 0.0
        return max(0.0, remaining)

    def failed(self, address: str, now: float) -> float:
        """Record a failure; returns the wait it imposes."""
        with self._failures_lock:
            entry = self._failures.pop(address, None) or _Failures(0, now)
            entry.count += 1
            entry.last = now
            self._failures[address] = entry
            while len(self._failures) > MAX_TRACKED_ADDRESSES:
                self._failures.popitem(last=False)
            return min(self.cap, self.base * 2 ** (entry.count - 1))

    def succeeded(self, address: str) -> None:
        with self._failures_lock:
            self._failures.pop(address, None)


@dataclass(slots=True)
class Session:
    """One login: who (as declared), its CSRF token, and when it was made and last used."""

    sid: str
    user: str
    created: float
    last_used: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def short(self) -> str:
        """A short id safe to show (the audit log's actor): not the cookie's secret."""
        return hashlib.sha256(self.sid.encode()).hexdigest()[:8]

    @property
    def actor(self) -> str:
        return f"dashboard:{self.user}@{self.short}" if self.user else f"dashboard:{self.short}"


class SessionStore:
    """Server-side sessions; the cookie carries only a random id."""

    def __init__(self, idle: float, max_age: float) -> None:
        self.idle = idle
        self.max_age = max_age
        self._sessions_lock = threading.Lock()  # guards _sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, now: float) -> Session:
        session = Session(sid=secrets.token_urlsafe(32), user=clean_user(user), created=now,
                          last_used=now)
        with self._sessions_lock:
            self._sessions[session.sid] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def get(self, sid: str | None, now: float, *, touch: bool = True) -> Session | None:
        """The live session named ``sid`` (used now, when ``touch``), else None."""
        if not sid:
            return None
        with self._sessions_lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[sid]
                return None
            if touch:
                session.last_used = now
            return session

    def touch_all(self, sids: set[str], now: float) -> None:
        """Sessions with a page open stay in use (the absolute limit still applies)."""
        with self._sessions_lock:
            for sid in sids:
                session = self._sessions.get(sid)
                if session is not None and not self._expired(session, now):
                    session.last_used = now

    def remove(self, sid: str) -> None:
        with self._sessions_lock:
            self._sessions.pop(sid, None)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_used > self.idle or now - session.created > self.max_age

    def __len__(self) -> int:
        return len(self._sessions)


def csrf_matches(presented: object, session: Session | None) -> bool:
    if session is None or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(presented.encode(), session.csrf.encode())
