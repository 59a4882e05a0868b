"""``drgnet app``: run the review app (``streamlit run webapp/main.py``) with headless server options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from db.engine import DATA_DIR_ENV, database_url, sqlite_path

MAIN = Path(__file__).resolve().parent / "main.py"


def streamlit_command(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line for the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def app(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory (default: DRGNET_DATA_DIR, ./data)."),
    address: str = typer.Option("localhost", "--address", help="Interface to listen on (0.0.0.0 for all)."),
    seed_demo: bool = typer.Option(
        False, "--seed-demo", help="First migrate the database, register the demo model, create accounts, add images."
    ),
    demo_images: int = typer.Option(30, "--demo-images", help="Photographs to add with --seed-demo."),
) -> None:
    """Run the clinician review app in the foreground (Ctrl+C stops it)."""
    if data_dir is not None:
        os.environ[DATA_DIR_ENV] = str(data_dir.resolve())
    if seed_demo:
        from feedback.demo_seed import seed_demo as run_seed

        run_seed(Path(os.environ.get(DATA_DIR_ENV) or "data"), n_images=demo_images, log=typer.echo)
    url = database_url()
    if sqlite_path(url) is not None:  # the embedded database is ours to create and migrate
        from db.migrate import upgrade

        upgrade(url)
    typer.echo(f"DRG-Net review app on http://{'localhost' if address in ('0.0.0.0', '') else address}:{port}")
    try:
        code = subprocess.call(streamlit_command(port, address), env=os.environ.copy())
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
