"""Domain-shift benchmark: train on one camera style, adapt to others, score on labelled target photographs.

For each target style: an unlabelled pool (the photographs adaptation may look at) and a separate labelled test
set of other eyes. Rows: the source model as it is; the same model fine-tuned on source for the same number of
steps with no target term (the time and quality baseline); and + Wasserstein, + entropy (direct + adversarial),
+ both. Overhead is seconds per step relative to the source-only fine-tune of the same run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from drgnet.config import ModelConfig, TrainConfig, TransferConfig
from drgnet.data import synthetic
from drgnet.data.readers import open_dataset, split_indices
from drgnet.data.transforms import train_transforms
from drgnet.model import DRGNet
from drgnet.model.checkpoint import load_checkpoint
from drgnet.training.adapt import adapt, with_terms
from drgnet.training.data import FundusDataset
from drgnet.training.engine import fit, seed_everything
from drgnet.training.evaluate import evaluate
from drgnet.training.task import JointTask


def _source_budget() -> TrainConfig:
    return TrainConfig(epochs=6, max_steps_per_epoch=40, augment="light")


def _adapt_budget() -> TransferConfig:
    return TransferConfig(steps=150)


@dataclass(frozen=True)
class TransferBenchConfig:
    """``drgnet bench transfer``: cohorts per camera style, the source model's training and the adaptation runs."""

    n_source: int = 400
    n_target_pool: int = 150  # unlabelled photographs per target style, seen by adaptation
    n_target_test: int = 120  # labelled photographs per target style, never seen in training
    image_size: int = 384
    input_size: int = 256
    source_style: str = "default"
    target_styles: tuple[str, ...] = ("clinic_b", "smartphone")
    # Training of the source model (epochs, max_steps_per_epoch, batch, seed of the cohorts and split, workers);
    # its model and data fields are not used.
    source: TrainConfig = field(default_factory=_source_budget)
    # Every adaptation row starts from this; the rows switch the Wasserstein and entropy terms on and off.
    adapt: TransferConfig = field(default_factory=_adapt_budget)
    device: str = "cpu"
    source_checkpoint: str = ""  # reuse a trained source model (e.g. OUT/source-run/best) instead of training one


ROWS: dict[str, tuple[str, bool, bool]] = {
    "source_finetune": ("source fine-tune, no target (baseline)", False, False),
    "wasserstein": ("+ Wasserstein", True, False),
    "entropy": ("+ entropy (direct + adversarial)", False, True),
    "both": ("+ both", True, True),
}


def _cohort(root: Path, n: int, size: int, style: str, seed: int) -> Path:
    path = root / f"{style}-{n}-{size}-{seed}"
    if not (path / "manifest.json").is_file():
        synthetic.generate_cohort(path, n=n, size=size, style=style, seed=seed, progress=True)
    return path


