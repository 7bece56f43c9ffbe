"""Screenshot the latent_factors asset page of a running `dagster dev`, with its factor table open.

Drives the system Chromium (Debian package) through Playwright, so no browser is downloaded.
Usage: python scripts/ui_screenshot.py PORT OUTPUT_PNG
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(port: str, output: str) -> None:
    url = f"http://127.0.0.1:{port}/assets/latent_factors?partition=demo&view=partitions"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(url, wait_until="networkidle")
        page.get_by_text("total_correlation").first.wait_for(timeout=60_000)
        _dismiss_welcome_dialog(page)
        markdown = page.get_by_text("[Show Markdown]")
        if markdown.count():
            markdown.first.click()
            page.wait_for_timeout(1500)
        page.screenshot(path=output, full_page=False)
        browser.close()


def _dismiss_welcome_dialog(page) -> None:
    """A first visit shows a 'Join the Dagster community' dialog over the page."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.first.wait_for(state="visible", timeout=10_000)
    except Exception:
        return
    skip.first.click()
    skip.first.wait_for(state="hidden", timeout=10_000)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
