"""Opening the UI starts no work: `instructlf ui` on a fresh instance, with its daemon running, launches no run."""

import os
import socket
import subprocess
import sys
import time

import dagster as dg

from tests.conftest import REPO, TEST_CATALOGUE, stop_process_group

PARTITIONS_WAIT_S = 150
AFTER_TICK_S = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_opening_the_ui_adds_partitions_but_launches_no_run(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTLF_AUTOMATION", "DAGSTER_HOME")}
    env.update(DAGSTER_HOME=str(home), INSTRUCTLF_CATALOGUE=str(TEST_CATALOGUE))
    ui = subprocess.Popen(
        [sys.executable, "-m", "instructlf_assets.cli", "ui", "--port", str(free_port())],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        partitions = wait_for_partitions(home, started)
        assert sorted(partitions) == ["demo", "tiny"], "the daemon's catalogue sensor should have ticked"
        time.sleep(AFTER_TICK_S)
        assert ui.poll() is None, "dagster dev exited early"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
        assert runs == [], f"{len(runs)} run(s) started by themselves: {[r.job_name for r in runs]}"
    finally:
        stop_process_group(ui)


def wait_for_partitions(home, started: float) -> list[str]:
    """The dataset partitions the catalogue sensor added: proof the daemon evaluated the sensors."""
    while time.monotonic() - started < PARTITIONS_WAIT_S:
        if (home / "dagster.yaml").exists():
            with dg.DagsterInstance.from_config(str(home)) as instance:
                found = list(instance.get_dynamic_partitions("datasets"))
            if found:
                return found
        time.sleep(3)
    return []
