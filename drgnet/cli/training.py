"""``drgnet train``, ``drgnet eval``, ``drgnet adapt`` and ``drgnet demo``: the model's life before the clinic.

Training-like commands take their settings as a config (``--preset`` / ``--config FILE``) plus ``--set
key.path=value`` pairs (:mod:`drgnet.config`); options are only what a person types every time: data, output,
device.
"""

from __future__ import annotations

from pathlib import Path

import typer

from drgnet.cli._common import config_option, fail, format_metrics, set_option, settings_of


def train(
    config: Path | None = config_option("drgnet.config.TrainConfig"),
    preset: str | None = typer.Option(None, "--preset", help="tiny, demo or full (default demo)."),
    settings: list[str] = set_option(),
    data: str | None = typer.Option(None, "--data", help="Dataset folder (any supported layout)."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run folder: best/ and last/ checkpoints."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last."),
) -> None:
    """Train DRGNet; keeps the best checkpoint by validation QWK and reports test metrics.

    Data-parallel on several processes or GPUs: `torchrun --nproc_per_node=N -m drgnet.cli train ...`.
    """
    import dataclasses

    from drgnet.training import distributed
    from drgnet.training.pipeline import train as run_training
    from drgnet.training.presets import get_preset

    if config is not None and preset is not None:
        fail("give --config or --preset, not both")
    try:
        base = get_preset(preset or "demo")
    except ValueError as exc:
        fail(str(exc))
    cfg = settings_of(base, config, settings)
    if data is not None:
        cfg = dataclasses.replace(cfg, data=data)
    try:
        result, test_metrics = run_training(cfg, out, resume=resume, log=typer.echo, device=device)
    except ValueError as exc:
        fail(str(exc))
    finally:
        main_rank = distributed.current().is_main  # under torchrun only rank 0 reports
        distributed.cleanup()
    if not main_rank:
        return
    typer.echo(
        f"best checkpoint: {result.best} (epoch {result.best_metrics.get('epoch', 0) + 1}, {result.seconds:.0f} s)"
    )
    if test_metrics:
        typer.echo("test split:\n" + format_metrics(test_metrics))


def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint folder."),
    data: str = typer.Option(..., "--data", help="Labelled dataset folder."),
    layout: str = typer.Option("auto", "--layout"),
    split: str = typer.Option("all", "--split", help="all, or train/val/test as split at training time."),
    out: Path | None = typer.Option(None, "--out", help="Folder for metrics.json and confusion.png."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
) -> None:
    """Evaluate a checkpoint: accuracy, QWK, macro F1, AUCs, referable DR, per-lesion AUPR and Dice."""
    import json

    from torch.utils.data import DataLoader

    from drgnet.metrics import save_confusion_png
    from drgnet.model.checkpoint import load_checkpoint
    from drgnet.training.evaluate import evaluate
    from drgnet.training.pipeline import dataset_for_eval

    try:
        model, meta = load_checkpoint(checkpoint)
        split_info = (meta.get("data") or {}) if split != "all" else {}
        ds = dataset_for_eval(
            data,
            model.config.input_size,
            layout=layout,
            split=split,
            seed=int(split_info.get("split_seed", 0)),
            fractions=tuple(split_info.get("split_fractions", (0.7, 0.15, 0.15))),
        )
        metrics = evaluate(model, DataLoader(ds, batch_size), progress=True)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(format_metrics(metrics))
    out = out or Path(checkpoint) / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    if "confusion" in metrics:
        save_confusion_png(metrics["confusion"], out / "confusion.png")
    typer.echo(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")


def demo(
    data_dir: Path = typer.Option(Path("data"), "--data-dir", envvar="DRGNET_DATA_DIR", help="Where the demo lives."),
    retrain: bool = typer.Option(
        False, "--retrain", help="Train the small demo model afresh instead of using the base model."
    ),
) -> None:
    """The demo's model: the shipped base model at once (no training), or with --retrain the small demo model
    trained afresh on a synthetic cohort; reports its test metrics."""
    from drgnet.training.demo import ensure_demo_model

    try:
        demo_model = ensure_demo_model(data_dir, retrain=retrain, log=typer.echo)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"synthetic photographs: {demo_model.photographs.parent} (photographs, lesion masks, grades.csv)")
    typer.echo(f"demo model ({demo_model.name}): {demo_model.checkpoint}")
    if demo_model.metrics:
        typer.echo(f"{demo_model.metrics_of}:\n" + format_metrics(demo_model.metrics))


def adapt(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Trained source checkpoint."),
    source: str = typer.Option(..., "--source", help="Labelled source dataset folder."),
    target_images: Path = typer.Option(..., "--target-images", help="Folder of the new camera's photographs."),
    out: Path = typer.Option(..., "--out", help="Adapted checkpoint folder to write."),
    config: Path | None = config_option("drgnet.config.TransferConfig"),
    settings: list[str] = set_option(),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Adapt a model to a new clinic's camera with unlabelled photographs (Wasserstein + adversarial entropy).

    The transfer terms are settings: e.g. --set wasserstein_weight=0 --set entropy_weight=0.1.
    """
    from drgnet.config import TransferConfig
    from drgnet.training.adapt import adapt as run_adapt

    cfg = settings_of(TransferConfig(), config, settings)
    try:
        result = run_adapt(checkpoint, source, target_images, out, cfg, log=typer.echo, device=device)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(f"adapted checkpoint: {result.checkpoint}")
