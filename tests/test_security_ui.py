"""Hostile corpus or model text in asset metadata, seen in the real Dagster UI through headless Chromium.

A materialization whose markdown metadata (built by `instructlf_assets.metadata`) holds an `<img onerror>`, a
`javascript:` link, an image, pipes and newlines is recorded in a temporary Dagster home; `dagster-webserver`
serves it on 127.0.0.1 and `scripts/ui_screenshot.py --check` loads the asset page with alert/confirm/prompt
hooked. No script may run, no active element or link may appear in the tables, and every table must render with
its rows and columns, each cell showing exactly the hostile text. An unescaped control table in the same page
must be caught, so the check is known to see what it claims to see.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import stop_process_group

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ASSET = "hostile_text"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
PICTURE = "![pixel](https://evil.example/p.png)"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}; install it with `apt-get install -y chromium`"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason='Playwright is not installed; install it with `pip install -e ".[ui]"` (it drives the system Chromium)',
    ),
]

DEFINITIONS = f'''
import dagster as dg


@dg.asset
def {ASSET}() -> None:
    """Stands in for an asset whose metadata holds corpus or model text."""


defs = dg.Definitions(assets=[{ASSET}])
'''


def hostile_metadata() -> tuple[dict[str, object], dict[str, list[list[str]]]]:
    """The metadata recorded, and each table as the user must see it (header row, then rows)."""
    import dagster as dg

    from instructlf_assets.metadata import factors_markdown, markdown_table

    failed = pd.DataFrame(
        {"doc_id": ["d|1", "d2", "d3"], "reason": [IMG, f"unusable reply: {LINK}\n| x | y |", f"{PICTURE} `code`"]}
    )
    factors = pd.DataFrame(
        {
            "factor_id": [0, 1],
            "name": [IMG, "<script>alert(2)</script>"],
            "top_properties": [[LINK, "acting"], ["a|b", "# heading"]],
            "top_weights": [[0.9, 0.5], [0.4, -0.1]],
            "tc_share": [0.6, 0.4],
        }
    )
    control = f"| a | b |\n|---|---|\n| x|y | {IMG} |"
    metadata = {
        "failed_documents": markdown_table(failed),
        "factors": factors_markdown(factors),
        "unescaped_control": dg.MetadataValue.md(control),
    }
    expected = {
        "failed_documents": [
            ["doc_id", "reason"],
            ["d|1", IMG],
            ["d2", f"unusable reply: {LINK} | x | y |"],
            ["d3", f"{PICTURE} `code`"],
        ],
        "factors": [
            ["factor", "name", "top properties (weight)", "TC share"],
            ["0", IMG, f"{LINK} (+0.90), acting (+0.50)", "60.0%"],
            ["1", "<script>alert(2)</script>", "a|b (+0.40), # heading (-0.10)", "40.0%"],
        ],
        "unescaped_control": [["a", "b"], ["x|y", IMG]],
    }
    return metadata, expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(port: int, server: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"dagster-webserver did not answer within {timeout_s:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def ui_with_hostile_metadata(tmp_path):
    """(port, expected tables) of a webserver showing one materialization with hostile metadata."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "hostile_defs.py").write_text(DEFINITIONS)
    metadata, expected = hostile_metadata()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=ASSET, metadata=metadata))
    port, log = free_port(), tmp_path / "webserver.log"
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    webserver = shutil.which("dagster-webserver", path=str(Path(sys.executable).parent)) or "dagster-webserver"
    with log.open("w") as output:
        server = subprocess.Popen(
            [webserver, "-f", "hostile_defs.py", "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server is a child: the whole group is stopped below
        )
    try:
        wait_until_serving(port, server, log)
        yield port, expected
    finally:
        stop_process_group(server, timeout_s=20)


def load_checker():
    spec = importlib.util.spec_from_file_location("ui_screenshot", REPO / "scripts" / "ui_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hostile_metadata_runs_no_script_and_keeps_every_table_shape(ui_with_hostile_metadata, tmp_path):
    port, expected = ui_with_hostile_metadata
    checker = load_checker()
    problems = checker.check_markdown_is_inert(port, expected, ASSET, screenshot_to=str(tmp_path / "page.png"))
    escaped = [p for p in problems if not p.startswith("unescaped_control:")]
    assert escaped == [], "\n".join(escaped)
    assert any(p.startswith("unescaped_control: row 1") for p in problems), (
        "the unescaped control table must be caught (a raw `|` splits its cell), or the check sees nothing: "
        + json.dumps(problems)
    )
