"""The shipped base model ``models/drgnet-base``: where it lives, and how a trained checkpoint becomes it.

``drgnet predict``, ``drgnet screen`` and ``make demo`` use it when no checkpoint is given. It is a normal checkpoint
folder (:mod:`drgnet.model.checkpoint`: safetensors weights, JSON config, sha256), its weights stored as float16 to
halve the file; :func:`load_checkpoint` casts them back to float32 on load. The model card beside the weights
(``README.md``) says what it was trained on, how, and how well it does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drgnet.data.real_samples import REPO_ROOT
from drgnet.model._weights import WEIGHTS
from drgnet.model.checkpoint import META, METRICS, load_checkpoint, save_checkpoint

BASE_MODEL_DIR = REPO_ROOT / "models" / "drgnet-base"
#: Provenance fields of a training checkpoint's description that the shipped copy keeps.
KEPT_META = ("train_config", "data", "epoch", "step")
#: The model card's file name in a shipped model's folder.
CARD = "README.md"


def base_checkpoint(folder: Path | None = None) -> Path:
    """The base model's checkpoint folder, checked to be there; a ValueError naming the path when it is not."""
    folder = Path(folder) if folder is not None else BASE_MODEL_DIR
    missing = [name for name in (META, WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"no --checkpoint given and the base model is not there: {folder} lacks {', '.join(missing)} "
            "(it ships with the repository under models/drgnet-base; pass --checkpoint FOLDER to use another model)"
        )
    return folder


def ship_checkpoint(source: Path, out: Path, half: bool = True) -> Path:
    """Copy the checkpoint ``source`` to ``out`` for shipping: float16 weights (``half``), no optimizer state.

    A model card already in ``out`` (:data:`CARD`) stays; the weights, config and metrics are replaced.

    The copy is a normal checkpoint whose ``weights_sha256`` is that of its own (float16) file; its description
    keeps the training provenance (:data:`KEPT_META`) and says where it came from.
    """
    model, meta = load_checkpoint(source)
    extra: dict[str, Any] = {k: meta[k] for k in KEPT_META if k in meta}
    extra["shipped_from"] = {"checkpoint": str(source), "weights_sha256": meta["weights_sha256"]}
    extra["weights_dtype"] = "float16" if half else "float32"
    metrics = meta.get("metrics")
    if half:
        model = model.half()
    # The checkpoint folder is replaced whole; the model card beside the old weights is not the checkpoint's to drop.
    card = Path(out) / CARD
    kept_card = card.read_bytes() if card.is_file() else None
    shipped = save_checkpoint(Path(out), model, model.config, metrics=metrics, extra=extra)
    if kept_card is not None:
        (shipped / CARD).write_bytes(kept_card)
    return shipped


def card_sha256(card: Path) -> dict[str, str]:
    """``{file name: sha256}`` as a model card lists them: lines ``sha256 <hex>  <file name>`` (hex, two spaces)."""
    found = {}
    for line in Path(card).read_text().splitlines():
        parts = line.strip().strip("`").split()
        if len(parts) == 3 and parts[0] == "sha256" and len(parts[1]) == 64:
            found[parts[2]] = parts[1]
    return found


def shipped_metrics(folder: Path | None = None) -> dict[str, Any]:
    """The metrics stored beside the base model's weights ({} when there are none)."""
    path = base_checkpoint(folder) / METRICS
    return json.loads(path.read_text()) if path.is_file() else {}
