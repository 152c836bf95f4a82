"""Load Switchyard's web pages in headless Chromium and check what renders.

Usage: SWITCHYARD_WEB=http://127.0.0.1:8080 SWITCHYARD_ARTIFACTS=target/browser \
       python3 check_pages.py

Drives Debian's `chromium` (set CHROMIUM to another binary): `--dump-dom`
returns the document as the browser built it, and `--screenshot` saves the
model page and the rankings at a laptop (1280 px) and a phone (390 px) width
as artifacts. Exits non-zero with a message on the first missing section or
empty chart.
"""

import os
import re
import shutil
import subprocess
import sys

BASE = os.environ["SWITCHYARD_WEB"].rstrip("/")
ARTIFACTS = os.environ.get("SWITCHYARD_ARTIFACTS", "target/browser-artifacts")
MODEL = os.environ.get("SWITCHYARD_MODEL", "openai/gpt-4")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-dev-shm-usage"]


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def dom(path):
    result = subprocess.run(
        [CHROMIUM, *FLAGS, "--dump-dom", f"{BASE}{path}"],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 or "<html" not in result.stdout:
        fail(f"chromium could not load {path}: {result.stderr[-500:]}")
    return result.stdout


def screenshot(path, name, width, height):
    out = os.path.abspath(os.path.join(ARTIFACTS, f"{name}-{width}.png"))
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--window-size={width},{height}", f"--screenshot={out}", f"{BASE}{path}"],
        capture_output=True, timeout=60, check=True,
    )
    if not os.path.exists(out) or os.path.getsize(out) < 10_000:
        fail(f"screenshot {out} is missing or blank")
    print(f"screenshot: {out}")


def section(html, section_id):
    """The HTML of <section id=...> up to the next section."""
    match = re.search(rf'<section[^>]*id="{section_id}"[^>]*>(.*?)</section>', html, re.S)
    if not match:
        fail(f"section #{section_id} is missing")
    return match.group(1)


def chart_points(fragment):
    return [int(n) for n in re.findall(r'<svg[^>]*data-points="(\d+)"', fragment)]


def main():
    if not CHROMIUM:
        fail("Chromium is not installed (Debian: apt-get install chromium)")
    os.makedirs(ARTIFACTS, exist_ok=True)

    page = dom(f"/{MODEL}")
    if MODEL not in page:
        fail("the model page does not show the model id")
    for section_id in ["providers", "performance", "effective-pricing", "apps", "activity", "uptime", "sample-code"]:
        body = section(page, section_id)
        if section_id == "sample-code":
            if "chat/completions" not in body or BASE not in body:
                fail("sample code does not use this server's base URL")
            continue
        if section_id in ("providers", "apps"):
            if "<table" not in body:
                fail(f"#{section_id} has no table")
            continue
        points = chart_points(body)
        if not points or min(points) == 0:
            fail(f"#{section_id} charts have no data: {points}")
        print(f"#{section_id}: charts with {points} data values")
    if 'data-empty="true"' in section(page, "performance"):
        fail("the performance section shows an empty state despite traffic")

    rankings = dom("/rankings?period=week")
    points = chart_points(rankings)
    if not points or min(points) == 0:
        fail(f"the rankings chart has no data: {points}")
    if MODEL not in rankings:
        fail("the rankings do not list the model")

    models = dom("/models?q=gpt")
    if MODEL not in models:
        fail("the models index does not find the model")

    for path, name in [(f"/{MODEL}", "model"), ("/rankings?period=week", "rankings")]:
        screenshot(path, name, 1280, 2400)
        screenshot(path, name, 390, 3200)
    print("browser pages: ok")


if __name__ == "__main__":
    main()
