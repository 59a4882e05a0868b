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
    out: Path = typer.Option(..., "--out", help="Folder to write the cohort into (IDRiD-style layout)."),
    n: int = typer.Option(20, "--n", min=0, help="Number of photographs."),
    size: int = typer.Option(512, "--size", min=64, help="Output side length in pixels."),
    style: str = typer.Option("default", "--style", help="Camera style (see --list-styles)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same cohort."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes (0: one per core)."),
    preview: bool = typer.Option(False, "--preview", help="Also write preview.png: one image per grade."),
    list_styles: bool = typer.Option(False, "--list-styles", help="List camera styles and exit."),
) -> None:
    """Generate a synthetic fundus cohort: photographs, per-lesion masks and a grades CSV."""
    from drgnet.data import synthetic

    if list_styles:
        for name, st in synthetic.STYLES.items():
            typer.echo(f"{name:16s} {st.description}")
        return
    if style not in synthetic.STYLES:
        _fail(f"unknown camera style {style!r}; choose one of {', '.join(synthetic.STYLES)}")
    info = synthetic.generate_cohort(
        out, n=n, size=size, style=style, seed=seed, workers=workers or None, progress=True
    )
    typer.echo(f"wrote {info.n} photographs, masks and {info.grades_csv} in {info.seconds:.1f} s")
    if preview:
        sheet = synthetic.write_preview(out / "preview.png", size=min(size, 384), style=style, seed=seed)
        typer.echo(f"wrote contact sheet {sheet}")


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
