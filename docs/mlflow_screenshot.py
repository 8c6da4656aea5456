"""Make docs/mlflow-compare.png: the trials of a study, val_f1 per epoch, in the MLflow UI.

Needs a browser, which rockopt itself does not: Playwright's Python package and a Chromium
(`pip install playwright`; Debian's `chromium` package, or `playwright install chromium`).
Run it where a search has logged its runs (the default store, ./mlruns):

    rockopt search --study quick --data ../shared/data/rock25
    python docs/mlflow_screenshot.py --study quick --out docs/mlflow-compare.png
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

from mlflow import MlflowClient


def _wait_for(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"error: the MLflow UI did not answer on port {port}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", default="quick")
    p.add_argument("--out", default="docs/mlflow-compare.png")
    p.add_argument("--port", type=int, default=5055)
    p.add_argument("--browser", default="/usr/bin/chromium", help="a Chromium executable ('' for Playwright's own)")
    args = p.parse_args()

    from rockopt.tracking import tracking_uri

    experiment = MlflowClient(tracking_uri()).get_experiment_by_name(args.study)
    if experiment is None:
        raise SystemExit(f"error: no MLflow experiment named '{args.study}': run the search first")
    ui = subprocess.Popen([sys.executable, "-m", "rockopt", "ui", "--port", str(args.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(args.port)
        _shoot(f"http://127.0.0.1:{args.port}", experiment.experiment_id, args.out, args.browser)
    finally:
        ui.terminate()
        ui.wait(30)
    print(f"wrote {args.out}")


def _shoot(base: str, experiment_id: str, out: str, browser: str) -> None:
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=browser or None, args=flags)
        page = b.new_page(viewport={"width": 1600, "height": 900})
        page.goto(f"{base}/#/experiments")
        page.get_by_text("Model training", exact=True).first.click()  # a new browser starts in the GenAI views
        page.goto(f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&compareRunsMode=CHART")
        page.wait_for_timeout(4000)
        close = page.locator("button[aria-label='Close']")  # the assistant panel
        if close.count():
            close.first.click()
        parents = page.get_by_text("search-", exact=False)  # expand every search's parent run: its trials
        for i in reversed(range(parents.count())):  # bottom up: an expanded row moves only those below it
            box = parents.nth(i).bounding_box()
            page.mouse.click(box["x"] - 33, box["y"] + box["height"] / 2)
            page.wait_for_timeout(1500)
        page.get_by_placeholder("Search metric charts").fill("val_f1")
        page.wait_for_timeout(3000)
        page.screenshot(path=out)
        b.close()


if __name__ == "__main__":
    main()
