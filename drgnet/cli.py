"""The ``drgnet`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="drgnet",
    help="DRG-Net: diabetic retinopathy grading, lesion segmentation and clinician feedback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def synth(
    out: Path | None = typer.Option(None, "--out", help="Folder to write the cohort into (IDRiD-style layout)."),
    n: int = typer.Option(20, "--n", min=0, help="Number of photographs."),
    size: int = typer.Option(512, "--size", min=64, help="Output side length in pixels."),
    style: str = typer.Option("default", "--style", help="Camera style (see --list-styles)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same cohort."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes (0: one per core)."),
    preview: bool = typer.Option(False, "--preview", help="Also write preview.png: one image per grade."),
    list_styles: bool = typer.Option(False, "--list-styles", help="List camera styles and exit."),
    generator: str = typer.Option("v2", "--generator", help="v2 (calibrated to real photographs) or v1 (old)."),
) -> None:
    """Generate a synthetic fundus cohort: photographs, per-lesion masks and a grades CSV."""
    from drgnet.data import synthetic

    if list_styles:
        for name, st in synthetic.STYLES.items():
            typer.echo(f"{name:16s} {st.description}")
        return
    if out is None:
        _fail("--out is required: the folder to write the cohort into")
    if style not in synthetic.STYLES:
        _fail(f"unknown camera style {style!r}; choose one of {', '.join(synthetic.STYLES)}")
    if generator not in synthetic.GENERATORS:
        _fail(f"unknown generator {generator!r}; choose one of {', '.join(synthetic.GENERATORS)}")
    info = synthetic.generate_cohort(
        out, n=n, size=size, style=style, seed=seed, workers=workers or None, progress=True, generator=generator
    )
    typer.echo(f"wrote {info.n} photographs, masks and {info.grades_csv} in {info.seconds:.1f} s")
    if preview:
        sheet = synthetic.write_preview(out / "preview.png", size=min(size, 384), style=style, seed=seed)
        typer.echo(f"wrote contact sheet {sheet}")


@app.command("synth-stats")
def synth_stats(
    folder: Path = typer.Argument(..., help="Labelled folder: IDRiD layout, a synthetic cohort, FGADR, DDR, ..."),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout (default: auto-detect)."),
    split: str | None = typer.Option(None, "--split", help="Official split where the layout has them."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Measure only the first N photographs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per-lesion statistics: green contrast, region diameter (per mille of the FOV) and regions per photo.

    The same measurement on real and synthetic photographs, so the generator can be held to real ones.
    """
    import json

    from drgnet.data import lesion_stats

    try:
        photos = lesion_stats.measure_folder(folder, layout=layout, split=split, limit=limit, progress=not as_json)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    summary = lesion_stats.summarise(photos)
    if as_json:
        lesions = {k: v.to_json() for k, v in summary.items()}
        payload = {"folder": str(folder), "photos": len(photos), "lesions": lesions}
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(lesion_stats.format_table(summary, f"{folder}: {len(photos)} photographs"))


def _format_metrics(m: dict) -> str:
    lines = [
        f"images {m.get('n_images', m.get('n', 0))}",
        f"accuracy {m.get('accuracy', float('nan')):.3f}   QWK {m.get('qwk', float('nan')):.3f}   "
        f"macro F1 {m.get('macro_f1', float('nan')):.3f}   AUC (one-vs-rest) {m.get('auc_ovr', float('nan')):.3f}",
        f"referable DR: AUC {m.get('referable_auc', float('nan')):.3f}   "
        f"sensitivity {m.get('referable_sensitivity', float('nan')):.3f}   "
        f"specificity {m.get('referable_specificity', float('nan')):.3f}",
    ]
    for name, lm in (m.get("lesions") or {}).items():
        lines.append(f"{name}: AUPR {lm['aupr']:.3f}   Dice {lm['dice']:.3f}   positive pixels {lm['positives']}")
    return "\n".join(lines)


def _train_config(config: Path | None, preset: str | None, overrides: dict):
    import dataclasses

    from drgnet.config import load_train_config
    from drgnet.training.presets import get_preset

    if config is not None and preset is not None:
        _fail("give --config or --preset, not both")
    try:
        cfg = load_train_config(config) if config is not None else get_preset(preset or "demo")
    except ValueError as exc:
        _fail(str(exc))
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(cfg, **changes)


