"""Training and evaluation from a config: data folder -> splits -> datasets -> fit -> test metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from drgnet.config import TrainConfig
from drgnet.data.readers import open_dataset, split_indices
from drgnet.data.transforms import eval_transforms, train_transforms
from drgnet.model import DRGNet
from drgnet.model.checkpoint import load_checkpoint
from drgnet.training import distributed
from drgnet.training.data import FundusDataset
from drgnet.training.engine import FitResult, fit, seed_everything
from drgnet.training.evaluate import evaluate
from drgnet.training.mix import training_set
from drgnet.training.task import JointTask
from drgnet.training.views import HighResViews

SPLITS = ("train", "val", "test", "all")


@dataclass
class Splits:
    train: FundusDataset | HighResViews
    val: FundusDataset
    test: FundusDataset
    description: dict[str, Any]


def build_splits(cfg: TrainConfig) -> Splits:
    """Open ``cfg.data`` and split it deterministically by ``cfg.seed`` (stratified by grade)."""
    if not cfg.data:
        raise ValueError("no training data given (set `data` in the config or pass --data DIR)")
    reader = open_dataset(cfg.data, layout=cfg.layout)
    size = cfg.model.input_size
    if cfg.val_data:
        val_reader = open_dataset(cfg.val_data, layout=cfg.layout)
        train_idx = list(range(len(reader)))
        val = FundusDataset(val_reader, size, eval_transforms(size))
        test = FundusDataset(val_reader, size, eval_transforms(size), indices=[])
    else:
        train_idx, val_idx, test_idx = split_indices(reader.grades, cfg.split_fractions, seed=cfg.seed)
        val = FundusDataset(reader, size, eval_transforms(size), indices=val_idx)
        test = FundusDataset(reader, size, eval_transforms(size), indices=test_idx)
    transform = None if cfg.augment == "none" else train_transforms(size, cfg.augment, seed=cfg.seed)
    train = training_set(cfg, reader, train_idx, transform)
    description = {
        "data": str(cfg.data),
        "layout": cfg.layout,
        "split_seed": cfg.seed,
        "split_fractions": list(cfg.split_fractions),
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
    }
    return Splits(train, val, test, description)


def dataset_for_eval(
    data: str | Path,
    size: int,
    layout: str = "auto",
    split: str = "all",
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> FundusDataset:
    """A labelled folder (or one split of it, recomputed exactly as training did) for evaluation."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    reader = open_dataset(data, layout=layout)
    if split == "all":
        return FundusDataset(reader, size, eval_transforms(size))
    parts = dict(zip(("train", "val", "test"), split_indices(reader.grades, fractions, seed=seed), strict=True))
    return FundusDataset(reader, size, eval_transforms(size), indices=parts[split])


def train(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    device: str = "cpu",
) -> tuple[FitResult, dict[str, Any]]:
    """Train DRGNet on ``cfg``; returns the fit result and the best checkpoint's test-split metrics.

    Under torchrun every rank trains; rank 0 alone logs, writes and scores the test split (other ranks return
    empty test metrics). ``device``: "cpu" or "cuda" (under torchrun, this rank's GPU).
    """
    if not distributed.setup(device).is_main:
        progress = False

        def log(_: str) -> None:
            return None

    seed_everything(cfg.seed)
    splits = build_splits(cfg)
    log(f"data {cfg.data}: {splits.description['sizes']}")
    model = DRGNet(cfg.model)
    task = JointTask(model, cfg.loss)
    result = fit(
        task,
        splits.train,
        splits.val,
        cfg,
        out,
        resume=resume,
        progress=progress,
        log=log,
        extra_meta={"data": splits.description},
        device=device,
    )
    test_metrics: dict[str, Any] = {}
    if len(splits.test) and distributed.current().is_main:
        best, _ = load_checkpoint(result.best)
        test_metrics = evaluate(best.to(device), DataLoader(splits.test, cfg.batch_size), progress, device=device)
        (Path(out) / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2, default=float) + "\n")
    return result, test_metrics
