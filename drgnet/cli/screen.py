"""``drgnet screen``: grade many photographs, on this machine or on a Ray cluster, optionally into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from drgnet.cli._common import LESION_FOV_HELP, fail


def _open_sink(
    engine: str,
    checkpoint: Path | None,
    database_url: str | None,
    data_dir: Path | None,
    source: str,
    threshold: float,
) -> tuple[Any, Path | None]:
    """The database sink of ``--db`` and the checkpoint to screen with (the active version unless one is given)."""
    from drgnet.screening import load_sink

    sink = None
    try:
        sink = load_sink("db", url=database_url, data_dir=data_dir, source=source or None, threshold=threshold)
        if engine == "torch" and checkpoint is None:
            checkpoint = sink.active_checkpoint()
            typer.echo(f"screening with the active model version: {checkpoint}")
        elif checkpoint is not None:
            sink.use_checkpoint(checkpoint)
    except ValueError as exc:
        if sink is not None:
            sink.close()
        fail(str(exc))
    return sink, checkpoint


def _check_engine(engine: str, checkpoint: Path | None, onnx: Path | None) -> Path | None:
    """The checkpoint to screen with: the one given, else (torch engine) the shipped base model."""
    if engine == "torch" and checkpoint is None:
        from drgnet.base_model import base_checkpoint

        try:
            checkpoint = base_checkpoint()
        except ValueError as exc:
            fail(str(exc))
        typer.echo(f"screening with the base model: {checkpoint}")
    if engine == "onnx" and onnx is None:
        fail("--onnx MODEL.onnx is required with --engine onnx (write one with `drgnet export-onnx`)")
    return checkpoint


def _options(threshold: float, masks: Path | None, max_file_mb: float) -> Any:
    from drgnet.inference import draw_max_pixels
    from drgnet.screening import ScreenOptions

    try:
        limit = draw_max_pixels()
    except ValueError as exc:
        fail(str(exc))
    return ScreenOptions(
        threshold=threshold,
        masks_dir=str(masks) if masks is not None else None,
        max_file_bytes=int(max_file_mb * 2**20),
        draw_max_pixels=limit,
    )


def screen(
    inputs: list[str] = typer.Argument(
        ..., help="Folders (searched recursively), glob patterns, image files, or CSV lists of paths."
    ),
    out: Path = typer.Option(..., "--out", help="results.csv or results.jsonl; the same file again resumes."),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Checkpoint folder (torch engine; default: with --db the active version, else models/drgnet-base).",
    ),
    engine: str = typer.Option("torch", "--engine", help="torch or onnx."),
    onnx: Path | None = typer.Option(None, "--onnx", help="ONNX model from `drgnet export-onnx` (onnx engine)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Photographs per forward pass."),
    workers: int = typer.Option(
        2, "--workers", min=0, help="Processes that read and preprocess (0: none; with --ray the actors do it)."
    ),
    masks: Path | None = typer.Option(None, "--masks", help="Write overlay and per-lesion mask PNGs here."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0, help="Lesion probability threshold."),
    ray: str | None = typer.Option(
        None, "--ray", help="Run on Ray Data: a cluster address, 'auto' (this machine's cluster) or 'local'."
    ),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Ray: model actors."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="torch memory format."),
    lesion_fov_px: int | None = typer.Option(None, "--lesion-fov-px", min=0, help=LESION_FOV_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    db: bool = typer.Option(
        False, "--db", help="Also store photographs and predictions in the database, into the review worklist."
    ),
    database_url: str | None = typer.Option(
        None,
        "--url",
        "--database-url",
        help="--db: database URL (default $DRGNET_DATABASE_URL, else SQLite in the data dir).",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="--db: where photographs and maps go (default $DRGNET_DATA_DIR, else ./data).",
    ),
    source: str = typer.Option("screening", "--source", help="With --db: the images' source (clinic, camera, batch)."),
    max_file_mb: float = typer.Option(
        200.0, "--max-file-mb", min=0.001, help="Larger files are reported as errors and never read."
    ),
) -> None:
    """Screen many photographs: grade, referable flag, lesions, uncertainty and gradability, one row each."""
    from drgnet.screening import EngineSpec, SinkError, screen_ray
    from drgnet.screening import screen as run_screen

    if engine not in ("torch", "onnx"):
        fail(f"unknown engine {engine!r}; choose torch or onnx")
    if not db and (database_url is not None or data_dir is not None):
        fail("--url and --data-dir only apply with --db")
    sink = None
    if db:
        sink, checkpoint = _open_sink(engine, checkpoint, database_url, data_dir, source, threshold)
    checkpoint = _check_engine(engine, checkpoint, onnx)
    spec = EngineSpec(
        kind=engine,
        checkpoint=str(checkpoint) if checkpoint else None,
        onnx=str(onnx) if onnx else None,
        channels_last=channels_last,
        lesion_fov_px=lesion_fov_px,
    )
    options = _options(threshold, masks, max_file_mb)
    run = dict(batch_size=batch_size, progress=progress, sink=sink)
    try:
        if ray is not None:
            summary = screen_ray(inputs, out, spec, options, address=ray, concurrency=concurrency, **run)
        else:
            summary = run_screen(inputs, out, spec.build(), options, workers=workers, **run)
    except ValueError as exc:
        fail(str(exc))
    except SinkError as exc:
        fail(f"{exc}; the rows in {out} are stored: run the same command again to resume")
    finally:
        if sink is not None:
            sink.close()
    typer.echo(summary.describe())
    if sink is not None:
        typer.echo(sink.describe())
