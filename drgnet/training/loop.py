"""Old import path of the training loop, now :mod:`drgnet.training.engine`."""

from drgnet.training.engine import FitResult, fit, make_optimizer, seed_everything

__all__ = ["FitResult", "fit", "make_optimizer", "seed_everything"]
