"""Tags on the runs this project launches: who launched a run, and which process runs it."""

from __future__ import annotations

import os
import socket

LAUNCHED_BY = "instructlf/launched_by"
PID_TAG = "instructlf/pid"
HOST_TAG = "instructlf/host"


def cli_run_tags() -> dict[str, str]:
    """Who runs this: a later CLI call uses pid and host to tell a live run from one whose process was killed."""
    return {LAUNCHED_BY: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