def run(cfg: TransferBenchConfig, out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = cfg.input_size
    seed = cfg.source.seed
    source = _cohort(out / "data", cfg.n_source, cfg.image_size, cfg.source_style, seed)
    reader = open_dataset(source, layout="synthetic")
    train_idx, val_idx, _ = split_indices(reader.grades, (0.8, 0.2, 0.0), seed=seed)
    seed_everything(seed)
    if cfg.source_checkpoint:
        model, _ = load_checkpoint(Path(cfg.source_checkpoint))
        if model.config.input_size != size:
            raise ValueError(f"{cfg.source_checkpoint}: input size {model.config.input_size}, benchmark uses {size}")
        log(f"reusing the source model {cfg.source_checkpoint}")
        return _adapt_rows(cfg, out, model, source, train_idx, log)
    model = DRGNet(ModelConfig(input_size=size))
    log(f"training the source model on '{cfg.source_style}' ({len(train_idx)} photographs)")
    result = fit(
        JointTask(model, cfg.source.loss),
        FundusDataset(reader, size, train_transforms(size, cfg.source.augment, seed=seed), indices=train_idx),
        FundusDataset(reader, size, None, indices=val_idx),
        cfg.source,
        out / "source-run",
        log=log,
        device=cfg.device,
    )
    model.load_state_dict(result.best_state)
    return _adapt_rows(cfg, out, model, source, train_idx, log)


def _adapt_rows(
    cfg: TransferBenchConfig,
    out: Path,
    model: torch.nn.Module,
    source: Path,
    train_idx: list[int],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:

    size = cfg.input_size
    source_state = copy.deepcopy(model.state_dict())
    base = cfg.adapt

    rows: list[dict[str, Any]] = []
    for t, style in enumerate(cfg.target_styles):
        pool = _cohort(out / "data", cfg.n_target_pool, cfg.image_size, style, cfg.source.seed + 100 + t)
        test_dir = _cohort(out / "data", cfg.n_target_test, cfg.image_size, style, cfg.source.seed + 200 + t)
        test = FundusDataset(open_dataset(test_dir, layout="synthetic"), size, None)
        loader = DataLoader(test, base.batch_size, num_workers=base.workers)

        model.load_state_dict(source_state)
        rows.append(_score(model, loader, style, "source_only", "source only (no adaptation)", 0.0, 0, cfg.device, log))
        for name, (label, use_w, use_e) in ROWS.items():
            model.load_state_dict(source_state)
            t0 = time.perf_counter()
            adapt(
                Path(""),
                source,
                pool / synthetic.IMAGE_DIR,
                out / "adapted" / f"{style}-{name}",
                with_terms(base, use_w, use_e),
                source_layout="synthetic",
                progress=True,
                log=log,
                device=cfg.device,
                model=model,
                source_indices=train_idx,
            )
            rows.append(
                _score(model, loader, style, name, label, time.perf_counter() - t0, base.steps, cfg.device, log)
            )
        (out / "transfer.json").write_text(
            json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=2, default=float)
        )
    (out / "transfer.md").write_text(markdown(cfg, rows))
    return rows


def _score(
    model: torch.nn.Module,
    loader: DataLoader,
    style: str,
    name: str,
    label: str,
    seconds: float,
    steps: int,
    device: str,
    log: Callable[[str], None],
) -> dict[str, Any]:

    metrics = evaluate(model, loader, device=device)
    log(f"   {style:12s} {label:40s} QWK {metrics['qwk']:.3f}  AUPR {metrics['lesion_aupr_mean']:.3f}")
    return {
        "target": style,
        "row": name,
        "label": label,
        "qwk": metrics["qwk"],
        "accuracy": metrics["accuracy"],
        "referable_auc": metrics["referable_auc"],
        "lesion_aupr_mean": metrics["lesion_aupr_mean"],
        "entropy": metrics["grade_entropy_mean"],
        "seconds": seconds,
        "seconds_per_step": seconds / steps if steps else 0.0,
    }


def _f(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def markdown(cfg: TransferBenchConfig, rows: list[dict[str, Any]]) -> str:
    if cfg.source_checkpoint:
        source_line = f"Source: {cfg.n_source} photographs, model reused from {cfg.source_checkpoint}. Per target: "
    else:
        budget = f"{cfg.source.epochs}x{cfg.source.max_steps_per_epoch}"
        source_line = f"Source: {cfg.n_source} photographs, {budget} steps. Per target: "
    lines = [
        f"# Transfer benchmark: source '{cfg.source_style}' -> {', '.join(cfg.target_styles)}",
        "",
        source_line
        + f"{cfg.n_target_pool} unlabelled photographs for adaptation, {cfg.n_target_test} labelled test photographs "
        f"of other eyes. {cfg.adapt.steps} adaptation steps, batch {cfg.adapt.batch_size}, {cfg.input_size} px, "
        f"seed {cfg.adapt.seed}, device {cfg.device}.",
        "",
        "| target | method | QWK | accuracy | referable AUC | mean lesion AUPR | mean entropy | s/step | overhead |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = next((b for b in rows if b["target"] == r["target"] and b["row"] == "source_finetune"), None)
        overhead = (
            f"{r['seconds_per_step'] / base['seconds_per_step']:.2f}x"
            if base and r["seconds_per_step"] and base["seconds_per_step"]
            else "-"
        )
        lines.append(
            f"| {r['target']} | {r['label']} | {_f(r['qwk'])} | {_f(r['accuracy'])} | {_f(r['referable_auc'])} | "
            f"{_f(r['lesion_aupr_mean'])} | {_f(r['entropy'])} | {r['seconds_per_step']:.2f} | {overhead} |"
        )
    return "\n".join(lines) + "\n"
