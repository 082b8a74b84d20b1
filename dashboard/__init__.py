"""The shared dashboard: the whole cluster live in a browser, every control behind a login.

It reads and drives the cluster only through the gateway's contract (``shared.client``):
one poller per dashboard process reads the gateway about once a second while a page is
open and pushes what changed over Socket.IO; the page never polls. ``tokengate dashboard``
runs it, ``tokengate up`` starts one, ``tokengate top`` shows the same view in a terminal.

Modules: :mod:`.config` (settings), :mod:`.auth` (password, login backoff, sessions),
:mod:`.security` (Host/Origin, CSRF, headers), :mod:`.source` (reading the gateway),
:mod:`.model` and :mod:`.memory` (the view model), :mod:`.diff` (patches), :mod:`.poller`,
:mod:`.events` (Socket.IO), :mod:`.controls`, :mod:`.routes` (HTTP), :mod:`.terminal`
(``tokengate top``), :mod:`.app` (composition).
"""

from __future__ import annotations

from tokengate.dashboard.app import Dashboard
from tokengate.dashboard.config import DashboardConfig

__all__ = ["Dashboard", "DashboardConfig"]
