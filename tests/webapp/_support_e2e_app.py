"""Start and stop the app for the browser tests: a free port (tried again if another process takes it first)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT_S = 120
ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_app(data: Path, log_path: Path, extra_env: dict[str, str] | None = None):
    """``(process, log file, url)`` of the app serving ``data``; fails the test with the log when it cannot start.

    The port is free when chosen but is only bound seconds later: a parallel job may take it meanwhile, so a start
    that dies with the port in use is tried again on another port.
    """
    from webapp.cli import streamlit_command

    env = {**os.environ, "DRGNET_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("DRGNET_DATABASE_URL", None)
    for attempt in range(ATTEMPTS):
        port = free_port()
        log = open(log_path, "w")  # noqa: SIM115 - closed by stop_app or below
        proc = subprocess.Popen(
            streamlit_command(port, "127.0.0.1"), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                log.close()
                text = log_path.read_text()
                if "already in use" in text and attempt + 1 < ATTEMPTS:
                    break
                pytest.fail("the app did not start:\n" + text[-3000:])
            time.sleep(0.5)
        else:
            return proc, log, url
    raise AssertionError("unreachable")


def stop_app(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
