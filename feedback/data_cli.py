"""``drgnet export`` and ``drgnet import-labels``: corrected labels out as datasets, existing datasets' labels in.

Registered through the ``drgnet.commands`` entry points (pyproject.toml); heavy imports happen inside the commands.
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path

import typer

from db.cli_support import URL_HELP, fail
from feedback.cli import DATA_HELP, _database


def _operator() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return None


def export(
    format: str = typer.Option(..., "--format", help="idrid (IDRiD's folder layout), csv or coco (RLE JSON)."),
    out: Path = typer.Option(..., "--out", help="A new or empty folder to write the dataset to."),
    since: str | None = typer.Option(None, "--since", help="Only photographs labelled on or after this date."),
    consensus: bool = typer.Option(
        True,
        "--consensus/--per-annotator",
        help="One reliability-weighted label per photograph, or one per annotator.",
    ),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_HELP),
) -> None:
    """Export the clinicians' current corrected grades and lesion masks as a dataset, with a manifest."""
    from feedback.export import FORMATS, export_dataset

    if format not in FORMATS:
        fail(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    when = None
    if since:
        try:
            when = dt.date.fromisoformat(since)
        except ValueError:
            fail(f"--since {since!r}: write a date as YYYY-MM-DD")
    with _database(url, data_dir) as sessions:
        try:
            with sessions.begin() as session:
                result = export_dataset(
                    session,
                    out,
                    format=format,
                    mode="consensus" if consensus else "per-annotator",
                    since=when,
                    data_dir=data_dir,
                    operator=_operator(),
                )
        except ValueError as exc:
            fail(str(exc))
    typer.echo(f"exported {result.records} labels ({result.mode}) as {result.format} to {result.out}")
    typer.echo(f"{len(result.files)} files; sha256 of each in {result.out / 'manifest.json'}")


def import_labels(
    root: Path = typer.Argument(..., help="A dataset folder in IDRiD, DDR or FGADR layout."),
    layout: str = typer.Option("auto", "--layout", help="idrid-seg, idrid-grading, ddr-grading, ddr-seg, fgadr, auto."),
    split: str | None = typer.Option(None, "--split", help="train / test / valid where the layout has splits."),
    name: str | None = typer.Option(None, "--name", help="Reference name (default: the layout), e.g. idrid-2018."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_HELP),
) -> None:
    """Load an existing dataset's grades and lesion masks as reference annotations (flagged as imported)."""
    from feedback.label_import import import_reference_labels

    with _database(url, data_dir) as sessions:
        try:
            summary = import_reference_labels(
                sessions, root, layout=layout, split=split, name=name, data_dir=data_dir, operator=_operator()
            )
        except ValueError as exc:
            fail(str(exc))
    typer.echo(summary.describe())
    for problem in summary.refused:
        typer.secho(f"  not imported: {problem}", fg=typer.colors.YELLOW, err=True)
