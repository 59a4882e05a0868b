"""What storing into the review worklist costs a screening run (``drgnet bench screen-db``).

The same engine screens the same synthetic photographs plus a few broken files three times: into a results file
only (the baseline), with ``--db`` on SQLite, and with ``--db`` on PostgreSQL (a throw-away schema, when a server
URL is given). Reported per run: photographs per second, the ratio to the baseline of this run, what was stored
(images, predictions, review-queue length, checked against the rows), and the artifact bytes per photograph.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from drgnet.cli._common import config_option, fail, set_option, settings_of
from drgnet.model.checkpoint import WEIGHTS


@dataclass(frozen=True)
class ScreenDbBenchConfig:
    n: int = 200  # synthetic photographs screened (five broken files are added)
    size: int = 512  # their side, pixels
    batch_size: int = 8  # photographs per network call
    workers: int = 2  # loader processes
    seed: int = 0


def _photographs(root: Path, cfg: ScreenDbBenchConfig) -> tuple[Path, int]:
    """``cfg.n`` synthetic photographs and five broken files; returns the folder and the number of broken files."""
    import numpy as np
    from PIL import Image

    from drgnet.data import synthetic

    cohort = root / f"cohort-{cfg.n}-{cfg.size}-{cfg.seed}"
    if not (cohort / "manifest.json").is_file():
        synthetic.generate_cohort(cohort, n=cfg.n, size=cfg.size, seed=cfg.seed, progress=False)
    folder = root / "inputs"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(cohort / synthetic.IMAGE_DIR, folder)
    good = sorted(folder.glob("*.jpg"))[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "not_an_image.jpg").write_bytes(b"this is a text file\n" * 10)
    (folder / "empty.png").write_bytes(b"")
    rng = np.random.default_rng(cfg.seed)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / "noise.png")
    Image.new("RGB", (300, 200), (128, 128, 128)).save(folder / "grey.png")
    return folder, 5


def _stored(url: str) -> dict[str, int]:
    from db import repository
    from db.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            images = repository.count_images(s)
            predictions = repository.count_predictions(s)
            queue = len(repository.review_queue(s, 0, with_prediction=True, limit=100_000))
    finally:
        engine.dispose()
    return {"images": int(images), "predictions": int(predictions), "queue": queue}


def _activate(url: str, checkpoint: Path, data_dir: Path) -> None:
    from db.engine import make_engine, make_sessionmaker
    from feedback.retrain import register_checkpoint

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as s:
            register_checkpoint(s, checkpoint, "bench", data_dir=data_dir, activate=True)
    finally:
        engine.dispose()


def _bytes_under(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@contextmanager
def _database(backend: str | None, data_dir: Path, postgres_url: str | None) -> Iterator[str | None]:
    """The URL a run stores into: none, an SQLite file in its data directory, or a throw-away PostgreSQL schema."""
    if backend == "postgresql" and postgres_url:
        from db.engine import scratch_postgres_schema

        with scratch_postgres_schema(postgres_url, "drgnet_bench") as url:
            yield url
    else:
        yield f"sqlite:///{data_dir / 'drgnet.db'}" if backend == "sqlite" else None


def _one_run(cfg: ScreenDbBenchConfig, label: str, url: str | None, data_dir: Path, ctx: _Inputs, log: Any) -> dict:
    """Screen the photographs once, into ``url`` when given, and measure it."""
    from db import migrate
    from drgnet.screening import screen
    from feedback.screening_sink import DatabaseSink

    sink = None
    if url is not None:
        migrate.upgrade(url)
        _activate(url, ctx.checkpoint, data_dir)  # the active version's predictions are what the worklist shows
        sink = DatabaseSink(url, data_dir, source="bench", checkpoint=ctx.checkpoint)
    log(f"screening {cfg.n} photographs + {ctx.n_broken} broken files: {label}")
    results = data_dir.parent / f"results-{data_dir.name.removeprefix('data-')}.csv"
    results.unlink(missing_ok=True)
    t0 = time.perf_counter()
    summary = screen(
        [str(ctx.folder)],
        results,
        ctx.engine,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        progress=False,
        sink=sink,
    )
    seconds = time.perf_counter() - t0
    if sink is not None:
        sink.close()
    row: dict[str, Any] = {
        "run": label,
        "seconds": round(seconds, 2),
        "photographs_per_s": round((summary.scored + summary.errors) / seconds, 2),
        "scored": summary.scored,
        "errors": summary.errors,
    }
    if url is not None:
        stored = _stored(url)
        if not stored["images"] == stored["predictions"] == stored["queue"] == summary.scored:
            raise RuntimeError(f"{label}: stored {stored}, but {summary.scored} photographs were scored")
        row.update(stored)
        for key, sub in (("artifact_kib_per_photograph", "artifacts"), ("image_kib_per_photograph", "images")):
            row[key] = round(_bytes_under(data_dir / sub) / 1024 / max(summary.scored, 1), 1)
    return row


@dataclass(frozen=True)
class _Inputs:
    checkpoint: Path
    folder: Path
    n_broken: int
    engine: Any


def run(
    cfg: ScreenDbBenchConfig,
    checkpoint: Path,
    out: Path,
    postgres_url: str | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Screen the same photographs into a results file only, SQLite and (with ``postgres_url``) PostgreSQL.

    Returns:
        One row per run, also written to ``out/screen_db.json`` and ``out/screen_db.md``.
    """
    from drgnet.engines import TorchEngine
    from drgnet.screening import screen

    out.mkdir(parents=True, exist_ok=True)
    folder, n_broken = _photographs(out, cfg)
    engine = TorchEngine.from_checkpoint(checkpoint)
    warm = out / "warm-up.csv"
    warm.unlink(missing_ok=True)
    screen([str(p) for p in sorted(folder.glob("*.jpg"))[:8]], warm, engine, workers=0, progress=False)
    ctx = _Inputs(checkpoint, folder, n_broken, engine)

    runs: list[tuple[str, str | None]] = [("results file only", None), ("--db SQLite", "sqlite")]
    if postgres_url:
        runs.append(("--db PostgreSQL", "postgresql"))
    rows: list[dict[str, Any]] = []
    for label, backend in runs:
        data_dir = out / f"data-{backend or 'none'}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir()
        with _database(backend, data_dir, postgres_url) as url:
            row = _one_run(cfg, label, url, data_dir, ctx, log)
        rows.append(row)
        log(json.dumps(row))
    base = rows[0]["photographs_per_s"]
    for row in rows:
        row["speed_vs_results_only"] = round(row["photographs_per_s"] / base, 3) if base else None
    (out / "screen_db.json").write_text(json.dumps({"config": cfg.__dict__, "rows": rows}, indent=2))
    (out / "screen_db.md").write_text(markdown(cfg, rows, engine.model_version))
    return rows


