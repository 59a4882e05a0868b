"""Old import path of checkpoint reading and writing, which now lives next to the model
(:mod:`drgnet.model.checkpoint`)."""

from drgnet.model._weights import WEIGHTS, load_encoder_weights
from drgnet.model.checkpoint import (
    FORMAT,
    META,
    METRICS,
    OPTIMIZER,
    TRAINER,
    VERSION,
    load_checkpoint,
    load_optimizer_state,
    read_checkpoint_meta,
    save_checkpoint,
    sha256_file,
)

__all__ = [
    "FORMAT",
    "META",
    "METRICS",
    "OPTIMIZER",
    "TRAINER",
    "VERSION",
    "WEIGHTS",
    "load_checkpoint",
    "load_encoder_weights",
    "load_optimizer_state",
    "read_checkpoint_meta",
    "save_checkpoint",
    "sha256_file",
]
