"""The ``drgnet`` command line: one module per command group, joined here.

=============  =========================================================================
``data``       ``synth``, ``synth-stats``, ``synth-compare``
``training``   ``train``, ``eval``, ``adapt``, ``demo``
``predict``    ``predict``, ``export-onnx``
``screen``     ``screen``
``bench``      ``bench synth | quality | speed | transfer | realism | real | real-model``
=============  =========================================================================

``db``, ``user``, ``worker``, ``retrain``, ``model``, ... come from the other packages of the distribution through
entry points (:func:`_load_plugins`): the ML core never imports them.
"""

from __future__ import annotations

import typer

from drgnet.cli import bench, data, predict, screen, training

app = typer.Typer(
    name="drgnet",
    help="DRG-Net: diabetic retinopathy grading, lesion segmentation and clinician feedback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: each reports ratios against a baseline measured in the same run.")

app.command()(data.synth)
app.command("synth-stats")(data.synth_stats)
app.command("synth-compare")(data.synth_compare)
app.command()(training.train)
app.command("eval")(training.evaluate_cmd)
app.command()(predict.predict)
app.command()(training.demo)
app.command()(training.adapt)
app.command()(screen.screen)
app.command("export-onnx")(predict.export_onnx_cmd)
app.add_typer(bench_app, name="bench")
bench_app.command("synth")(bench.bench_synth)
bench_app.command("quality")(bench.bench_quality)
bench_app.command("speed")(bench.bench_speed)
bench_app.command("tiles")(bench.bench_tiles)
bench_app.command("transfer")(bench.bench_transfer)
bench_app.command("realism")(bench.bench_realism)
bench_app.command("real")(bench.bench_real)
bench_app.command("real-model")(bench.bench_real_model)


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
