"""Regenerate docs/hparams.png: the HParams tab of a real search, drawn by Chromium.

Runs a ``boston --space mlp`` search (the defaults: Optuna TPE, 5-fold cross-validation,
20 trials) into a temporary results root, serves it with ``python -m search tensorboard``
and photographs the dashboard in headless Chromium (Debian's ``chromium`` driven by
Playwright's client: ``apt-get install chromium``, ``pip install playwright``)::

    python tools/hparams_screenshot.py                  # writes docs/hparams.png
    python tools/hparams_screenshot.py --out results    # an existing results root instead
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ["boston", "--space", "mlp", "--trials", "20", "--top-k", "1", "--ensemble", "1"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(out: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "search", "tensorboard", "boston", "--out", str(out)]
    server = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"TensorBoard exited with code {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    sys.exit("TensorBoard did not answer within 240 s")


def photograph(url: str, image: Path, rows: int) -> None:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(url)
        cells = page.locator("tf-hparams-table-view vaadin-grid-cell-content")
        deadline = time.monotonic() + 120
        while cells.filter(has_text="complete").count() < rows and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        page.wait_for_timeout(1000)  # the last rows' layout
        page.screenshot(path=str(image))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="an existing results root (default: run one)")
    parser.add_argument("--image", type=Path, default=ROOT / "docs" / "hparams.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or Path(temporary) / "results"
        if args.out is None:
            search = [sys.executable, "-m", "search", *RUN, "--out", str(out)]
            subprocess.run(search, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        server = serve(out, port)
        try:
            photograph(f"http://127.0.0.1:{port}/#hparams", args.image, rows=5)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    print(f"wrote {args.image}")


if __name__ == "__main__":
    main()
