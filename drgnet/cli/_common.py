"""What every command of the ``drgnet`` command line shares: error exit, metrics text, config options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

T = TypeVar("T")

CONFIG_HELP = "Settings file (JSON, or TOML by suffix) with any fields of the command's config; --set overrides it."
LESION_FOV_HELP = (
    "Side of the lesion view cut into tiles (default: the scale the model learned at); 0: maps from the global view."
)
SET_HELP = "One setting KEY=VALUE (repeatable); nested settings by dots, e.g. --set loss.grade_weight=2."


def config_option(config_class: str) -> Any:
    """The ``--config FILE`` option of a command whose settings are the dataclass named ``config_class``."""
    return typer.Option(None, "--config", help=f"{CONFIG_HELP} ({config_class})")


def set_option() -> Any:
    """The repeatable ``--set key.path=value`` option that goes with :func:`config_option`."""
    return typer.Option([], "--set", help=SET_HELP)


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error and exit with status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def settings_of(base: T, config: Path | None, settings: list[str]) -> T:
    """The command's config: ``base`` (or the file ``config``) with the ``--set`` pairs; bad input exits."""
    from drgnet.config import build_config

    try:
        return build_config(base, config, settings)
    except ValueError as exc:
        fail(str(exc))


def format_metrics(m: dict[str, Any]) -> str:
    """Evaluation metrics as a few lines of text."""
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