def markdown(cfg: ScreenDbBenchConfig, rows: list[dict[str, Any]], model: str) -> str:
    lines = [
        f"Screening {cfg.n} synthetic photographs ({cfg.size} px) + 5 broken files, model {model}, batch "
        f"{cfg.batch_size}, {cfg.workers} loader processes:",
        "",
        "| run | s | photographs/s | vs results only | scored | errors | stored images / predictions / queue "
        "| maps KiB/photo | image KiB/photo |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        stored = f"{r['images']} / {r['predictions']} / {r['queue']}" if "images" in r else "-"
        lines.append(
            f"| {r['run']} | {r['seconds']} | {r['photographs_per_s']} | {r['speed_vs_results_only']:.2f}x "
            f"| {r['scored']} | {r['errors']} | {stored} | {r.get('artifact_kib_per_photograph', '-')} "
            f"| {r.get('image_kib_per_photograph', '-')} |"
        )
    return "\n".join(lines) + "\n"


def bench_screen_db(
    config: Path | None = config_option("feedback.bench_screening.ScreenDbBenchConfig"),
    settings: list[str] = set_option(),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint that screens (default: the shipped base model, models/drgnet-base)."
    ),
    postgres_url: str | None = typer.Option(
        None, "--postgres-url", help="A PostgreSQL server to measure too (a throw-away schema is used)."
    ),
    out: Path = typer.Option(Path("runs/bench/screen_db"), "--out", help="Folder for screen_db.md and .json."),
) -> None:
    """What `drgnet screen --db` costs: the same screening with no database, SQLite and PostgreSQL.

    E.g. --set n=50 --set size=256 --set batch_size=4 --set workers=0.
    """
    from drgnet.base_model import base_checkpoint

    cfg = settings_of(ScreenDbBenchConfig(), config, settings)
    if checkpoint is None:
        try:
            checkpoint = base_checkpoint()
        except ValueError as exc:
            fail(str(exc))
    if not (checkpoint / WEIGHTS).is_file():
        fail(f"{checkpoint}: no checkpoint there (`drgnet demo --retrain` trains the small demo model)")
    rows = run(cfg, checkpoint, out, postgres_url, log=typer.echo)
    typer.echo(markdown(cfg, rows, ""))
    typer.echo(f"wrote {out / 'screen_db.md'}")
