"""``drgnet bench ...``: each benchmark reports ratios against a baseline measured in the same run.

The quality and transfer benchmarks train, so they take ``--config FILE`` / ``--set key.path=value`` like
``drgnet train``; the others measure speed or realism and keep plain options.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from drgnet.cli._common import CONFIG_HELP, SET_HELP, fail, settings_of


def bench_synth(
    n: int = typer.Option(500, "--n", min=1),
    size: int = typer.Option(512, "--size", min=64),
    workers: int = typer.Option(0, "--workers", min=0, help="0: one per core."),
    out: Path = typer.Option(Path("runs/bench/synth.md"), "--out", help="Markdown report."),
) -> None:
    """Synthetic cohort generation speed against a serial baseline."""
    from drgnet.bench import synth as bench

    result = bench.run(n=n, size=size, workers=workers or None)
    report = result.markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
    typer.echo(report)
    typer.echo(f"\nwrote {out}")


def bench_speed(
    size: int = typer.Option(512, "--size", min=32, help="Network input side (multiple of 32)."),
    batches: str = typer.Option("1,8", "--batches", help="Comma-separated batch sizes."),
    engines: str = typer.Option("", "--engines", help="Comma-separated subset (default: all)."),
    min_iterations: int = typer.Option(2, "--min-iterations", min=1, help="Timed passes per row (after warm-up)."),
    min_seconds: float = typer.Option(3.0, "--min-seconds", min=0.0, help="Minimum timed seconds per row."),
    threads: int = typer.Option(0, "--threads", min=0, help="Intra-op threads (0: one per core)."),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Folder for speed.md and speed.json."),
) -> None:
    """Images/s, peak memory and achieved GFLOP/s: reference vs DRGNet eager, channels-last and ONNX Runtime."""
    from drgnet.bench import speed

    try:
        cfg = speed.SpeedBenchConfig(
            size=size,
            batches=tuple(int(b) for b in batches.split(",") if b.strip()),
            min_iterations=min_iterations,
            min_seconds=min_seconds,
            threads=threads,
            **({"engines": tuple(e.strip() for e in engines.split(",") if e.strip())} if engines else {}),
        )
        result = speed.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(speed.markdown(result))
    typer.echo(f"wrote {out / 'speed.md'}")


def bench_tiles(
    input_size: int = typer.Option(512, "--input-size", min=32, help="Network input = tile side (multiple of 32)."),
    lesion_fov_px: str = typer.Option("1024", "--lesion-fov-px", help="Side(s) of the lesion view, comma-separated."),
    engines: str = typer.Option("torch,onnx", "--engines", help="Comma-separated: torch, onnx."),
    threads: int = typer.Option(2, "--threads", min=1, help="Intra-op threads of both engines."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs per row (median reported)."),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Folder for tiles.md and tiles.json."),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Time this trained model (its input size, its lesion view and any other --lesion-fov-px sides) "
        "instead of a random network.",
    ),
) -> None:
    """Seconds per 12-megapixel photograph for full-resolution lesion maps: tiled vs the global view."""
    from drgnet.bench import tiles
    from drgnet.config import ModelConfig

    names = tuple(e.strip() for e in engines.split(",") if e.strip())
    first, *more = (int(s) for s in lesion_fov_px.split(",") if s.strip())
    rest = {"engines": names, "threads": threads, "repeats": repeats}
    try:
        if checkpoint is not None:
            cfg = tiles.for_checkpoint(checkpoint, (first, *more), **rest)
        else:
            model = ModelConfig(encoder_weights=None, input_size=input_size, lesion_fov_px=first)
            cfg = tiles.TileBenchConfig(model, tuple(more), **rest)
        result = tiles.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(tiles.markdown(result))
    typer.echo(f"wrote {out / 'tiles.md'}")


def bench_realism(
    counts: str = typer.Option("16,48", "--counts", help="Comma-separated synthetic photographs per classifier."),
    image_size: int = typer.Option(512, "--image-size", min=64, help="Side of the synthetic photographs."),
    input_size: int = typer.Option(384, "--input-size", min=32, help="Network input (multiple of 32)."),
    generators: str = typer.Option("v1,v2", "--generators", help="Generator versions to compare (v1: old)."),
    folds: int = typer.Option(5, "--folds", min=2),
    repeats: int = typer.Option(10, "--repeats", min=1),
    seed: int = typer.Option(0, "--seed"),
    real: list[Path] = typer.Option([], "--real", help="Real photographs (default: every one found, see README)."),
    out: Path = typer.Option(Path("runs/bench/realism"), "--out"),
) -> None:
    """How well a linear classifier on ImageNet features tells our photographs from real ones (AUC; 0.5 = not)."""
    from drgnet.bench import realism

    try:
        cfg = realism.RealismBenchConfig(
            synthetic_counts=tuple(int(c) for c in counts.split(",") if c.strip()),
            image_size=image_size,
            input_size=input_size,
            generators=tuple(g.strip() for g in generators.split(",") if g.strip()),
            folds=folds,
            repeats=repeats,
            seed=seed,
            real_paths=tuple(str(p) for p in real),
        )
        rows = realism.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(realism.markdown(cfg, rows))
    typer.echo(f"wrote {out / 'realism.md'}")


def _run_training_bench(
    module: str, base: Any, config: Path | None, settings: list[str], device: str | None, out: Path
) -> None:
    """Run ``drgnet.bench.<module>`` on ``base`` with the file and ``--set`` settings; print its table."""
    bench = importlib.import_module(f"drgnet.bench.{module}")
    cfg = settings_of(base, config, settings)
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    try:
        rows = bench.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(bench.markdown(cfg, rows))
    typer.echo(f"wrote {out / f'{module}.md'}")


def _training_bench(module: str, config_class: str, summary: str) -> Callable[..., None]:
    """The command of a benchmark that trains: ``drgnet.bench.<module>.run`` on its config and ``--set`` pairs."""

    def command(
        config: Path | None = typer.Option(
            None, "--config", help=f"{CONFIG_HELP} (drgnet.bench.{module}.{config_class})"
        ),
        settings: list[str] = typer.Option([], "--set", help=SET_HELP),
        device: str | None = typer.Option(None, "--device", help="cpu or cuda (training; latency is always CPU)."),
        out: Path = typer.Option(Path(f"runs/bench/{module}"), "--out", help=f"Folder for {module}.md and .json."),
    ) -> None:
        bench = importlib.import_module(f"drgnet.bench.{module}")
        _run_training_bench(module, getattr(bench, config_class)(), config, settings, device, out)

    command.__doc__ = summary
    return command


bench_quality = _training_bench(
    "quality",
    "QualityBenchConfig",
    """DRGNet vs its ablations vs the reference structure, same data and budget.

    E.g. --set n=300 --set train.epochs=4 --set train.max_steps_per_epoch=25 --set 'variants=["drgnet","reference"]'.
    """,
)
bench_transfer = _training_bench(
    "transfer",
    "TransferBenchConfig",
    """Source-only vs + Wasserstein vs + entropy vs both, on labelled photographs of new camera styles.

    E.g. --set n_source=300 --set source.epochs=4 --set adapt.steps=100 --set 'target_styles=["smartphone"]'.
    """,
)


def bench_real(
    config: Path | None = typer.Option(None, "--config", help=f"{CONFIG_HELP} (drgnet.bench.real.RealBenchConfig)"),
    settings: list[str] = typer.Option([], "--set", help=SET_HELP),
    quick: bool = typer.Option(False, "--quick", help="Smoke-test budget: tiny model, 64 px, 2 folds, 2 steps."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda."),
    out: Path = typer.Option(Path("runs/bench/real"), "--out", help="Folder for real.md and real.json."),
) -> None:
    """Leave-one-out over the four real IDRiD photographs: synthetic (old, calibrated), real-only and mixed training.

    E.g. --set train.epochs=3 --set train.max_steps_per_epoch=30 --set train.model.input_size=160.
    """
    from drgnet.bench import real

    _run_training_bench("real", real.quick_config() if quick else real.RealBenchConfig(), config, settings, device, out)


def bench_real_model(
    checkpoints: list[Path] = typer.Option(
        [], "--checkpoint", help="Checkpoint folder (repeatable; default: the base model, models/drgnet-base)."
    ),
    out: Path = typer.Option(Path("runs/bench/real-model"), "--out", help="Folder for real-model.md and .json."),
) -> None:
    """Trained checkpoints on the real photographs found here, side by side: IDRiD-4 AUPR, real grades, speed."""
    from drgnet.base_model import base_checkpoint
    from drgnet.bench import real_model

    try:
        rows = real_model.run(checkpoints or [base_checkpoint()], out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(real_model.markdown(rows))
    typer.echo(f"wrote {out / 'real-model.md'}")
