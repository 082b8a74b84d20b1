"""Make the README's screenshot: ``tokengate up --demo`` under load, seen in chromium.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--seconds 45]
                                           [--theme light|dark]

Starts a whole cluster with ``tokengate up --demo`` (in a temporary state directory), adds a
load of its own (no-op calls as fast as they go, and a function that fails now and then so
the Guard House has something to say), logs in with Debian's chromium driven by Playwright
(never a browser Playwright downloads), drains one node from the page halfway, waits for the
charts to fill and saves the page.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def start_up(state: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "tokengate.cli", "up", "--demo", "--port",
                             "0", "--dashboard-port", "0", "--state-dir", str(state)],
                            cwd=str(state), stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    while not lines or "Ctrl-C" not in lines[-1]:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("tokengate up ended early:\n" + "".join(lines))
        lines.append(line)
    text = "".join(lines)
    found = re.search(r"dashboard: (http://\S+/)\s+\(password: (\S+),", text)
    gateway = re.search(r"gateway (\S+),", text)
    return proc, {"url": found.group(1), "password": found.group(2),
                  "gateway": gateway.group(1), "token": (state / "token").read_text().strip()}


def extra_load(info: dict[str, str], stop: threading.Event) -> None:
    from tokengate.shared.client import ClusterClient
    from tokengate.shared.client_config import ClientConfig

    client = ClusterClient(ClientConfig(address=info["gateway"], token=info["token"])).connect()
    i = 0
    while not stop.is_set():
        batch = [client.submit_by_name("tokengate.workloads:trivial_operation", (n,))
                 for n in range(400)]
        if i % 5 == 0:  # a call that fails: the Guard House and the feed show it
            batch.append(client.submit_by_name("tokengate.workloads:prime_operation", ("x",)))
        for token in batch:
            token.wait(30)
        i += 1
    client.close()


def shoot(info: dict[str, str], out: Path, seconds: float, theme: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100},
                                color_scheme="dark" if theme == "dark" else "light")
        page.goto(info["url"])
        page.fill("#user", "readme")
        page.fill("#password", info["password"])
        page.click("#login-submit")
        page.wait_for_selector("#live.on", timeout=30_000)
        time.sleep(seconds / 2)
        drain = "article.node:last-of-type button.drain-node"  # one node, from the page
        page.click(drain)
        page.fill("#confirm-reason", "kernel update")
        page.click("#confirm-ok")
        time.sleep(seconds / 2)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--seconds", type=float, default=45.0, help="load before the shot")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tokengate-shot-") as state:
        proc, info = start_up(Path(state))
        stop = threading.Event()
        load = threading.Thread(target=extra_load, args=(info, stop), daemon=True)
        try:
            load.start()
            shoot(info, Path(args.out), args.seconds, args.theme)
        finally:
            stop.set()
            load.join(30)
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
