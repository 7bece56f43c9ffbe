"""Drive an asset page of a running Dagster UI in headless Chromium: screenshot it, or check its markdown is inert.

Drives the system Chromium (Debian package) through Playwright, so no browser is downloaded.

Usage:
  python scripts/ui_screenshot.py PORT OUTPUT_PNG [--open KEY]
      screenshot of the latent_factors page (partition demo) with the markdown of metadata KEY open
      (default `factors`, the factor table; `drift` shows what a refit kept, changed, added and lost)
  python scripts/ui_screenshot.py PORT --check EXPECTED_JSON [--asset KEY] [--partition NAME]
      load the asset page with alert/confirm/prompt hooked and JavaScript dialogs recorded, then compare every
      markdown table of the metadata keys in EXPECTED_JSON ({"key": [[header cells], [row cells], ...]}) with
      the rendered one, cell by cell; print the problems found and exit 1 if there are any
"""

from __future__ import annotations

import argparse
import json
import re
import sys

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Runs before the page's own scripts: any script that runs and calls these leaves a trace instead of a dialog.
_HOOK_DIALOGS = """
window.__instructlf_script_ran = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (message) => { window.__instructlf_script_ran.push(name + ": " + String(message)); };
}
"""
# What a markdown cell must never contain once rendered: active or loading elements, or any link.
_ACTIVE = "script, img, iframe, object, embed, svg, video, audio, source, form, input, a, [onerror], [onload]"
_TABLE_OF_KEY = """
([key, active]) => {
  const keyCell = Array.from(document.querySelectorAll("td")).find((td) => td.innerText.trim() === key);
  if (!keyCell) return null;
  const table = keyCell.closest("tr").querySelector(".dagster-markdown table");
  if (!table) return {rows: [], active: []};
  const rows = Array.from(table.querySelectorAll("tr")).map((tr) =>
    Array.from(tr.querySelectorAll("th, td")).map((cell) =>
      cell.textContent.replace(/\u2060/g, "").replace(/\\s+/g, " ").trim()));
  const found = Array.from(table.querySelectorAll(active)).map((el) => el.outerHTML.slice(0, 200));
  return {rows, active: found};
}
"""


def asset_url(port: str | int, asset: str, partition: str | None = None) -> str:
    url = f"http://127.0.0.1:{port}/assets/{asset}"
    return f"{url}?partition={partition}&view=partitions" if partition else url


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def screenshot(port: str, output: str, key: str = "factors") -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(asset_url(port, "latent_factors", "demo"), wait_until="networkidle")
        page.get_by_text("total_correlation").first.wait_for(timeout=60_000)
        dismiss_welcome_dialog(page)
        key_cell = page.locator("td").filter(has_text=re.compile(rf"^\s*{re.escape(key)}\s*$"))
        markdown = page.locator("tr").filter(has=key_cell).get_by_text("[Show Markdown]")
        if markdown.count():
            markdown.first.click()
            page.wait_for_timeout(1500)
        page.screenshot(path=output, full_page=False)
        browser.close()


def check_markdown_is_inert(
    port: str | int,
    expected: dict[str, list[list[str]]],
    asset: str,
    partition: str | None = None,
    screenshot_to: str | None = None,
) -> list[str]:
    """Problems found on the asset page: scripts that ran, active elements or links, tables not as expected.

    `expected` maps a metadata key to its table as the user must see it: header row, then data rows, each a list
    of cell texts (whitespace collapsed, and without the invisible word joiners that `escape_markdown_cell` puts
    into would-be autolinks). A missing key is a problem too, so an empty page cannot pass.
    """
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.on(
            "dialog", lambda dialog: (problems.append(f"JavaScript dialog opened: {dialog.message}"), dialog.dismiss())
        )
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.add_init_script(_HOOK_DIALOGS)
        page.goto(asset_url(port, asset, partition), wait_until="networkidle")
        for key in expected:
            page.get_by_text(key, exact=True).first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)  # an image's onerror fires after its failed load
        dismiss_welcome_dialog(page, timeout_ms=2_000)
        problems += [f"a script ran: {call}" for call in page.evaluate("window.__instructlf_script_ran")]
        for key, rows in expected.items():
            found = page.evaluate(_TABLE_OF_KEY, [key, _ACTIVE])
            if found is None:
                problems.append(f"{key}: no such metadata entry on the page")
                continue
            problems += [f"{key}: active element in the table: {html}" for html in found["active"]]
            problems += _table_problems(key, rows, found["rows"])
        if screenshot_to:
            page.screenshot(path=screenshot_to, full_page=True)
        browser.close()
    return problems


def _table_problems(key: str, expected: list[list[str]], rendered: list[list[str]]) -> list[str]:
    if len(rendered) != len(expected):
        return [f"{key}: {len(rendered)} rendered rows, expected {len(expected)}: {rendered}"]
    problems = []
    for number, (want, got) in enumerate(zip(expected, rendered, strict=True)):
        if len(got) != len(want):
            problems.append(f"{key}: row {number} has {len(got)} cells, expected {len(want)}: {got}")
        elif got != [" ".join(cell.split()) for cell in want]:
            problems.append(f"{key}: row {number} renders as {got}, expected {want}")
    return problems


def dismiss_welcome_dialog(page, timeout_ms: int = 10_000) -> None:
    """A first visit shows a 'Join the Dagster community' dialog over the page."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.first.wait_for(state="visible", timeout=timeout_ms)
    except Exception:
        return
    skip.first.click()
    skip.first.wait_for(state="hidden", timeout=10_000)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port")
    parser.add_argument("output", nargs="?", help="screenshot path (screenshot mode)")
    parser.add_argument("--check", metavar="EXPECTED_JSON", help="check mode: expected tables per metadata key")
    parser.add_argument("--asset", default="latent_factors")
    parser.add_argument("--partition")
    parser.add_argument("--open", default="factors", help="screenshot mode: the metadata key whose markdown to open")
    args = parser.parse_args(argv)
    if args.check is None:
        if args.output is None:
            parser.error("give OUTPUT_PNG, or --check EXPECTED_JSON")
        screenshot(args.port, args.output, args.open)
        return 0
    with open(args.check, encoding="utf-8") as handle:
        expected = json.load(handle)
    problems = check_markdown_is_inert(args.port, expected, args.asset, args.partition, screenshot_to=args.output)
    for problem in problems:
        print(problem)
    print("markdown inert" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
