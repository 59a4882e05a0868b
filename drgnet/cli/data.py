"""``drgnet synth``, ``drgnet synth-stats`` and ``drgnet synth-compare``: synthetic cohorts, lesion statistics of any
folder, and our photographs beside real ones."""

from __future__ import annotations

from pathlib import Path

import typer

from drgnet.cli._common import fail


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
        fail("--out is required: the folder to write the cohort into")
    if style not in synthetic.STYLES:
        fail(f"unknown camera style {style!r}; choose one of {', '.join(synthetic.STYLES)}")
    if generator not in synthetic.GENERATORS:
        fail(f"unknown generator {generator!r}; choose one of {', '.join(synthetic.GENERATORS)}")
    info = synthetic.generate_cohort(
        out, n=n, size=size, style=style, seed=seed, workers=workers or None, progress=True, generator=generator
    )
    typer.echo(f"wrote {info.n} photographs, masks and {info.grades_csv} in {info.seconds:.1f} s")
    if preview:
        sheet = synthetic.write_preview(out / "preview.png", size=min(size, 384), style=style, seed=seed)
        typer.echo(f"wrote contact sheet {sheet}")


def synth_stats(
    folder: Path | None = typer.Argument(
        None,
        help="Labelled folder: IDRiD layout, a synthetic cohort, FGADR, DDR, ... (with --anatomy: any photographs).",
    ),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout (default: auto-detect)."),
    split: str | None = typer.Option(None, "--split", help="Official split where the layout has them."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Measure only the first N photographs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    anatomy: bool = typer.Option(
        False, "--anatomy", help="Measure the optic disc and vessels (size, brightness, calibre) instead of lesions."
    ),
    real: bool = typer.Option(
        False, "--real", help="With --anatomy and no FOLDER: every real photograph found (IDRiD, samples, skimage)."
    ),
) -> None:
    """Per-lesion statistics: green contrast, region diameter (per mille of the FOV) and regions per photo.

    With --anatomy: optic disc diameter (share of the FOV), brightness and rim width, vessel calibre by distance
    from the disc, contrast and area. The same measurement on real and synthetic photographs, so the generator can
    be held to real ones.
    """
    if anatomy:
        _anatomy_stats(folder, real, layout, split, limit, as_json)
        return
    if real:
        fail("--real measures the anatomy of the real photographs: add --anatomy")
    if folder is None:
        fail("FOLDER is required: the labelled folder to measure")
    import json

    from drgnet.data import lesion_stats

    try:
        photos = lesion_stats.measure_folder(folder, layout=layout, split=split, limit=limit, progress=not as_json)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    summary = lesion_stats.summarise(photos)
    if as_json:
        lesions = {k: v.to_json() for k, v in summary.items()}
        payload = {"folder": str(folder), "photos": len(photos), "lesions": lesions}
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(lesion_stats.format_table(summary, f"{folder}: {len(photos)} photographs"))


def synth_compare(
    out: Path = typer.Option(
        ..., "--out", help="Folder for photographs.png, lesions.png, README.md (never commit it)."
    ),
    n: int = typer.Option(6, "--n", min=1, help="Photographs per row, and lesion crops per row."),
    size: int = typer.Option(
        1024, "--size", min=64, help="Side of our photographs in pixels (2048: close to IDRiD's FOV)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: our photographs and which lesions are cropped."),
    generators: str = typer.Option("v2,v1", "--generators", help="Comma-separated generators, one row each."),
    outline: bool = typer.Option(True, "--outline/--no-outline", help="Repeat the lesion rows with masks outlined."),
) -> None:
    """Our photographs beside the real ones on this machine, and lesion crops of real IDRiD originals at full
    resolution beside ours at the same share of the field of view. The folder holds real photographs: never commit it.
    """
    from drgnet.data import _synth_compare

    gens = tuple(g.strip() for g in generators.split(",") if g.strip())
    command = f"drgnet synth-compare --out {out} --n {n} --size {size} --seed {seed} --generators {','.join(gens)}"
    try:
        result = _synth_compare.write_comparison(
            out, n=n, size=size, seed=seed, generators=gens, outline=outline, command=command
        )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    for name, path in result.used:
        typer.echo(f"real: {name} ({path})")
    for msg in result.missing:
        typer.echo(f"missing: {msg}")
    for msg in result.left_out:
        typer.echo(f"note: {msg}")
    typer.echo(f"wrote {result.photographs}")
    typer.echo(f"wrote {result.lesions}" if result.lesions else "no lesions.png: the IDRiD photographs are missing")
    typer.echo(f"wrote {result.readme} (licences)")
    typer.secho(f"warning: {_synth_compare.WARNING}", fg=typer.colors.YELLOW, err=True)


def _anatomy_stats(
    folder: Path | None, real: bool, layout: str, split: str | None, limit: int | None, as_json: bool
) -> None:
    import json

    from drgnet.data import anatomy_stats

    if (folder is None) == (not real):
        fail("--anatomy needs either FOLDER or --real (the real photographs found on this machine), not both")
    try:
        if real:
            photos, skipped = anatomy_stats.measure_real_photographs(progress=not as_json)
        else:
            photos, skipped = anatomy_stats.measure_folder(folder, layout, split, limit, progress=not as_json)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    what = "real photographs" if real else str(folder)
    if as_json:
        summary = anatomy_stats.summarise(photos)
        payload = {
            "folder": what,
            "photos": len(photos),
            "summary": summary.values,
            "per_photo": [p.to_json() for p in photos],
            "skipped": skipped,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(anatomy_stats.format_table(photos, f"{what}: {len(photos)} photographs"))
    for msg in skipped:
        typer.echo(f"left out: {msg}")
