"""``drgnet bench ...``: each benchmark reports ratios against a baseline measured in the same run.

Every benchmark with settings takes ``--config FILE`` / ``--set key.path=value`` on its config dataclass (the one
place its defaults are written), like ``drgnet train``; only what a person types every time (``--out``,
``--checkpoint``, ``--device``) is an option of its own.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from drgnet.cli._common import config_option, fail, set_option, settings_of


def _config_option(module: str, config_class: str) -> Any:
    """The ``--config`` option of the benchmark whose settings are ``drgnet.bench.<module>.<config_class>``."""
    return config_option(f"drgnet.bench.{module}.{config_class}")


def bench_synth(
    config: Path | None = _config_option("synth", "SynthBenchConfig"),
    settings: list[str] = set_option(),
    out: Path = typer.Option(Path("runs/bench/synth.md"), "--out", help="Markdown report."),
) -> None:
    """Synthetic cohort generation speed against a serial baseline.

    E.g. --set n=500 --set size=512 --set workers=2.
    """
    from drgnet.bench import synth as bench

    cfg = settings_of(bench.SynthBenchConfig(), config, settings)
    try:
        result = bench.run(cfg)
    except ValueError as exc:
        fail(str(exc))
    report = result.markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
    typer.echo(report)
    typer.echo(f"\nwrote {out}")


def bench_speed(
    config: Path | None = _config_option("speed", "SpeedBenchConfig"),
    settings: list[str] = set_option(),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Folder for speed.md and speed.json."),
) -> None:
    """Images/s, peak memory and achieved GFLOP/s: reference vs DRGNet eager, channels-last and ONNX Runtime.

    E.g. --set size=512 --set batches=1,8 --set engines=drgnet_eager,drgnet_onnx --set threads=2.
    """
    from drgnet.bench import speed

    cfg = settings_of(speed.SpeedBenchConfig(), config, settings)
    try:
        result = speed.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(speed.markdown(result))
    typer.echo(f"wrote {out / 'speed.md'}")


def bench_tiles(
    config: Path | None = _config_option("tiles", "TileBenchConfig"),
    settings: list[str] = set_option(),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Time this trained model (its input size, its lesion view and any also_lesion_fov_px sides) "
        "instead of a random network (whose model.* settings are then unused).",
    ),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Folder for tiles.md and tiles.json."),
) -> None:
    """Seconds per 12-megapixel photograph for full-resolution lesion maps: tiled vs the global view.

    E.g. --set model.input_size=224 --set also_lesion_fov_px=896 --set engines=onnx --set threads=1 --set repeats=2.
    """
    from drgnet.bench import tiles

    cfg = settings_of(tiles.TileBenchConfig(), config, settings)
    try:
        if checkpoint is not None:
            cfg = tiles.for_checkpoint(checkpoint, cfg.also_lesion_fov_px, base=cfg)
        result = tiles.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(tiles.markdown(result))
    typer.echo(f"wrote {out / 'tiles.md'}")


def bench_realism(
    config: Path | None = _config_option("realism", "RealismBenchConfig"),
    settings: list[str] = set_option(),
    out: Path = typer.Option(Path("runs/bench/realism"), "--out", help="Folder for realism.md."),
) -> None:
    """How well a linear classifier on ImageNet features tells our photographs from real ones (AUC; 0.5 = not).

    E.g. --set synthetic_counts=16,48 --set repeats=10 --set generators=v2 --set real_paths=a.jpg,b.jpg (default:
    every real photograph found, see README).
    """
    from drgnet.bench import realism

    cfg = settings_of(realism.RealismBenchConfig(), config, settings)
    try:
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
        config: Path | None = _config_option(module, config_class),
        settings: list[str] = set_option(),
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
    config: Path | None = _config_option("real", "RealBenchConfig"),
    settings: list[str] = set_option(),
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