@app.command()
def train(
    config: Path | None = typer.Option(None, "--config", help="Training config JSON (see drgnet.config.TrainConfig)."),
    preset: str | None = typer.Option(None, "--preset", help="tiny, demo or full."),
    data: str | None = typer.Option(None, "--data", help="Dataset folder (any supported layout)."),
    layout: str | None = typer.Option(None, "--layout", help="Dataset layout (default: auto-detect)."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run folder: best/ and last/ checkpoints."),
    epochs: int | None = typer.Option(None, "--epochs", min=1),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    seed: int | None = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last."),
) -> None:
    """Train DRGNet; keeps the best checkpoint by validation QWK and reports test metrics.

    Data-parallel on several processes or GPUs: `torchrun --nproc_per_node=N -m drgnet.cli train ...`.
    """
    from drgnet.training.pipeline import train as run_training

    cfg = _train_config(
        config, preset, {"data": data, "layout": layout, "epochs": epochs, "batch_size": batch_size, "seed": seed}
    )
    from drgnet.training import distributed

    try:
        result, test_metrics = run_training(cfg, out, resume=resume, log=typer.echo)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        main_rank = distributed.current().is_main  # under torchrun only rank 0 reports
        distributed.cleanup()
    if not main_rank:
        return
    typer.echo(
        f"best checkpoint: {result.best} (epoch {result.best_metrics.get('epoch', 0) + 1}, {result.seconds:.0f} s)"
    )
    if test_metrics:
        typer.echo("test split:\n" + _format_metrics(test_metrics))


@app.command("eval")
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
        _fail(str(exc))
    typer.echo(_format_metrics(metrics))
    out = out or Path(checkpoint) / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    if "confusion" in metrics:
        save_confusion_png(metrics["confusion"], out / "confusion.png")
    typer.echo(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")


@app.command()
def predict(
    images: list[Path] = typer.Argument(..., help="Photographs."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint folder."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
    overlay: Path | None = typer.Option(None, "--overlay", help="Write lesion + attention overlays here."),
) -> None:
    """Grade photographs and summarise their lesions."""
    import json

    from drgnet.inference import Predictor, draw_max_pixels, render_overlay

    try:
        limit = draw_max_pixels()
        predictor = Predictor.from_checkpoint(checkpoint, map_max_pixels=limit)
    except ValueError as exc:
        _fail(str(exc))
    failed = 0
    for path in images:
        try:
            pred = predictor.predict(path)
        except (ValueError, OSError) as exc:
            failed += 1
            if as_json:
                typer.echo(json.dumps({"image": str(path), "error": str(exc)}))
            else:
                typer.secho(f"{path}: {exc}", fg=typer.colors.RED, err=True)
            continue
        if as_json:
            typer.echo(json.dumps({"image": str(path), **pred.to_json()}))
        else:
            lesions = ", ".join(f"{k} {v.count} ({v.area_fraction:.2%})" for k, v in pred.lesions.items())
            typer.echo(f"{path}: grade {pred.grade} ({pred.grade_name}, p={pred.probs[pred.grade]:.2f}); {lesions}")
        if overlay is not None:
            from drgnet.data.preprocess import load_rgb

            overlay.mkdir(parents=True, exist_ok=True)
            drawn = render_overlay(load_rgb(path), pred.lesion_probs, pred.attention, opacity=0.45, max_pixels=limit)
            import cv2

            cv2.imwrite(str(overlay / f"{path.stem}_overlay.png"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if failed:
        raise typer.Exit(code=1)


@app.command()
def demo(
    data_dir: Path = typer.Option(Path("data"), "--data-dir", envvar="DRGNET_DATA_DIR", help="Where the demo lives."),
    retrain: bool = typer.Option(False, "--retrain", help="Train again even if a cached demo model exists."),
) -> None:
    """Train (or reuse) the small demo model on a synthetic cohort and report its test metrics."""
    from drgnet.training.demo import ensure_demo_model

    try:
        ckpt, metrics = ensure_demo_model(data_dir, retrain=retrain, log=typer.echo)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"synthetic cohort: {data_dir / 'demo-cohort'} (photographs, lesion masks, grades.csv)")
    typer.echo(f"demo model: {ckpt}")
    if metrics:
        typer.echo("test split:\n" + _format_metrics(metrics))


@app.command()
def adapt(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Trained source checkpoint."),
    source: str = typer.Option(..., "--source", help="Labelled source dataset folder."),
    target_images: Path = typer.Option(..., "--target-images", help="Folder of the new camera's photographs."),
    out: Path = typer.Option(..., "--out", help="Adapted checkpoint folder to write."),
    steps: int = typer.Option(200, "--steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=2),
    lr: float = typer.Option(1e-4, "--lr"),
    wasserstein: float = typer.Option(0.1, "--wasserstein", help="Weight of the OT term (0: off)."),
    method: str = typer.Option("emd", "--method", help="emd (exact) or sliced."),
    entropy: float = typer.Option(0.05, "--entropy", help="Weight of direct entropy minimisation (0: off)."),
    adversarial: float = typer.Option(0.01, "--adversarial", help="Weight of the ADVENT term (0: off)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Adapt a model to a new clinic's camera with unlabelled photographs (Wasserstein + adversarial entropy)."""
    from drgnet.config import TransferConfig
    from drgnet.training.adapt import adapt as run_adapt

    cfg = TransferConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        wasserstein_weight=wasserstein,
        wasserstein_method=method,
        entropy_weight=entropy,
        adversarial_weight=adversarial,
        seed=seed,
    )
    try:
        result = run_adapt(checkpoint, source, target_images, out, cfg, log=typer.echo, device=device)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(f"adapted checkpoint: {result.checkpoint}")


@app.command()
def screen(
    inputs: list[str] = typer.Argument(
        ..., help="Folders (searched recursively), glob patterns, image files, or CSV lists of paths."
    ),
    out: Path = typer.Option(..., "--out", help="results.csv or results.jsonl; the same file again resumes."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint folder (torch engine; with --db the default is the active version)."
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
    from drgnet.inference import draw_max_pixels
    from drgnet.screening import EngineSpec, ScreenOptions, SinkError, load_sink, screen_ray
    from drgnet.screening import screen as run_screen

    if engine not in ("torch", "onnx"):
        _fail(f"unknown engine {engine!r}; choose torch or onnx")
    if not db and (database_url is not None or data_dir is not None):
        _fail("--url and --data-dir only apply with --db")
    sink = None
    if db:
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
            _fail(str(exc))
    if engine == "torch" and checkpoint is None:
        _fail("--checkpoint is required with the torch engine (or --db, to use the active model version)")
    if engine == "onnx" and onnx is None:
        _fail("--onnx MODEL.onnx is required with --engine onnx (write one with `drgnet export-onnx`)")
    spec = EngineSpec(
        kind=engine,
        checkpoint=str(checkpoint) if checkpoint else None,
        onnx=str(onnx) if onnx else None,
        channels_last=channels_last,
    )
    try:
        limit = draw_max_pixels()
    except ValueError as exc:
        _fail(str(exc))
    options = ScreenOptions(
        threshold=threshold,
        masks_dir=str(masks) if masks is not None else None,
        max_file_bytes=int(max_file_mb * 2**20),
        draw_max_pixels=limit,
    )
    try:
        if ray is not None:
            summary = screen_ray(
                inputs,
                out,
                spec,
                options,
                address=ray,
                concurrency=concurrency,
                batch_size=batch_size,
                progress=progress,
                sink=sink,
            )
        else:
            summary = run_screen(
                inputs, out, spec.build(), options, batch_size=batch_size, workers=workers, progress=progress, sink=sink
            )
    except ValueError as exc:
        _fail(str(exc))
    except SinkError as exc:
        _fail(f"{exc}; the rows in {out} are stored: run the same command again to resume")
    finally:
        if sink is not None:
            sink.close()
    typer.echo(summary.describe())
    if sink is not None:
        typer.echo(sink.describe())


@app.command("export-onnx")
def export_onnx_cmd(
    checkpoint: Path = typer.Argument(..., help="Checkpoint folder."),
    out: Path = typer.Option(..., "--out", help="ONNX file to write."),
    opset: int = typer.Option(17, "--opset", min=17, help="ONNX opset."),
) -> None:
    """Export a checkpoint to ONNX (dynamic batch, float [0, 1] NCHW input) and check it against PyTorch."""
    from drgnet.engines import export_onnx

    try:
        report = export_onnx(checkpoint, out, opset=opset)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(
        f"wrote {report.path} (input 1x3x{report.input_size}x{report.input_size}, dynamic batch); ONNX Runtime vs "
        f"PyTorch: grade probabilities within {report.max_prob_diff:.1e}, lesion maps within "
        f"{report.max_lesion_diff:.1e}"
    )


bench_app = typer.Typer(help="Benchmarks: each reports ratios against a baseline measured in the same run.")
app.add_typer(bench_app, name="bench")


@bench_app.command("synth")
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


@bench_app.command("quality")
def bench_quality(
    n: int = typer.Option(600, "--n", min=20, help="Synthetic photographs."),
    image_size: int = typer.Option(384, "--image-size", min=64),
    input_size: int = typer.Option(256, "--input-size", min=64, help="Network input (multiple of 32)."),
    epochs: int = typer.Option(6, "--epochs", min=1),
    steps_per_epoch: int = typer.Option(50, "--steps-per-epoch", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(0, "--workers", min=0),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (training only; latency is always CPU)."),
    variants: str = typer.Option("", "--variants", help="Comma-separated subset (default: all)."),
    out: Path = typer.Option(Path("runs/bench/quality"), "--out"),
) -> None:
    """DRGNet vs its ablations vs the reference structure, same data and budget."""
    from drgnet.bench import quality

    cfg = quality.QualityBenchConfig(
        n=n,
        image_size=image_size,
        input_size=input_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        seed=seed,
        workers=workers,
        device=device,
        **({"variants": tuple(v.strip() for v in variants.split(",") if v.strip())} if variants else {}),
    )
    try:
        rows = quality.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(quality.markdown(cfg, rows))
    typer.echo(f"wrote {out / 'quality.md'}")


@bench_app.command("speed")
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
        _fail(str(exc))
    typer.echo(speed.markdown(result))
    typer.echo(f"wrote {out / 'speed.md'}")


@bench_app.command("transfer")
def bench_transfer(
    n_source: int = typer.Option(400, "--n-source", min=20),
    n_target_pool: int = typer.Option(150, "--n-target-pool", min=4),
    n_target_test: int = typer.Option(120, "--n-target-test", min=4),
    image_size: int = typer.Option(384, "--image-size", min=64),
    input_size: int = typer.Option(256, "--input-size", min=64),
    targets: str = typer.Option("clinic_b,smartphone", "--targets", help="Comma-separated target camera styles."),
    source_epochs: int = typer.Option(6, "--source-epochs", min=1),
    source_steps_per_epoch: int = typer.Option(40, "--source-steps-per-epoch", min=1),
    adapt_steps: int = typer.Option(150, "--adapt-steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=2),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(0, "--workers", min=0),
    device: str = typer.Option("cpu", "--device"),
    source_checkpoint: str = typer.Option("", "--source-checkpoint", help="Reuse a trained source model."),
    out: Path = typer.Option(Path("runs/bench/transfer"), "--out"),
) -> None:
    """Source-only vs + Wasserstein vs + entropy vs both, on labelled photographs of new camera styles."""
    from drgnet.bench import transfer

    cfg = transfer.TransferBenchConfig(
        n_source=n_source,
        n_target_pool=n_target_pool,
        n_target_test=n_target_test,
        image_size=image_size,
        input_size=input_size,
        target_styles=tuple(t.strip() for t in targets.split(",") if t.strip()),
        source_epochs=source_epochs,
        source_steps_per_epoch=source_steps_per_epoch,
        adapt_steps=adapt_steps,
        batch_size=batch_size,
        seed=seed,
        workers=workers,
        device=device,
        source_checkpoint=source_checkpoint,
    )
    try:
        rows = transfer.run(cfg, out, log=typer.echo)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(transfer.markdown(cfg, rows))
    typer.echo(f"wrote {out / 'transfer.md'}")


@bench_app.command("realism")
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
        _fail(str(exc))
    typer.echo(realism.markdown(cfg, rows))
    typer.echo(f"wrote {out / 'realism.md'}")


def _load_plugins() -> None:
    """Add commands that other packages of the distribution register (``drgnet db``, ``drgnet user``, ...).

    The ML core must not import the persistence or feedback layers (DESIGN.md §2), so they plug their commands in
    through the ``drgnet.commands`` entry-point group instead of being imported here.
    """
    from importlib.metadata import entry_points

    for group, parent in (("drgnet.commands", app), ("drgnet.bench_commands", bench_app)):
        for ep in entry_points(group=group):
            try:
                plugin = ep.load()
            except ImportError as exc:
                typer.secho(f"warning: command {ep.name!r} unavailable ({exc})", fg=typer.colors.YELLOW, err=True)
                continue
            if isinstance(plugin, typer.Typer):
                parent.add_typer(plugin, name=ep.name)  # a command group: drgnet db ..., drgnet user ...
            else:
                parent.command(ep.name)(plugin)  # a single command: drgnet worker, drgnet bench feedback


def main() -> None:
    _load_plugins()
    app()


if __name__ == "__main__":
    main()
