"""``drgnet predict`` and ``drgnet export-onnx``: one checkpoint, a few photographs or an ONNX file."""

from __future__ import annotations

from pathlib import Path

import typer

from drgnet.cli._common import LESION_FOV_HELP, fail


def predict(
    images: list[Path] = typer.Argument(..., help="Photographs."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint folder (default: the shipped base model, models/drgnet-base)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
    overlay: Path | None = typer.Option(None, "--overlay", help="Write lesion + attention overlays here."),
    lesion_fov_px: int | None = typer.Option(None, "--lesion-fov-px", min=0, help=LESION_FOV_HELP),
    tta: str = typer.Option(
        "none",
        "--tta",
        help="Test-time augmentation of the lesion maps: none, hflip (2 passes) or flips (4 passes); "
        "the maps are averaged with the flips undone.",
    ),
) -> None:
    """Grade photographs and summarise their lesions."""
    import json

    from drgnet.base_model import base_checkpoint
    from drgnet.inference import Predictor, draw_max_pixels, render_overlay

    try:
        limit = draw_max_pixels()
        checkpoint = checkpoint if checkpoint is not None else base_checkpoint()
        predictor = Predictor.from_checkpoint(checkpoint, map_max_pixels=limit, lesion_fov_px=lesion_fov_px, tta=tta)
    except ValueError as exc:
        fail(str(exc))
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
        fail(str(exc))
    typer.echo(
        f"wrote {report.path} (input 1x3x{report.input_size}x{report.input_size}, dynamic batch); ONNX Runtime vs "
        f"PyTorch: grade probabilities within {report.max_prob_diff:.1e}, lesion maps within "
        f"{report.max_lesion_diff:.1e}"
    )
